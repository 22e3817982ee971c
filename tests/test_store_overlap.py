"""Durable runs whose handler calls overlap: killed (SIGKILL) with calls in flight, resumed;
and an event the log refuses from a call running in a task of its own."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from test_store import EXAMPLES, _kill_and_resume, collect

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow._durable import LoggedEvent
from baxiflow.store import SQLiteStore
from baxiflow.trace import Trace


def load_fan_out() -> Any:
    import importlib.util

    path = EXAMPLES / "durable_fan_out.py"
    spec = importlib.util.spec_from_file_location("durable_fan_out", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fan_out = load_fan_out()

Shape = tuple[str, Any]


def shape_of(event: WorkflowEvent) -> Shape:
    return (event.name, repr(event.data))  # repr: data holds dicts, which do not hash


def calls_of(logged: list[LoggedEvent]) -> dict[tuple[Shape | None, int | None], list[Shape]]:
    """Each handler call's events in the order it yielded them, keyed by what it handled
    and the handler's position: what the docs promise stays the same whatever the timing."""
    by_seq = {e.seq: e for e in logged}
    calls: dict[tuple[Shape | None, int | None], list[Shape]] = {}
    for e in sorted(logged, key=lambda e: e.seq):
        parent = None if e.parent_seq is None else shape_of(by_seq[e.parent_seq].event)
        calls.setdefault((parent, e.position), []).append(shape_of(e.event))
    return calls


def check_like_the_uninterrupted_run(logged: list[LoggedEvent], reference: list[LoggedEvent]) -> None:  # fmt: skip
    assert [e.seq for e in logged] == list(range(len(logged)))  # no gap, no duplicate
    assert Counter(shape_of(e.event) for e in logged) == Counter(
        shape_of(e.event) for e in reference
    )  # every event exactly once
    by_seq = {e.seq: e for e in logged}
    assert all(e.parent_seq is None or e.parent_seq < e.seq for e in logged)
    assert all(by_seq[e.parent_seq].event.name != "progress" for e in logged if e.parent_seq)
    assert calls_of(logged) == calls_of(reference)  # each call's events, in its order
    tasks = [e for e in logged if e.event.name == "task"]
    for task in tasks:  # the handlers of one event keep their sequence: audit after work
        done = next(e.seq for e in logged if e.event.name == "task_done" and e.parent_seq == task.seq)  # fmt: skip
        audited = next(e.seq for e in logged if e.event.name == "audited" and e.parent_seq == task.seq)  # fmt: skip
        assert done < audited


def in_flight(logged: list[LoggedEvent], reference: list[LoggedEvent]) -> int:
    """Handler calls of the killed run that had yielded some of their events, not all."""
    whole = {key: len(events) for key, events in calls_of(reference).items()}
    return sum(0 < len(events) < whole[key] for key, events in calls_of(logged).items())


async def test_runs_with_calls_in_flight_killed_at_random_points_resume_to_a_whole_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    await collect(fan_out.build().process(WorkflowEvent("start"), store=store, run_id="whole"))
    reference = store.logged("whole")
    store.close()

    def begun(run_id: str) -> bool:
        with contextlib.closing(sqlite3.connect(path)) as reader:
            query = (
                "SELECT 1 FROM baxiflow_events JOIN baxiflow_runs"
                " ON run_no = log_key / 4294967296 WHERE run_id = ?"
            )
            return reader.execute(query, (run_id,)).fetchone() is not None

    generator = random.Random(20261215)
    overlapping_kills = 0
    for attempt in range(16):
        run_id = f"run-{attempt}"
        _kill_and_resume(str(path), run_id, generator.uniform(0.0, 0.25), begun, "durable_fan_out.py")  # fmt: skip
        store = SQLiteStore(path)
        try:
            status = next(r["status"] for r in store.runs() if r["run_id"] == run_id)
            if status != "finished":
                overlapping_kills += in_flight(store.logged(run_id), reference) >= 2
                await collect(fan_out.build().resume(run_id, store))
            check_like_the_uninterrupted_run(store.logged(run_id), reference)
            assert next(r["status"] for r in store.runs() if r["run_id"] == run_id) == "finished"
        finally:
            store.close()
    # Kills came while several calls were in flight, part of their events logged.
    assert overlapping_kills >= 3


async def test_a_run_stopped_with_three_calls_in_flight_runs_each_again_on_resume(
    tmp_path: Path,
) -> None:
    started: list[int] = []
    all_started = asyncio.Barrier(3)

    def build() -> WorkflowManager:
        workflow = WorkflowManager(concurrency=3)

        @workflow.on("start")
        async def plan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            for task in range(3):
                yield WorkflowEvent("task", {"task": task})

        @workflow.on("task")
        async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            assert event.data is not None
            started.append(event.data["task"])
            yield WorkflowEvent("begun", event.data)
            await all_started.wait()
            yield WorkflowEvent("finished", event.data)

        return workflow

    store = SQLiteStore(tmp_path / "runs.db")
    stream = build().process(WorkflowEvent("start"), store=store, run_id="cut")
    first = [event async for event in _until(stream, lambda seen: seen.count("begun") == 3)]
    await stream.aclose()
    assert started == [0, 1, 2] and store.runs()[0]["status"] == "interrupted"

    all_started = asyncio.Barrier(3)
    rest = await collect(build().resume("cut", store))

    assert started == [0, 1, 2, 0, 1, 2]  # the three calls in flight, each again
    assert sorted(shape_of(e) for e in first + rest) == sorted(
        [("start", "None")]
        + [
            (name, repr({"task": task}))
            for name in ("task", "begun", "finished")
            for task in range(3)
        ]
    )
    assert [e.name for e in rest] == ["finished"] * 3  # "begun" was logged: matched, not repeated
    assert [e.seq for e in store.logged("cut")] == list(range(10))
    store.close()


async def _until(stream: AsyncIterator[WorkflowEvent], enough: Any) -> AsyncIterator[WorkflowEvent]:
    seen: list[str] = []
    async for event in stream:
        seen.append(event.name)
        yield event
        if enough(seen):
            return


async def test_an_event_the_log_refuses_from_a_call_in_its_own_task_fails_only_that_call(
    tmp_path: Path,
) -> None:
    workflow = WorkflowManager(concurrency=2)
    closed: list[str] = []
    tasks_before = len(asyncio.all_tasks())

    @workflow.on("start")
    async def remember(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            await asyncio.sleep(0.005)  # the other call is running: this one has a task
            yield WorkflowEvent("kept", {"pair": (1, 2)})
            yield WorkflowEvent("unloggable", {"seen": {"a", "b"}})
            yield WorkflowEvent("never")
        finally:
            closed.append("remember")

    @workflow.on("start")  # the next handler of the event, after the failed call
    async def after(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("after")

    @workflow.on("start", sequential=False)
    async def steady(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for step in range(4):
            await asyncio.sleep(0.003)
            yield WorkflowEvent("tick", {"step": step})

    store = SQLiteStore(tmp_path / "runs.db")
    trace = Trace()
    events = await collect(
        workflow.process(WorkflowEvent("start"), store=store, run_id="r", observers=[trace])
    )

    names = [e.name for e in events]
    assert sorted(names) == sorted(["start", "kept", "error", "after", "tick", "tick", "tick", "tick"])  # fmt: skip
    error = events[names.index("error")]
    assert error.data is not None and error.data["handler"] == remember.__qualname__
    assert error.data["reason"] == "refused_event" and "data['seen'] is a set" in str(error.error)
    assert names.index("kept") < names.index("error") < names.index("after")
    assert closed == ["remember"]  # its finally ran
    assert [e.event.name for e in store.logged("r")] == names
    assert store.runs()[0]["status"] == "finished"
    spans = {s["handler"]: s["status"] for s in trace.spans}
    assert spans == {remember.__qualname__: "error", after.__qualname__: "ok", steady.__qualname__: "ok"}  # fmt: skip
    assert len(asyncio.all_tasks()) == tasks_before  # no call's task outlived the run
    store.close()
