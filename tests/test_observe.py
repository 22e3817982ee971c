"""Observers see every event with its context, per manager and per run, and never break a run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from baxiflow import (
    EmittedEvent,
    HandlerCall,
    ObserverWarning,
    RunInfo,
    WorkflowEvent,
    WorkflowManager,
    WorkflowObserver,
)
from baxiflow._recording import Recorder as RowRecorder


class Recorder(WorkflowObserver):
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def run_started(self, run: RunInfo) -> None:
        self.log.append(("run_started", run.status))

    def event_emitted(self, emitted: EmittedEvent) -> None:
        self.log.append(
            ("event", (emitted.seq, emitted.event.name, emitted.parent_seq, emitted.depth))
        )

    def handler_started(self, call: HandlerCall) -> None:
        self.log.append(("handler_started", (call.handler_name, call.trigger_seq, call.position)))

    def handler_finished(self, call: HandlerCall) -> None:
        self.log.append(("handler_finished", (call.handler_name, call.status, call.emitted)))

    def run_finished(self, run: RunInfo) -> None:
        self.log.append(("run_finished", (run.status, run.events, run.errors)))


def chain() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def first(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("first", "working")
        yield WorkflowEvent("next")

    @workflow.on("next")
    async def second(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("completed")

    return workflow


async def drain(events: AsyncIterator[WorkflowEvent]) -> list[WorkflowEvent]:
    return [e async for e in events]


async def test_observer_sees_runs_handlers_and_events_in_order_with_context() -> None:
    recorder = Recorder()
    await drain(chain().process(WorkflowEvent("start"), observers=[recorder]))
    q = "chain.<locals>."
    assert recorder.log == [
        ("run_started", "running"),
        ("event", (0, "start", None, 0)),
        ("handler_started", (q + "first", 0, 0)),
        ("event", (1, "progress", 0, 1)),
        ("event", (2, "next", 0, 1)),
        ("handler_finished", (q + "first", "ok", 2)),
        ("handler_started", (q + "second", 2, 0)),
        ("event", (3, "completed", 2, 2)),
        ("handler_finished", (q + "second", "ok", 1)),
        ("run_finished", ("ok", 4, 0)),
    ]


async def test_emitted_events_carry_handler_call_and_times() -> None:
    seen: list[EmittedEvent] = []
    await drain(chain().process(WorkflowEvent("start"), observers=[seen.append]))
    assert seen[0].handler_name is None and seen[0].call is None
    assert seen[2].handler_name == "chain.<locals>.first"
    assert seen[2].call is not None and seen[2].call.trigger is seen[0].event
    assert seen[2].call.trigger_seq == 0
    assert all(a.elapsed <= b.elapsed for a, b in itertools.pairwise(seen))
    assert len({e.run.run_id for e in seen}) == 1
    assert all(e.timestamp > 1_600_000_000 for e in seen)


async def test_manager_observers_see_every_run_and_run_observers_only_theirs() -> None:
    everywhere: list[str] = []
    once: list[str] = []
    workflow = chain().observe(lambda e: everywhere.append(e.event.name))
    await drain(
        workflow.process(WorkflowEvent("start"), observers=[lambda e: once.append(e.event.name)])
    )
    await drain(workflow.process(WorkflowEvent("start")))
    assert len(everywhere) == 8
    assert once == ["start", "progress", "next", "completed"]


async def test_a_raising_observer_warns_once_and_never_breaks_the_run() -> None:
    def broken(emitted: EmittedEvent) -> None:
        raise RuntimeError("observer bug")

    with pytest.warns(ObserverWarning, match="observer bug") as caught:
        events = await drain(chain().process(WorkflowEvent("start"), observers=[broken]))
    assert [e.name for e in events] == ["start", "progress", "next", "completed"]
    assert len(caught) == 1
    # It points at the code iterating the run (here this file's drain), not at baxiflow.
    assert caught[0].filename == __file__


@pytest.mark.parametrize("failing", ["event", "call"])
async def test_a_recorder_whose_sink_raises_warns_once_and_never_breaks_the_run(
    failing: str,
) -> None:
    # Sinks (a Recorder's, what Trace uses) fail like any observer.
    kept: list[object] = []

    def broken(fields: object) -> None:
        raise RuntimeError("sink bug")

    class Sinking(RowRecorder):
        def recording_sinks(self) -> tuple[Any, Any]:
            return (broken, kept.append) if failing == "event" else (kept.append, broken)

    with pytest.warns(ObserverWarning, match="sink bug") as caught:
        events = await drain(chain().process(WorkflowEvent("start"), observers=[Sinking()]))
    assert [e.name for e in events] == ["start", "progress", "next", "completed"]
    assert len(caught) == 1
    assert len(kept) == (2 if failing == "event" else 4)


async def test_an_observer_that_answers_every_attribute_is_an_ordinary_observer() -> None:
    seen: list[str] = []

    class Lenient(WorkflowObserver):
        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

        def event_emitted(self, emitted: EmittedEvent) -> None:
            seen.append(emitted.event.name)

    events = await drain(chain().process(WorkflowEvent("start"), observers=[Lenient()]))
    assert seen == [e.name for e in events] == ["start", "progress", "next", "completed"]


async def test_an_observer_warning_made_an_error_ends_the_run_without_blaming_the_handler() -> None:
    # tests run with warnings as errors, as the README's "unless you turn that warning
    # into an error" describes.
    log: list[str] = []

    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            yield WorkflowEvent("a")
            yield WorkflowEvent("b")
        finally:
            log.append("work finally")

    def broken(emitted: EmittedEvent) -> None:
        if emitted.event.name == "a":
            raise RuntimeError("observer bug")

    workflow = WorkflowManager().register("start", work)
    with pytest.raises(ObserverWarning, match="observer bug"):
        async for event in workflow.process(WorkflowEvent("start"), observers=[broken]):
            log.append(event.name)
    assert log == ["start", "work finally"]


def test_an_observer_class_instead_of_an_instance_is_refused_saying_so() -> None:
    with pytest.raises(
        TypeError, match=r"observer Recorder is a class; pass an instance: Recorder\(\)"
    ):
        WorkflowManager(observers=[Recorder])  # type: ignore[list-item]


def test_observers_must_be_observer_objects_or_callables() -> None:
    with pytest.raises(TypeError, match="neither a WorkflowObserver nor a callable"):
        WorkflowManager(observers=[42])  # type: ignore[list-item]


async def test_failed_handler_is_reported_with_error_status_and_message() -> None:
    recorder = Recorder()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fails(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fails", "trying")
        raise ValueError("nope")

    calls: list[HandlerCall] = []

    class Calls(WorkflowObserver):
        def handler_finished(self, call: HandlerCall) -> None:
            calls.append(call)

    await drain(workflow.process(WorkflowEvent("start"), observers=[recorder, Calls()]))
    assert recorder.log[-3:] == [
        ("handler_finished", (fails.__qualname__, "error", 1)),
        ("event", (2, "error", 0, 1)),
        ("run_finished", ("error", 3, 1)),
    ]
    assert calls[0].error == "nope"
    assert calls[0].duration is not None and calls[0].duration >= 0


async def test_early_stop_reports_the_running_handler_cancelled_and_the_run_stopped() -> None:
    recorder = Recorder()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def endless(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        while True:
            yield WorkflowEvent.progress("endless", "tick")
            await asyncio.sleep(0)

    async with contextlib.aclosing(
        workflow.process(WorkflowEvent("start"), observers=[recorder])
    ) as events:
        async for event in events:
            if event.is_progress:
                break
    assert recorder.log[-2:] == [
        ("handler_finished", (endless.__qualname__, "cancelled", 1)),
        ("run_finished", ("stopped", 2, 0)),
    ]


async def test_guard_trip_reports_timeout_status() -> None:
    recorder = Recorder()
    workflow = WorkflowManager(handler_timeout=0.02)

    @workflow.on("start")
    async def sleeps(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield event

    await drain(workflow.process(WorkflowEvent("start"), observers=[recorder]))
    assert recorder.log[-3:] == [
        ("handler_finished", (sleeps.__qualname__, "timeout", 0)),
        ("event", (1, "error", 0, 1)),
        ("run_finished", ("timeout", 2, 1)),
    ]


async def test_task_cancellation_reports_cancelled_run() -> None:
    recorder = Recorder()
    started = asyncio.Event()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def waits(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        started.set()
        await asyncio.sleep(10)
        yield event

    task = asyncio.create_task(
        drain(workflow.process(WorkflowEvent("start"), observers=[recorder]))
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.log[-1] == ("run_finished", ("cancelled", 1, 0))
    assert recorder.log[-2] == ("handler_finished", (waits.__qualname__, "cancelled", 0))


def test_long_chains_keep_memory_flat_even_with_observers_attached() -> None:
    import tracemalloc

    def peak(steps: int) -> int:
        workflow = WorkflowManager(max_events=steps + 10)

        @workflow.on("step")
        async def advance(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            assert event.data is not None
            if event.data["i"] < steps:
                yield WorkflowEvent("step", {"i": event.data["i"] + 1})

        class Noop(WorkflowObserver):
            def event_emitted(self, emitted: EmittedEvent) -> None:
                pass

            def handler_finished(self, call: HandlerCall) -> None:
                pass

        async def run_to_end() -> None:
            async for _ in workflow.process(WorkflowEvent("step", {"i": 0}), observers=[Noop()]):
                pass

        tracemalloc.start()
        asyncio.run(run_to_end())
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(1_000), peak(20_000)
    assert large < small * 2, (small, large)


async def test_an_observer_raising_in_every_hook_warns_once_per_run_and_never_breaks_it() -> None:
    class Broken(WorkflowObserver):
        def run_started(self, run: RunInfo) -> None:
            raise RuntimeError("run_started bug")

        def event_emitted(self, emitted: EmittedEvent) -> None:
            raise RuntimeError("event bug")

        def handler_started(self, call: HandlerCall) -> None:
            raise RuntimeError("handler_started bug")

        def handler_finished(self, call: HandlerCall) -> None:
            raise RuntimeError("handler_finished bug")

        def run_finished(self, run: RunInfo) -> None:
            raise RuntimeError("run_finished bug")

    recorder = Recorder()
    with pytest.warns(ObserverWarning, match="raised in run_started") as caught:
        events = await drain(
            chain().process(WorkflowEvent("start"), observers=[Broken(), recorder])
        )

    assert [e.name for e in events] == ["start", "progress", "next", "completed"]
    assert len(caught) == 1
    # The observer after the broken one still saw everything.
    assert recorder.log[-1] == ("run_finished", ("ok", 4, 0))


async def test_concurrent_runs_report_only_to_their_own_run_observers() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def ticks(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        for i in range(event.data["n"]):
            await asyncio.sleep(0)
            yield WorkflowEvent("tick", {"who": event.data["who"], "i": i})

    seen: dict[str, list[EmittedEvent]] = {"a": [], "b": []}
    runs = [("a", 5), ("b", 3)]
    await asyncio.gather(
        *(
            drain(
                workflow.process(
                    WorkflowEvent("start", {"who": who, "n": n}), observers=[seen[who].append]
                )
            )
            for who, n in runs
        )
    )

    for who, n in runs:
        assert [e.seq for e in seen[who]] == list(range(n + 1))
        assert {e.event.data["who"] for e in seen[who] if e.event.data} == {who}
        assert len({e.run.run_id for e in seen[who]}) == 1
    assert seen["a"][0].run.run_id != seen["b"][0].run.run_id
