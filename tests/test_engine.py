"""The run loop's own contract: starting from a saved state, events from outside, and objects
the loop builds without their constructors."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from baxiflow import EmittedEvent, HandlerCall, WorkflowEvent, WorkflowManager, WorkflowObserver
from baxiflow._engine import Engine, Pending, RunState


def chain() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def begin(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("a")

    @workflow.on("a")
    async def middle(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("middle", "working")
        yield WorkflowEvent("b")

    @workflow.on("b")
    async def end(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    return workflow


class _Collect(WorkflowObserver):
    def __init__(self, into: list[EmittedEvent]) -> None:
        self.into = into

    def event_emitted(self, emitted: EmittedEvent) -> None:
        self.into.append(emitted)


async def observed_run(
    workflow: WorkflowManager, start: WorkflowEvent | RunState, **options: object
) -> list[EmittedEvent]:
    seen: list[EmittedEvent] = []
    engine = Engine(
        workflow._registry.route,
        start,
        observers=[_Collect(seen)],
        **options,  # type: ignore[arg-type]
    )
    async for _ in engine.stream():
        pass
    return seen


def shape(seen: list[EmittedEvent]) -> list[tuple[int, int | None, int, str, str | None]]:
    return [(e.seq, e.parent_seq, e.depth, e.event.name, e.handler_name) for e in seen]


async def test_a_run_started_from_a_saved_state_goes_on_as_the_whole_run_did() -> None:
    workflow = chain()
    whole = shape(await observed_run(workflow, WorkflowEvent("start")))
    # Stopped after "a" was emitted (seq 1) and before it was dispatched.
    state = RunState(
        [Pending(WorkflowEvent("a"), seq=1, depth=1, ancestry=("start",))], seq=1, count=2
    )

    rest = shape(await observed_run(workflow, state))

    assert rest == whole[2:]


async def test_a_saved_state_keeps_counting_toward_max_events_and_names_the_chain() -> None:
    workflow = WorkflowManager()

    @workflow.on("again")
    async def again(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("again")

    ancestry = ("again",) * 5
    state = RunState([Pending(WorkflowEvent("again"), 5, 5, ancestry)], seq=5, count=6)
    seen = await observed_run(workflow, state, max_events=8)

    # Counted on from 6: the event that passes 8 is still yielded, then the final error.
    assert [e.seq for e in seen] == [6, 7, 8, 9]
    final = seen[-1].event
    assert final.data is not None and final.data["reason"] == "max_events"
    assert final.data["cycle"] == ["again", "again"]


async def test_a_pending_event_runs_only_the_handlers_still_to_run() -> None:
    workflow = WorkflowManager()
    ran: list[str] = []

    @workflow.on("start")
    async def first(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        ran.append("first")
        yield WorkflowEvent("one")

    @workflow.on("start")
    async def second(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        ran.append("second")
        yield WorkflowEvent("two")

    state = RunState([Pending(WorkflowEvent("start"), 0, 0, (), positions=(1,))], seq=1, count=2)
    seen = await observed_run(workflow, state)

    assert ran == ["second"]
    assert shape(seen) == [(2, 0, 1, "two", second.__qualname__)]


def test_a_state_with_nothing_to_dispatch_is_refused() -> None:
    with pytest.raises(ValueError, match="must start from an event"):
        Engine(WorkflowManager()._registry.route, RunState())


async def test_an_open_inbox_waits_for_events_from_outside_and_ends_when_closed() -> None:
    workflow = WorkflowManager()

    @workflow.on("answer")
    async def thank(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("thanked", event.data)

    seen: list[EmittedEvent] = []
    engine = Engine(workflow._registry.route, WorkflowEvent("ask"), observers=[_Collect(seen)])
    engine.open_inbox()
    received: list[str] = []

    async def consume() -> None:
        async for event in engine.stream():
            received.append(event.name)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    assert received == ["ask"] and not task.done()  # waiting, not ended

    engine.deliver(WorkflowEvent("answer", {"value": 42}))
    await asyncio.sleep(0.01)
    assert received == ["ask", "answer", "thanked"] and not task.done()

    engine.close_inbox()
    await asyncio.wait_for(task, 1)
    # An event from outside is a root: no parent, depth 0, no handler.
    assert shape(seen) == [
        (0, None, 0, "ask", None),
        (1, None, 0, "answer", None),
        (2, 1, 1, "thanked", thank.__qualname__),
    ]


async def test_delivering_to_a_run_without_an_inbox_is_refused() -> None:
    engine = Engine(WorkflowManager()._registry.route, WorkflowEvent("start"))
    with pytest.raises(RuntimeError, match="open_inbox"):
        engine.deliver(WorkflowEvent("late"))


async def test_the_events_and_calls_observers_get_have_every_field_set() -> None:
    # EmittedEvent is built from a tuple without the named tuple's __new__: prove it whole.
    calls: list[HandlerCall] = []

    class Everything(_Collect):
        def handler_finished(self, call: HandlerCall) -> None:
            calls.append(call)

    seen: list[EmittedEvent] = []
    engine = Engine(chain()._registry.route, WorkflowEvent("start"), observers=[Everything(seen)])
    async for _ in engine.stream():
        pass

    assert seen
    for emitted in seen:
        assert type(emitted) is EmittedEvent
        assert len(emitted) == len(EmittedEvent._fields)
        assert EmittedEvent(*emitted) == emitted
        assert emitted.run.run_id == engine.run_id
    for call in calls:
        assert all(hasattr(call, f.name) for f in dataclasses.fields(HandlerCall))
        assert call.status == "ok" and call.finished is not None
