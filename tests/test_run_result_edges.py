"""RunResult of a run that yielded progress events only: its repr works, ``final`` says why not."""

from __future__ import annotations

import pytest

import baxiflow
from baxiflow import WorkflowEvent, WorkflowManager


def test_a_run_of_one_progress_event_has_a_repr_without_a_final_event() -> None:
    result = baxiflow.run_sync(WorkflowManager(), WorkflowEvent.progress("s", "d"), view=False)
    assert repr(result) == "<RunResult ok: 0 events, 1 progress, 0 errors, no final event>"
    assert result.events == []
    with pytest.raises(IndexError, match="progress events only"):
        _ = result.final


async def test_the_repr_names_the_final_event_when_there_is_one() -> None:
    result = await baxiflow.run(WorkflowManager(), WorkflowEvent("start"), view=False)
    assert repr(result) == "<RunResult ok: 1 event, 0 progress, 0 errors, final 'start'>"
