"""Tests of baxiflow.trace: rows, causal links, spans, bound, DataFrames, JSONL, summaries."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import io
import json
import math
import pickle
import re
import subprocess
import sys
import threading
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baxiflow import EmittedEvent, HandlerCall, WorkflowEvent, WorkflowManager, WorkflowObserver
from baxiflow.exceptions import MissingDependencyError, TraceFormatError
from baxiflow.trace import (
    RECORD_COLUMNS,
    RUN_COLUMNS,
    SPAN_COLUMNS,
    Trace,
    flatten_records,
    record,
)
from baxiflow.trace._jsonable import MARKERS, ReprValue, from_jsonable, to_jsonable

# Workflows ------------------------------------------------------------------------------


def branching_workflow() -> WorkflowManager:
    """start -> (left, right); left -> join; right -> join; join has two handlers."""
    workflow = WorkflowManager()

    @workflow.on("start")
    async def split(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("split", "splitting", current=1, total=2)
        yield WorkflowEvent("left", data={"side": "L"}, metadata=event.metadata)
        yield WorkflowEvent("right", data={"side": "R"}, metadata=event.metadata)

    @workflow.on("left")
    @workflow.on("right")
    async def side(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        yield WorkflowEvent("join", data={"from": event.data["side"]}, metadata=event.metadata)

    @workflow.on("join")
    async def first_join(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("joined")

    @workflow.on("join")
    async def second_join(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        if event.data["from"] == "R":
            raise ValueError("right side rejected")
        yield WorkflowEvent("accepted")

    return workflow


def counting_workflow() -> WorkflowManager:
    """One handler yields ``n`` events with plain payloads."""

    async def count(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        for i in range(event.data["n"]):
            yield WorkflowEvent("tick", data={"i": i})

    return WorkflowManager(max_events=None).register("start", count)


async def drain(workflow: WorkflowManager, first: WorkflowEvent, **kwargs: Any) -> list[str]:
    async with contextlib.aclosing(workflow.process(first, **kwargs)) as events:
        return [event.name async for event in events]


# Rows -----------------------------------------------------------------------------------


async def test_every_record_has_every_column_in_schema_order() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 7}))

    kinds = {row["kind"] for row in trace.records}
    assert kinds == {"event", "progress", "error"}
    assert all(tuple(row) == RECORD_COLUMNS for row in trace.records)
    assert all(tuple(row) == SPAN_COLUMNS for row in trace.spans)
    assert all(tuple(row) == RUN_COLUMNS for row in trace.runs)


async def test_records_link_each_event_to_the_event_whose_handler_emitted_it() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    rows = [
        (r["seq"], r["event"], r["parent_seq"], r["depth"], r["handler"]) for r in trace.records
    ]
    assert rows == [
        (0, "start", None, 0, None),
        (1, "progress", 0, 1, "branching_workflow.<locals>.split"),
        (2, "left", 0, 1, "branching_workflow.<locals>.split"),
        (3, "right", 0, 1, "branching_workflow.<locals>.split"),
        (4, "join", 2, 2, "branching_workflow.<locals>.side"),
        (5, "join", 3, 2, "branching_workflow.<locals>.side"),
        (6, "joined", 4, 3, "branching_workflow.<locals>.first_join"),
        (7, "accepted", 4, 3, "branching_workflow.<locals>.second_join"),
        (8, "joined", 5, 3, "branching_workflow.<locals>.first_join"),
        (9, "error", 5, 3, "branching_workflow.<locals>.second_join"),
    ]


async def test_progress_and_error_rows_fill_their_own_columns() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    progress = next(r for r in trace.records if r["kind"] == "progress")
    error = next(r for r in trace.records if r["kind"] == "error")
    plain = next(r for r in trace.records if r["event"] == "left")
    assert (progress["step"], progress["description"], progress["current"], progress["total"]) == (
        "split",
        "splitting",
        1,
        2,
    )
    assert (error["error"], error["error_type"]) == ("right side rejected", "ValueError")
    assert error["data"]["reason"] == "handler_error"
    assert [
        plain[c] for c in ("step", "description", "current", "total", "error", "error_type")
    ] == [None] * 6


async def test_records_keep_the_events_own_data_and_metadata_objects() -> None:
    metadata = {"session": "s1"}
    trace = await record(branching_workflow(), WorkflowEvent("start", metadata=metadata))

    assert trace.records[0]["metadata"] is metadata
    assert next(r for r in trace.records if r["event"] == "left")["metadata"] is metadata


async def test_elapsed_grows_and_timestamps_are_wall_clock() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    elapsed = [r["elapsed"] for r in trace.records]
    assert elapsed == sorted(elapsed)
    assert all(abs(r["timestamp"] - trace.runs[0]["started_at"]) < 60 for r in trace.records)


async def test_records_hold_exactly_what_observers_were_told_about_each_event() -> None:
    seen: list[EmittedEvent] = []
    trace = await record(branching_workflow(), WorkflowEvent("start"), observers=[seen.append])

    assert len(trace.records) == len(seen)
    for row, emitted in zip(trace.records, seen, strict=True):
        assert (row["run_id"], row["seq"], row["parent_seq"], row["depth"]) == (
            emitted.run.run_id,
            emitted.seq,
            emitted.parent_seq,
            emitted.depth,
        )
        assert (row["event"], row["handler"], row["error"]) == (
            emitted.event.name,
            emitted.handler_name,
            emitted.event.error,
        )
        assert (row["elapsed"], row["timestamp"]) == (emitted.elapsed, emitted.timestamp)
        assert row["data"] is emitted.event.data and row["metadata"] is emitted.event.metadata


def held_by(trace: Trace) -> list[object]:
    """Every object reachable from ``trace``, not looking into classes and modules.

    Nor into functions: a function's globals are its module's, whose state (what other
    code keeps there) is not the trace's.
    """
    seen: dict[int, object] = {}
    todo: list[object] = [trace]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType):
            continue
        seen[id(obj)] = obj
        if not isinstance(obj, types.FunctionType):
            todo.extend(gc.get_referents(obj))
    return list(seen.values())


async def test_a_long_recording_holds_no_run_objects_and_nothing_more_to_scan_per_event() -> None:
    # What a trace holds for the collector to scan must not grow with the run: per event
    # it keeps plain values and the event's own data dicts, not the events, handler
    # calls or generators of the run.
    async def held_after(events: int) -> list[object]:
        trace = await record(counting_workflow(), WorkflowEvent("start", {"n": events}))
        assert len(trace._records.pending) > 0, "rows not read yet: what a run leaves behind"
        # A collection untracks the dicts that hold only atomic values, whenever it ran last.
        gc.collect()
        return held_by(trace)

    short, long = await held_after(10), await held_after(2000)

    run_types = WorkflowEvent | HandlerCall | EmittedEvent | types.AsyncGeneratorType
    assert not any(isinstance(obj, run_types) for obj in long)
    assert sum(map(gc.is_tracked, long)) == sum(map(gc.is_tracked, short))


async def test_a_trace_fed_by_hand_gives_the_rows_a_run_gives() -> None:
    # event_emitted and handler_finished are public: replaying what observers were told
    # into a fresh Trace gives the rows the run loop recorded.
    class Tell(WorkflowObserver):
        def __init__(self) -> None:
            self.told: list[EmittedEvent | HandlerCall] = []

        def event_emitted(self, emitted: EmittedEvent) -> None:
            self.told.append(emitted)

        def handler_finished(self, call: HandlerCall) -> None:
            self.told.append(call)

    tell = Tell()
    recorded = await record(branching_workflow(), WorkflowEvent("start"), observers=[tell])
    by_hand = Trace()
    for told in tell.told:
        if isinstance(told, HandlerCall):
            by_hand.handler_finished(told)
        else:
            by_hand.event_emitted(told)

    assert by_hand.records == recorded.records
    assert by_hand.spans == recorded.spans


async def test_a_trace_subclass_that_overrides_a_hook_has_its_override_called() -> None:
    class OnlyErrors(Trace):
        def event_emitted(self, emitted: EmittedEvent) -> None:
            if emitted.event.is_error:
                super().event_emitted(emitted)

    trace = await record(branching_workflow(), WorkflowEvent("start"), trace=OnlyErrors())

    assert [row["kind"] for row in trace.records] == ["error"]
    assert len(trace.spans) == 7


@pytest.mark.parametrize("trace_first", [True, False])
async def test_a_trace_hears_each_event_in_its_place_among_the_observers(trace_first: bool) -> None:
    trace = Trace()
    seen_before: list[int] = []

    def count(emitted: EmittedEvent) -> None:
        seen_before.append(len(trace.records))

    observers = [trace, count] if trace_first else [count, trace]
    async for _ in branching_workflow().process(WorkflowEvent("start"), observers=observers):
        pass

    assert seen_before == (list(range(1, 11)) if trace_first else list(range(10)))


async def test_recording_does_not_change_what_the_run_emits() -> None:
    workflow = branching_workflow()
    plain = await drain(workflow, WorkflowEvent("start"))

    traced = await drain(workflow, WorkflowEvent("start"), observers=[Trace()])

    assert traced == plain


# Spans ----------------------------------------------------------------------------------


async def test_spans_give_one_row_per_handler_call_with_status_and_emitted_count() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    spans = [
        (
            s["handler"].rsplit(".", 1)[1],
            s["position"],
            s["event"],
            s["event_seq"],
            s["emitted"],
            s["status"],
        )
        for s in trace.spans
    ]
    assert spans == [
        ("split", 0, "start", 0, 3, "ok"),
        ("side", 0, "left", 2, 1, "ok"),
        ("side", 0, "right", 3, 1, "ok"),
        ("first_join", 0, "join", 4, 1, "ok"),
        ("second_join", 1, "join", 4, 1, "ok"),
        ("first_join", 0, "join", 5, 1, "ok"),
        ("second_join", 1, "join", 5, 0, "error"),
    ]
    assert all(s["end"] - s["start"] == s["duration"] >= 0 for s in trace.spans)


async def test_span_of_a_handler_that_raises_is_an_error_with_its_message() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fragile(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("partial")
        raise KeyError("missing")

    trace = await record(workflow, WorkflowEvent("start"))

    (span,) = trace.spans
    assert (span["status"], span["error"], span["emitted"]) == ("error", "'missing'", 1)
    assert trace.records[-1]["handler"] == span["handler"]
    assert trace.records[-1]["error_type"] == "KeyError"


async def test_span_of_a_handler_that_times_out_says_timeout_with_the_message() -> None:
    workflow = WorkflowManager(handler_timeout=0.05)

    @workflow.on("start")
    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("stuck", "waiting")
        await asyncio.sleep(10)
        yield WorkflowEvent("never")

    trace = await record(workflow, WorkflowEvent("start"))

    (span,) = trace.spans
    last = trace.records[-1]
    assert span["status"] == "timeout"
    assert span["error"] == last["error"]
    assert "timed out" in span["error"]
    assert last["data"]["reason"] == "handler_timeout"
    assert span["duration"] >= 0.04
    assert span["emitted"] == 1


async def test_span_of_a_handler_stopped_by_an_early_break_is_cancelled() -> None:
    workflow = WorkflowManager()
    closed: list[bool] = []

    @workflow.on("start")
    async def stream(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            for i in range(100):
                yield WorkflowEvent("item", data={"i": i})
        finally:
            closed.append(True)

    trace = Trace()
    process = workflow.process(WorkflowEvent("start"), observers=[trace])
    async with contextlib.aclosing(process) as events:
        async for event in events:
            if event.name == "item" and event.data == {"i": 2}:
                break

    assert closed == [True]
    assert [(s["status"], s["emitted"], s["error"]) for s in trace.spans] == [
        ("cancelled", 3, None)
    ]
    assert [r["event"] for r in trace.records] == ["start", "item", "item", "item"]
    assert trace.runs[0]["status"] == "stopped"


# Entry points and several runs ----------------------------------------------------------


async def test_several_runs_share_one_trace_and_rows_carry_their_run_id() -> None:
    workflow = branching_workflow()
    trace = await record(workflow, WorkflowEvent("start"))
    await record(workflow, WorkflowEvent("start"), trace=trace)

    first, second = (run["run_id"] for run in trace.runs)
    assert first != second
    assert [r["run_id"] for r in trace.records] == [first] * 10 + [second] * 10
    assert [r["seq"] for r in trace.records if r["run_id"] == second] == list(range(10))
    assert [(run["status"], run["events"], run["errors"]) for run in trace.runs] == [
        ("error", 10, 1),
        ("error", 10, 1),
    ]
    assert all(run["duration"] > 0 for run in trace.runs)


async def test_concurrent_runs_on_one_trace_keep_their_rows_apart() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def ticks(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for i in range(3):
            await asyncio.sleep(0)
            yield WorkflowEvent("tick", data={"i": i}, metadata=event.metadata)

    trace = Trace()
    await asyncio.gather(
        *(record(workflow, WorkflowEvent("start", metadata={"who": w}), trace=trace) for w in "ab")
    )

    by_run: dict[str, list[tuple[int, Any]]] = {}
    for row in trace.records:
        by_run.setdefault(row["run_id"], []).append((row["seq"], row["metadata"]["who"]))
    assert sorted(by_run.values()) == [[(n, "a") for n in range(4)], [(n, "b") for n in range(4)]]
    assert len({row["run_id"] for row in trace.records}) == 2
    assert [run["status"] for run in trace.runs] == ["ok", "ok"]


async def test_record_passes_process_options_and_other_observers_on() -> None:
    workflow = WorkflowManager()

    @workflow.on("ping")
    async def ping(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("ping")

    seen: list[object] = []
    trace = await record(workflow, WorkflowEvent("ping"), max_events=3, observers=[seen.append])

    assert trace.runs[0]["status"] == "max_events"
    assert trace.records[-1]["data"]["reason"] == "max_events"
    assert len(seen) == len(trace.records)


async def test_a_trace_attached_to_the_manager_records_every_run() -> None:
    trace = Trace()
    workflow = branching_workflow().observe(trace)

    await drain(workflow, WorkflowEvent("start"))
    await drain(workflow, WorkflowEvent("start"))

    assert len(trace.runs) == 2
    assert len(trace.records) == 20


async def test_records_read_during_a_run_are_the_same_list_brought_up_to_date() -> None:
    trace = Trace()
    seen_lengths: list[int] = []
    process = branching_workflow().process(WorkflowEvent("start"), observers=[trace])
    async with contextlib.aclosing(process) as events:
        async for _ in events:
            seen_lengths.append(len(trace.records))
    records = trace.records

    assert seen_lengths == list(range(1, 11))
    assert trace.records is records


def test_max_records_must_be_a_positive_int() -> None:
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="max_records must be a positive int"):
            Trace(max_records=bad)  # type: ignore[arg-type]


async def test_max_records_keeps_the_newest_rows_and_counts_the_dropped_ones() -> None:
    workflow = WorkflowManager(max_events=None)

    @workflow.on("start")
    async def count(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for i in range(100):
            yield WorkflowEvent("tick", data={"i": i})

    @workflow.on("tick")
    async def tock(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        return
        yield event

    trace = await record(workflow, WorkflowEvent("start"), trace=Trace(max_records=10))

    assert [r["data"]["i"] for r in trace.records] == list(range(90, 100))
    assert trace.dropped_records == 91
    assert [s["event_seq"] for s in trace.spans] == list(range(91, 101))
    assert trace.dropped_spans == 91
    assert "dropped the oldest 91 events and 91 handler calls" in str(trace)


async def test_max_records_holds_across_runs_and_reads() -> None:
    trace = Trace(max_records=15)
    workflow = branching_workflow()
    await record(workflow, WorkflowEvent("start"), trace=trace)
    assert len(trace.records) == 10
    await record(workflow, WorkflowEvent("start"), trace=trace)

    assert len(trace.records) == 15
    assert trace.dropped_records == 5
    assert [r["seq"] for r in trace.records] == [5, 6, 7, 8, 9, *range(10)]
    assert len(trace.runs) == 2


@settings(max_examples=40, deadline=None)
@given(
    bound=st.integers(min_value=1, max_value=30),
    runs=st.lists(st.tuples(st.integers(0, 60), st.booleans()), min_size=1, max_size=5),
)
def test_a_bounded_trace_keeps_exactly_the_newest_rows_of_an_unbounded_one(
    bound: int, runs: list[tuple[int, bool]]
) -> None:
    bounded, everything = Trace(max_records=bound), Trace()
    for events, read_after in runs:
        asyncio.run(
            record(
                counting_workflow(),
                WorkflowEvent("start", {"n": events}),
                trace=bounded,
                observers=[everything],
            )
        )
        if read_after:
            assert bounded.records == everything.records[-bound:]

    assert bounded.records == everything.records[-bound:]
    assert bounded.spans == everything.spans[-bound:]
    assert bounded.dropped_records == len(everything.records) - len(bounded.records)
    assert bounded.dropped_spans == len(everything.spans) - len(bounded.spans)


@pytest.mark.parametrize("bound", [None, 1000])
def test_reading_while_a_run_in_another_thread_records_loses_no_row(bound: int | None) -> None:
    trace = Trace(max_records=bound)
    events = 50_000
    worker = threading.Thread(
        target=asyncio.run,
        args=(record(counting_workflow(), WorkflowEvent("start", {"n": events}), trace=trace),),
    )
    # Switch threads often, so that reads and the run's adds interleave finely.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        worker.start()
        reads_mid_run = read_while_alive(worker, trace, events)
    finally:
        sys.setswitchinterval(interval)
    worker.join()

    kept = events + 1 if bound is None else bound
    assert [row["seq"] for row in trace.records] == list(range(events + 1 - kept, events + 1))
    assert trace.dropped_records == events + 1 - kept
    assert reads_mid_run > 0


def read_while_alive(worker: threading.Thread, trace: Trace, events: int) -> int:
    """Read ``trace`` until ``worker`` ends; how many reads saw the run unfinished."""
    reads_mid_run = 0
    while worker.is_alive():
        seqs = []
        for row in trace.records:  # slowly: the run goes on while the reader goes through
            seqs.append(row["seq"])
            if len(seqs) % 50 == 0:
                time.sleep(0)
        # Whatever a read shows is a run of consecutive events.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
        reads_mid_run += len(seqs) + trace.dropped_records <= events
    return reads_mid_run


class Labelled(Trace):
    """A Trace subclass with an attribute of its own (module level, so pickle finds it)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


async def test_a_trace_pickles_and_copies_with_its_rows_bound_and_counts() -> None:
    trace = Trace(max_records=8)
    await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 1}), trace=trace)

    for copied in (pickle.loads(pickle.dumps(trace)), copy.deepcopy(trace), copy.copy(trace)):
        assert (copied.records, copied.spans, copied.runs) == (
            trace.records,
            trace.spans,
            trace.runs,
        )
        assert (copied.max_records, copied.dropped_records, copied.dropped_spans) == (8, 2, 0)
        assert str(copied) == str(trace)

    labelled = Labelled("nightly")
    for copied in (pickle.loads(pickle.dumps(labelled)), copy.deepcopy(labelled)):
        assert isinstance(copied, Labelled) and copied.label == "nightly"

    # A copy records on its own; the original is left as it was.
    copied = pickle.loads(pickle.dumps(trace))
    await record(branching_workflow(), WorkflowEvent("start"), trace=copied)
    assert len(copied.runs) == 2 and len(trace.runs) == 1
    assert len(copied.records) == 8 and copied.dropped_records == 12


async def test_extend_adds_another_traces_runs_rows_and_calls_after_its_own_in_order() -> None:
    mine, theirs = Trace(), Trace()
    await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 1}), trace=mine)
    built = list(mine.records)  # some rows built, then a run whose rows are not
    await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 2}), trace=mine)
    await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 3}), trace=theirs)
    shipped = pickle.loads(pickle.dumps(theirs))  # as a Dask worker sends it back
    expected = (
        pickle.loads(pickle.dumps(mine)).records + theirs.records,
        mine.spans + theirs.spans,
        [*mine.runs, *theirs.runs],
    )
    mine.extend(shipped)
    assert (mine.records, mine.spans, mine.runs) == expected
    assert mine.records[: len(built)] == built
    assert [row["metadata"]["id"] for row in mine.records if row["seq"] == 0] == [1, 2, 3]


# DataFrames -----------------------------------------------------------------------------


async def slow_step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    await asyncio.sleep(0.03)
    yield WorkflowEvent("step")
    yield WorkflowEvent("step")


async def fast_step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    yield WorkflowEvent("done")


async def test_dataframe_from_records_gives_handler_timings_with_groupby() -> None:
    pd = pytest.importorskip("pandas")
    workflow = WorkflowManager().register("start", slow_step).register("step", fast_step)
    trace = await record(workflow, WorkflowEvent("start"))

    events = pd.DataFrame(trace.records)
    per_handler = events.groupby("handler")["elapsed"].agg(["count", "min"])
    spans = pd.DataFrame(trace.spans)
    time_per_handler = spans.groupby("handler")["duration"].agg(["count", "sum"])

    assert per_handler["count"].to_dict() == {"fast_step": 2, "slow_step": 2}
    assert per_handler.loc["slow_step", "min"] >= 0.025
    assert per_handler.loc["fast_step", "min"] > per_handler.loc["slow_step", "min"]
    assert time_per_handler["count"].to_dict() == {"fast_step": 2, "slow_step": 1}
    assert time_per_handler.loc["slow_step", "sum"] >= 0.025


async def test_to_pandas_gives_both_tables_with_the_schema_columns() -> None:
    pytest.importorskip("pandas")
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    frames = trace.to_pandas()
    events, spans = frames

    assert list(events.columns) == list(RECORD_COLUMNS)
    assert list(spans.columns) == list(SPAN_COLUMNS)
    assert (len(events), len(spans)) == (10, 7)
    assert frames.events is events
    assert str(events["parent_seq"].dtype) == "Int64"
    assert events["parent_seq"].isna().tolist() == [True] + [False] * 9


async def test_to_pandas_flatten_turns_data_and_metadata_keys_into_columns() -> None:
    pytest.importorskip("pandas")
    trace = await record(branching_workflow(), WorkflowEvent("start", metadata={"id": 7}))

    events, _ = trace.to_pandas(flatten=True)

    assert "data" not in events.columns and "metadata" not in events.columns
    assert {"data.side", "data.from", "data.reason", "metadata.id"} <= set(events.columns)
    assert events.loc[events["event"] == "left", "data.side"].tolist() == ["L"]
    sides = events[events["event"].isin(["left", "right"])]
    assert sides["metadata.id"].tolist() == [7, 7]


def test_flatten_keeps_a_payload_that_is_not_a_dict_under_its_own_column() -> None:
    rows = [{"seq": 0, "data": ["not", "a", "dict"], "metadata": {"k": 1}}]

    assert flatten_records(rows) == [{"seq": 0, "data": ["not", "a", "dict"], "metadata.k": 1}]


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)

    with pytest.raises(
        MissingDependencyError, match=r"Trace\.to_pandas needs the 'pandas' package"
    ):
        Trace().to_pandas()


def test_importing_the_trace_module_does_not_import_pandas() -> None:
    code = "import sys, baxiflow.trace; print('pandas' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


# JSONL ----------------------------------------------------------------------------------


class Opaque:
    """A value JSON cannot hold, with a stable repr."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Opaque({self.n})"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# Integers around the length past which Python will not write or read them in decimal.
long_integers = st.integers(11_990, 14_500).flatmap(
    lambda bits: st.sampled_from([2**bits - 1, -(2**bits), 10 ** (bits // 3) + 7])
)
holdable_scalars = (
    st.none() | st.booleans() | st.integers() | long_integers | st.floats() | st.text()
)
keys = st.text() | st.integers() | st.sampled_from(sorted(MARKERS))
holdable = st.recursive(
    holdable_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)
opaque = st.integers().map(Opaque) | st.frozensets(st.integers(), max_size=3)
mixed = st.recursive(
    holdable_scalars | opaque,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal with equal types all the way down; NaN equals NaN, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def as_saved(value: Any) -> Any:
    """What a value reads back as: itself, with values JSON cannot hold as ReprValues."""
    if type(value) is list:
        return [as_saved(v) for v in value]
    if type(value) is dict:
        return {k: as_saved(v) for k, v in value.items()}
    if isinstance(value, Opaque | frozenset):
        return ReprValue(repr(value))
    return value


def trace_of(data: Any, metadata: Any) -> Trace:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def emit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("emit", "payload", current=1.5, total=3)
        yield WorkflowEvent("payload", data=data, metadata=metadata)

    return asyncio.run(record(workflow, WorkflowEvent("start", data=data)))


def round_trip(trace: Trace) -> tuple[Trace, str]:
    buffer = io.StringIO()
    trace.to_jsonl(buffer)
    text = buffer.getvalue()
    return Trace.from_jsonl(io.StringIO(text)), text


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(keys, holdable, max_size=4), metadata=holdable)
def test_jsonl_round_trip_is_exact_for_values_json_can_be_made_to_hold(
    data: Any, metadata: Any
) -> None:
    trace = trace_of(data, metadata)

    loaded, _ = round_trip(trace)

    assert same(loaded.records, trace.records)
    assert same(loaded.spans, trace.spans)
    assert same(loaded.runs, trace.runs)


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(st.text(), mixed, max_size=4))
def test_jsonl_stores_other_values_as_marked_reprs_and_saving_again_is_stable(data: Any) -> None:
    trace = trace_of(data, None)

    loaded, text = round_trip(trace)
    _, text_again = round_trip(loaded)

    assert same(loaded.records[-1]["data"], as_saved(data))
    assert text_again == text


def test_jsonl_marks_values_it_cannot_hold_without_crashing() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    value = {"set": {3}, "broken": BrokenRepr(), "cyclic": cyclic, "nan": math.nan}

    encoded = json.loads(json.dumps(to_jsonable(value), allow_nan=False))
    decoded = from_jsonable(encoded)

    assert decoded["set"] == ReprValue("{3}")
    assert decoded["broken"] == "<BrokenRepr object; repr() raised RuntimeError>"
    assert decoded["cyclic"] == [1, ReprValue("[1, [...]]")]
    assert math.isnan(decoded["nan"])
    assert all(isinstance(decoded[k], ReprValue) for k in ("set", "broken"))


async def test_jsonl_file_round_trip_keeps_bound_dropped_counts_and_summary(tmp_path: Path) -> None:
    trace = Trace(max_records=6)
    await record(branching_workflow(), WorkflowEvent("start", metadata={"t": (1, 2)}), trace=trace)
    path = tmp_path / "trace.jsonl"

    trace.to_jsonl(path)
    loaded = Trace.from_jsonl(path)

    assert loaded.max_records == 6
    assert (loaded.dropped_records, loaded.dropped_spans) == (4, 1)
    assert loaded.records == trace.records
    assert loaded.records[-1]["metadata"] == {"t": (1, 2)}
    assert loaded.spans == trace.spans
    assert Trace.from_jsonl(bytes(path)).records == trace.records  # a bytes path too
    assert loaded.runs == trace.runs
    assert str(loaded) == str(trace)
    assert path.read_text(encoding="ascii").count("\n") == 1 + 1 + 6 + 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "line 1: empty file, expected a header"),
        ('{"format": "csv"}\n', "line 1: not a baxiflow trace header"),
        (
            '{"format": "baxiflow-trace", "version": 9}\n',
            "line 1: trace format version 9 is not supported",
        ),
        ('{"format": "baxiflow-trace", "version": 1}\n\n{"record": \n', "line 3: not valid JSON"),
        (
            '{"format": "baxiflow-trace", "version": 1}\n{"row": {}}\n',
            "line 2: expected an object with one key",
        ),
        (
            '{"format": "baxiflow-trace", "version": 1}\n{"run": {"run_id": "x"}}\n',
            "line 2: a run row must have the columns",
        ),
        (
            '{"format": "baxiflow-trace", "version": 1}\n{"span": {"__tuple__": 3}}\n',
            "line 2: malformed __tuple__ marker",
        ),
        (
            '{"format": "baxiflow-trace", "version": 1, "max_records": -2}\n',
            "line 1: max_records must be a positive int",
        ),
        (
            '{"format": "baxiflow-trace", "version": 1, "dropped_records": "a"}\n',
            "line 1: dropped counts",
        ),
    ],
)
def test_from_jsonl_rejects_a_malformed_file_naming_the_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(TraceFormatError, match=re.escape(f"{path} {message}")):
        Trace.from_jsonl(path)


# Summaries ------------------------------------------------------------------------------

# A duration right-aligned in its column: how far it is indented depends on its width.
DURATION = re.compile(r" +\d+(\.\d+)? [µm]?s")


async def test_text_summary_counts_events_and_handlers_and_keeps_times_last() -> None:
    trace = await record(branching_workflow(), WorkflowEvent("start"))

    text = DURATION.sub(" <t>", str(trace))

    assert text == "\n".join(
        [
            "Trace: 1 run (1 error), 10 events, 7 handler calls, 1 error",
            "events:",
            "  event     count",
            "  start         1",
            "  progress      1",
            "  left          1",
            "  right         1",
            "  join          2",
            "  joined        2",
            "  accepted      1",
            "  error         1",
            "handlers:",
            "  handler                                  calls  ok  error  timeout  cancelled  emitted",
            "  branching_workflow.<locals>.split            1   1      0        0          0        3",
            "  branching_workflow.<locals>.side             2   2      0        0          0        2",
            "  branching_workflow.<locals>.first_join       2   2      0        0          0        2",
            "  branching_workflow.<locals>.second_join      2   1      1        0          0        1",
            "errors:",
            "  run 1, seq 9, handler 'branching_workflow.<locals>.second_join' (ValueError): right side rejected",
            "time:",
            "  runs <t>",
            "  branching_workflow.<locals>.split <t>",
            "  branching_workflow.<locals>.side <t>",
            "  branching_workflow.<locals>.first_join <t>",
            "  branching_workflow.<locals>.second_join <t>",
        ]
    )
    assert repr(trace) == str(trace)


def test_text_summary_of_an_empty_trace_says_so() -> None:
    assert str(Trace()) == "Trace: no runs recorded"


async def test_html_summary_highlights_errors_and_escapes_names() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fails(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("<script>alert(1)</script>")
        yield event

    trace = await record(workflow, WorkflowEvent("start"))

    page = trace._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("background:#fdecea") == 3  # the error event row, the handler row, the error
    assert "total time" in page and "mean time" in page
    assert re.search(r"total run time: \d+(\.\d+)? [µm]?s", page)
