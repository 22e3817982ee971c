"""A failing handler's file and line reach every place a person looks."""

from __future__ import annotations

import asyncio
import io
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

import baxiflow
from baxiflow import WorkflowError, WorkflowEvent, WorkflowManager
from baxiflow.progress import ProgressView, TerminalProgress
from baxiflow.runner import PendingRun
from baxiflow.trace import Trace


def failing_workflow() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def book(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("book", "calling the calendar")
        raise ConnectionError("calendar unreachable")

    return workflow


FAILING_LINE = failing_workflow.__code__.co_firstlineno + 6
WHERE = f'File "{__file__}", line {FAILING_LINE}, in book'


async def test_failing_line_is_in_the_event_the_trace_the_panel_and_the_terminal() -> None:
    out = io.StringIO()
    view = ProgressView(interval=0, display=False)
    observers = [TerminalProgress(interval=0, file=out), view]
    result = await baxiflow.run(
        failing_workflow(), WorkflowEvent("start"), view=False, observers=observers
    )
    [error] = result.errors
    assert WHERE in error.data["traceback"]
    assert isinstance(error.exception, ConnectionError)
    [row] = [r for r in result.trace.records if r["kind"] == "error"]
    assert WHERE in row["traceback"] and type(row["traceback"]) is str
    assert f"{__file__}, line {FAILING_LINE}, in book" in view.panels[0].error.value
    assert WHERE in out.getvalue()


async def test_traceback_column_survives_jsonl_and_the_live_exception_does_not() -> None:
    result = await baxiflow.run(failing_workflow(), WorkflowEvent("start"), view=False)
    stream = io.StringIO()
    result.trace.to_jsonl(stream)
    assert "ConnectionError" in stream.getvalue() and "__repr__" not in stream.getvalue()
    loaded = Trace.from_jsonl(io.StringIO(stream.getvalue()))
    assert loaded.records == pickle.loads(pickle.dumps(result.trace)).records
    [row] = [r for r in loaded.records if r["kind"] == "error"]
    assert WHERE in row["traceback"] and type(row["data"]["traceback"]) is str


async def test_raise_for_error_re_raises_the_handler_exception_with_its_traceback() -> None:
    result = await baxiflow.run(failing_workflow(), WorkflowEvent("start"), view=False)
    with pytest.raises(ConnectionError, match="calendar unreachable") as caught:
        result.raise_for_error()
    assert caught.traceback[-1].lineno + 1 == FAILING_LINE


async def test_raise_for_error_raises_workflow_error_without_an_exception_and_nothing_when_ok() -> (
    None
):
    workflow = WorkflowManager()

    @workflow.on("start")
    async def refuse(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.failure("no seats left")

    result = await baxiflow.run(workflow, WorkflowEvent("start"), view=False)
    with pytest.raises(WorkflowError, match="no seats left"):
        result.raise_for_error()
    ok = await baxiflow.run(WorkflowManager(), WorkflowEvent("start"), view=False)
    ok.raise_for_error()


async def test_reading_a_result_from_a_run_that_was_not_awaited_says_to_await_it() -> None:
    pending = baxiflow.run(WorkflowManager(), WorkflowEvent("start"), view=False)
    assert isinstance(pending, PendingRun)
    with pytest.raises(AttributeError, match=r"await baxiflow\.run\(\.\.\.\).*run_sync"):
        pending.final  # noqa: B018
    assert "await" in repr(pending)
    result = await pending
    assert result.final.name == "start"


def test_run_is_still_a_coroutine_that_asyncio_run_and_gather_take() -> None:
    import baxiflow

    workflow = WorkflowManager()

    @workflow.on("start")
    async def done(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    assert (
        asyncio.run(baxiflow.run(workflow, WorkflowEvent("start"), view=False)).final.name == "done"
    )

    async def both() -> list[Any]:
        return await asyncio.gather(
            baxiflow.run(workflow, WorkflowEvent("start"), view=False),
            baxiflow.run(workflow, WorkflowEvent("start"), view=False),
        )

    assert [result.final.name for result in asyncio.run(both())] == ["done", "done"]
