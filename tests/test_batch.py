"""run_many on this event loop: order, laziness, failures, cancellation, bad input, the view."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import NAMES, build, registry_spec

import baxiflow
from baxiflow import MissingDependencyError, WorkflowEvent, WorkflowManager, run_many, run_many_sync
from baxiflow.batch import OUTCOME_COLUMNS, BatchState, BatchView, TerminalBatchView


def make_workflow(fail_on: int | None = None, delay: float = 0.0) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "fetching")
        # Later inputs end sooner, so runs end out of input order.
        await asyncio.sleep(delay * (10 - event.data["n"] % 10))
        if event.data["n"] == fail_on:
            raise ValueError(f"input {fail_on} is cursed")
        yield WorkflowEvent("answer", {"n": event.data["n"]})

    @workflow.on("answer")
    async def answer(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("answer", "answering")
        yield WorkflowEvent("done", {"value": event.data["n"] * 2})

    return workflow


def starts(count: int) -> list[WorkflowEvent]:
    return [WorkflowEvent("start", {"n": n}) for n in range(count)]


async def test_run_many_returns_results_in_input_order_with_one_trace_of_every_run() -> None:
    batch = await run_many(make_workflow(delay=0.001), starts(20), concurrency=5, view=False)
    assert batch.ok and batch.stopped is None and batch.failed == []
    assert [r.final.data["value"] for r in batch.results] == [2 * n for n in range(20)]
    assert [row["index"] for row in batch.records] == list(range(20))
    assert all(tuple(row) == OUTCOME_COLUMNS for row in batch.records)
    assert batch.records[3]["final"] == "done" and batch.records[3]["events"] == 5
    assert sorted(row["input_index"] for row in batch.trace.runs) == list(range(20))
    by_index = {row["input_index"]: row["run_id"] for row in batch.trace.runs}
    assert all(by_index[row["index"]] == row["run_id"] for row in batch.records)
    assert {r["run_id"] for r in batch.trace.records} == set(by_index.values())


async def test_a_failing_run_never_stops_the_batch_and_is_listed() -> None:
    batch = await run_many(make_workflow(fail_on=3), starts(8), view=False)
    assert not batch.ok
    assert [index for index, _ in batch.failed] == [3]
    _, result = batch.failed[0]
    assert result.status == "error" and result.errors[0].error == "input 3 is cursed"
    assert batch.records[3]["error"] == "input 3 is cursed"
    assert sum(row["status"] == "ok" for row in batch.records) == 7
    text = batch.summary()
    assert "Batch: 8 runs, 7 ok, 1 failed" in text
    assert "input 3: ValueError: input 3 is cursed" in text
    assert "p50" in text and "p95" in text and "runs/s" in text
    assert "color:#c62828" in batch._repr_html_()
    assert repr(batch) == "<BatchResult: 8 runs, 7 ok, 1 failed>"


async def test_max_failures_stops_starting_runs_and_says_so() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def always_fails(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("down")
        yield event

    batch = await run_many(workflow, starts(100), concurrency=2, max_failures=3, view=False)
    assert batch.stopped is not None and "max_failures=3" in batch.stopped
    assert 3 <= len(batch.results) <= 4  # the runs already going when the third failed finish
    assert "stopped: max_failures=3" in batch.summary()


async def test_the_input_is_read_lazily_and_never_held_whole() -> None:
    read = 0
    peak_ahead = 0
    running = 0

    workflow = WorkflowManager()

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal running
        running += 1
        await asyncio.sleep(0)
        running -= 1
        yield WorkflowEvent("done")

    def endless() -> Iterator[WorkflowEvent]:
        nonlocal read, peak_ahead
        while True:
            read += 1
            peak_ahead = max(peak_ahead, running)
            yield WorkflowEvent("start", {"n": read})

    async def first(count: int) -> AsyncIterator[WorkflowEvent]:
        for event in endless():
            if read > count:
                return
            yield event

    batch = await run_many(workflow, first(1_000), concurrency=8, view=False, keep="summary")
    assert len(batch.results) == 1_000 and read == 1_001
    assert peak_ahead <= 8


async def test_keep_summary_keeps_only_the_final_event_and_the_outcome_rows() -> None:
    batch = await run_many(make_workflow(fail_on=1), starts(4), view=False, keep="summary")
    assert [r.final.name for r in batch.results] == ["done", "error", "done", "done"]
    assert [r.status for r in batch.results] == ["ok", "error", "ok", "ok"]
    assert all(len(r.events) == 1 for r in batch.results)
    assert batch.trace.runs == [] and batch.trace.records == []
    assert batch.records[1]["error"] == "input 1 is cursed"


async def test_a_non_event_input_fails_for_its_index_and_the_batch_goes_on() -> None:
    items: list[object] = [*starts(2), "not an event", *starts(1)]
    batch = await run_many(make_workflow(), items, view=False)  # type: ignore[arg-type]
    assert [index for index, _ in batch.failed] == [2]
    assert batch.records[2]["error"] == "input 2 is a str, not a WorkflowEvent; nothing was run"
    assert batch.results[2].final.data == {"type": "TypeError"}
    assert len(batch.results) == 4


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be an int >= 1"),
        ({"keep": "some"}, ValueError, "keep must be one of 'all', 'summary'"),
        ({"client": object()}, TypeError, "client must be a distributed.Client"),
        ({"max_failures": 0}, ValueError, "max_failures must be a positive int"),
        ({"timeout": -1}, ValueError, "timeout must be a positive number"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
    ],
)
async def test_bad_settings_fail_before_anything_runs(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    def never_read() -> Iterator[WorkflowEvent]:
        raise AssertionError("the input was read")
        yield  # pragma: no cover

    with pytest.raises(error, match=message):
        await run_many(make_workflow(), never_read(), view=False, **options)  # type: ignore[arg-type]


async def test_a_single_event_instead_of_an_iterable_is_refused() -> None:
    with pytest.raises(TypeError, match="for one input pass a list"):
        await run_many(make_workflow(), WorkflowEvent("start"), view=False)  # type: ignore[arg-type]


async def test_cancelling_the_batch_cancels_every_run_and_closes_its_handler() -> None:
    closed = 0
    started = asyncio.Event()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal closed
        try:
            started.set()
            await asyncio.sleep(60)
            yield WorkflowEvent("done")
        finally:
            closed += 1

    before = asyncio.all_tasks()
    task = asyncio.create_task(run_many(workflow, starts(50), concurrency=10, view=False))
    await started.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == 10
    assert asyncio.all_tasks() == before


def test_run_many_sync_works_inside_a_running_loop() -> None:
    async def cell() -> baxiflow.BatchResult:
        return run_many_sync(make_workflow(), starts(5), view=False)

    batch = asyncio.run(cell())
    assert batch.ok and len(batch.results) == 5


async def test_to_pandas_gives_one_row_per_input() -> None:
    batch = await run_many(make_workflow(fail_on=0), starts(3), view=False)
    frame = batch.to_pandas()
    assert list(frame.columns) == list(OUTCOME_COLUMNS)
    assert list(frame["status"]) == ["error", "ok", "ok"]


async def test_the_terminal_view_draws_counts_steps_and_failures() -> None:
    out = io.StringIO()
    state = BatchState(total=3)
    view = TerminalBatchView(state, file=out)
    state.run_started()
    state.step(None, "fetch")
    state.outcome({"index": 1, "status": "error", "error": "boom"})
    view.close()
    text = out.getvalue()
    assert "1/3" in text and "failed: input 1: boom" in text


def test_the_widget_view_is_throttled_for_ten_thousand_runs() -> None:
    now = [0.0]
    state = BatchState(total=10_000, clock=lambda: now[0])
    view = BatchView(state, display=False)
    view.throttle = type(view.throttle)(0.1, clock=lambda: now[0])
    view._clock = lambda: now[0]
    for index in range(10_000):
        now[0] += 0.0003  # 3 s for the batch
        state.run_started()
        state.outcome({"index": index, "status": "ok" if index % 100 else "error", "error": "x"})
        view.changed()
    state.finish(None)
    view.close()
    assert view.redraws <= 101
    assert view.bar.value == 10_000 and view.bar.bar_style == "danger"
    assert "<b>10000/10000</b> runs" in view.details.value and "color:#c62828" in view.details.value
    assert repr(view).startswith("10000/10000 runs · 0 running · 9900 ok · 100 failed")


async def test_the_default_view_outside_a_notebook_is_the_terminal_bar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = await run_many(make_workflow(), starts(3))
    assert batch.ok
    assert "3/3" in capsys.readouterr().err


def test_client_without_distributed_names_the_dask_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"baxiflow\[dask\]"):
        run_many_sync(make_workflow(), starts(1), client=object(), view=False)


async def test_the_batch_trace_goes_to_jsonl_and_back_with_its_input_index(
    tmp_path: Path,
) -> None:
    from baxiflow.trace import Trace

    batch = await run_many(make_workflow(), starts(3), view=False)
    path = tmp_path / "batch.jsonl"
    batch.trace.to_jsonl(path)
    again = Trace.from_jsonl(path)
    assert again.runs == batch.trace.runs
    assert sorted(row["input_index"] for row in again.runs) == [0, 1, 2]


def ending_workflow() -> WorkflowManager:
    """Input n ends: 0 ok, 1 with a handler's error, 2 at max_events, 3 at handler_timeout."""
    workflow = WorkflowManager(max_events=5, handler_timeout=0.2)

    @workflow.on("start")
    async def start(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        n = event.data["n"]
        yield WorkflowEvent.progress("start", "starting")
        if n == 1:
            raise LookupError("no such user")
        if n == 3:
            await asyncio.sleep(5)
        yield WorkflowEvent("loop" if n == 2 else "done")

    @workflow.on("loop")
    async def loop(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("loop")

    return workflow


async def test_every_keep_reports_how_each_run_ended_as_the_engine_does() -> None:
    workflow = ending_workflow()
    summary = await run_many(workflow, starts(4), view=False, keep="summary")
    full = await run_many(workflow, starts(4), view=False, keep="all")
    assert [r.status for r in summary.results] == ["ok", "error", "max_events", "timeout"]
    # With keep="all" the statuses are the engine's own (the trace observes every run).
    traced = {row["input_index"]: row for row in full.trace.runs}
    assert [traced[i]["status"] for i in range(4)] == [r.status for r in summary.results]
    assert [traced[i]["events"] for i in range(4)] == [row["events"] for row in summary.records]
    assert [traced[i]["errors"] for i in range(4)] == [r.info.errors for r in summary.results]
    for kept, short in zip(full.records, summary.records, strict=True):
        assert {k: v for k, v in kept.items() if k not in ("run_id", "duration")} == {
            k: v for k, v in short.items() if k not in ("run_id", "duration")
        }
    assert summary.records[1]["error"] == "no such user"
    assert summary.records[3]["final"] == "error" and summary.records[0]["final"] == "done"
    assert len({row["run_id"] for row in summary.records}) == 4


async def test_the_view_counts_the_runs_in_each_step_while_the_batch_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from baxiflow.batch import BatchDisplay, _run

    views: list[BatchDisplay] = []

    def shown(state: BatchState) -> BatchDisplay:
        views.append(BatchDisplay(state, interval=0.0))
        return views[-1]

    monkeypatch.setattr(_run, "batch_view", shown)
    gate = asyncio.Event()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "fetching")
        if event.data["n"] < 4:
            await gate.wait()
        yield WorkflowEvent.progress("answer", "answering")
        yield WorkflowEvent("done")

    batch = asyncio.create_task(run_many(workflow, starts(6), concurrency=6))
    while not views or views[0].state.done < 2:
        await asyncio.sleep(0.01)
    assert dict(views[0].state.steps) == {"fetch": 4} and views[0].state.running == 4
    gate.set()
    assert (await batch).ok
    assert dict(views[0].state.steps) == {} and views[0].state.done == 6


@settings(max_examples=60, deadline=None)
@given(spec=registry_spec, max_events=st.integers(1, 30))
def test_an_unobserved_batch_reads_each_runs_end_as_the_engine_reports_it(
    spec: dict[str, list[list[str]]], max_events: int
) -> None:
    # keep="summary" runs go unobserved: the batch reads status and counts from the events;
    # keep="all" runs are observed by the trace: those are the engine's own RunInfo.
    workflow = build(spec, max_events)
    inputs = [WorkflowEvent(name) for name in NAMES]
    short = run_many_sync(workflow, inputs, view=False, keep="summary", concurrency=2)
    full = run_many_sync(workflow, inputs, view=False, keep="all", concurrency=2)
    for unobserved, observed in zip(short.results, full.results, strict=True):
        assert unobserved.final == observed.final
        assert (unobserved.status, unobserved.info.events, unobserved.info.errors) == (
            observed.status,
            observed.info.events,
            observed.info.errors,
        )
    assert [{**r, "run_id": 0, "duration": 0} for r in short.records] == [
        {**r, "run_id": 0, "duration": 0} for r in full.records
    ]
