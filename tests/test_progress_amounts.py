"""Progress amounts that are not usable numbers show as no fraction, never as NaN."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.observe import Observer
from baxiflow.progress import ProgressView, TerminalProgress

NAN, INF = float("nan"), float("inf")

BAD_AMOUNTS = [
    pytest.param(NAN, 5, id="current-nan"),
    pytest.param(INF, 5, id="current-inf"),
    pytest.param(-INF, 5, id="current-minus-inf"),
    pytest.param(-1, 5, id="current-negative"),
    pytest.param("3", 5, id="current-string"),
    pytest.param(2, NAN, id="total-nan"),
    pytest.param(2, INF, id="total-inf"),
    pytest.param(2, 0, id="total-zero"),
    pytest.param(2, -5, id="total-negative"),
    pytest.param(2, "5", id="total-string"),
    pytest.param(NAN, NAN, id="both-nan"),
]


def workflow_reporting(current: Any, total: Any) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        # Built by hand: WorkflowEvent.progress() would refuse these amounts.
        data = {"step": "s", "description": "d", "current": current, "total": total}
        yield WorkflowEvent("progress", data=data)
        yield WorkflowEvent("completed")

    return workflow


async def drain(workflow: WorkflowManager, observer: Observer) -> None:
    async for _ in workflow.process(WorkflowEvent("start"), observers=[observer]):
        pass


@pytest.mark.parametrize(("current", "total"), BAD_AMOUNTS)
async def test_an_unusable_amount_leaves_the_state_without_a_fraction(
    current: Any, total: Any
) -> None:
    view = ProgressView(interval=0, display=False)
    await drain(workflow_reporting(current, total), view)
    [step] = view.panels[0].state.steps.values()
    assert step.fraction is None
    assert "nan" not in step.text().lower()
    assert "inf" not in step.text().lower()
    assert "%" not in step.text()
    assert step.status == "done"


@pytest.mark.parametrize(("current", "total"), BAD_AMOUNTS)
async def test_an_unusable_amount_shows_a_full_bar_and_no_count_in_the_widget(
    current: Any, total: Any
) -> None:
    view = ProgressView(interval=0, display=False)
    await drain(workflow_reporting(current, total), view)
    [panel] = view.panels
    row = panel.rows["s"]
    assert not math.isnan(row.bar.value)
    assert row.bar.value == 1.0
    assert "nan" not in row.description.value.lower()
    assert "%" not in row.description.value
    assert "nan" not in repr(panel).lower()


@pytest.mark.parametrize(("current", "total"), BAD_AMOUNTS)
async def test_an_unusable_amount_never_reaches_the_terminal_text(current: Any, total: Any) -> None:
    out = io.StringIO()
    await drain(workflow_reporting(current, total), TerminalProgress(interval=0, file=out))
    written = out.getvalue().lower()
    assert "nan" not in written
    assert "inf" not in written


async def test_a_zero_current_is_a_usable_amount() -> None:
    view = ProgressView(interval=0, display=False)
    workflow = WorkflowManager()

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("s", "d", current=0, total=4)

    await drain(workflow, view)
    step = view.panels[0].state.steps["s"]
    assert step.fraction == 0.0
    assert step.count_text() == "0/4 (0%)"
