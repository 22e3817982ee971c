"""Properties over random registries (DAGs and cycles): order, nothing lost, termination, cycles."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from baxiflow import (
    EmittedEvent,
    HandlerCall,
    RunInfo,
    Trace,
    WorkflowEvent,
    WorkflowManager,
    WorkflowObserver,
)

NAMES = ["a", "b", "c", "d", "e"]

# A handler is a list of steps: emit an event name, report progress, or raise.
step = st.one_of(st.sampled_from(NAMES), st.just("<progress>"), st.just("<raise>"))
handler_spec = st.lists(step, max_size=4)
registry_spec = st.dictionaries(
    st.sampled_from([*NAMES, "error"]), st.lists(handler_spec, min_size=1, max_size=3), max_size=5
)


def build(spec: dict[str, list[list[str]]], max_events: int) -> WorkflowManager:
    workflow = WorkflowManager(max_events=max_events)
    for event_name, handlers in spec.items():
        for steps in handlers:

            async def handler(
                event: WorkflowEvent, steps: list[str] = steps
            ) -> AsyncIterator[WorkflowEvent]:
                for s in steps:
                    await asyncio.sleep(0)
                    if s == "<progress>":
                        yield WorkflowEvent.progress("p", "step")
                    elif s == "<raise>":
                        raise RuntimeError("planned")
                    else:
                        yield WorkflowEvent(s)

            workflow.register(event_name, handler)
    return workflow


def expected_names(spec: dict[str, list[list[str]]], start: str, max_events: int) -> list[str]:
    """The reference semantics: FIFO dispatch, handlers in order, limit on non-progress events."""
    out = [start]
    counted = 1
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for steps in spec.get(current, []):
            for s in steps:
                if s == "<progress>":
                    out.append("progress")
                    continue
                name = "error" if s == "<raise>" else s
                out.append(name)
                counted += 1
                # An error raised while handling an error is not dispatched.
                if name != "error" or current != "error":
                    queue.append(name)
                if counted > max_events:
                    return [*out, "error"]
                if s == "<raise>":
                    break
    return out


def emits_graph(spec: dict[str, list[list[str]]]) -> set[tuple[str, str]]:
    return {
        (event, "error" if s == "<raise>" else s)
        for event, handlers in spec.items()
        for steps in handlers
        for s in steps
        if s != "<progress>"
    }


class EveryHook(WorkflowObserver):
    """Overrides every hook, so the run takes every observed path; checks they pair up."""

    def __init__(self) -> None:
        self.emitted: list[EmittedEvent] = []
        self.running: list[HandlerCall] = []
        self.log: list[str] = []

    def run_started(self, run: RunInfo) -> None:
        self.log.append("run_started")

    def event_emitted(self, emitted: EmittedEvent) -> None:
        # A handler's event names its running call; the others name none.
        assert emitted.call is None or emitted.call is self.running[-1]
        self.emitted.append(emitted)

    def handler_started(self, call: HandlerCall) -> None:
        assert not self.running, "one handler call at a time"
        self.running.append(call)

    def handler_finished(self, call: HandlerCall) -> None:
        assert self.running == [call] and call.status != "running"
        self.running.clear()

    def run_finished(self, run: RunInfo) -> None:
        assert not self.running and run.events == len(self.emitted)
        self.log.append("run_finished")


async def run(
    workflow: WorkflowManager, start: str
) -> tuple[list[WorkflowEvent], list[EmittedEvent]]:
    watcher = EveryHook()
    events = [e async for e in workflow.process(WorkflowEvent(start), observers=[watcher])]
    assert watcher.log == ["run_started", "run_finished"]
    return events, watcher.emitted


@settings(max_examples=150, deadline=None)
@given(spec=registry_spec, start=st.sampled_from(NAMES), max_events=st.integers(1, 40))
def test_every_event_is_yielded_once_in_emission_order_and_the_stream_ends(
    spec: dict[str, list[list[str]]], start: str, max_events: int
) -> None:
    events, observed = asyncio.run(run(build(spec, max_events), start))
    assert [e.name for e in events] == expected_names(spec, start, max_events)
    # Each yielded event is the very object emitted, numbered in yield order, none twice.
    assert [o.seq for o in observed] == list(range(len(events)))
    assert all(o.event is e for o, e in zip(observed, events, strict=True))
    assert len({id(e) for e in events}) == len(events)
    # Causal links point backwards, to events that were dispatched.
    for o in observed[1:]:
        assert o.parent_seq is not None and o.parent_seq < o.seq
        assert observed[o.parent_seq].depth == o.depth - 1


async def run_each_way(
    workflow: WorkflowManager, start: str
) -> list[list[tuple[str, Any, str | None]]]:
    """The events of one run without observers, with observers, and with a timeout guard."""

    async def names(**options: Any) -> list[tuple[str, Any, str | None]]:
        stream = workflow.process(WorkflowEvent(start), **options)
        return [(e.name, e.data, e.error) async for e in stream]

    return [
        await names(),
        await names(observers=[WorkflowObserver()]),
        await names(observers=[EveryHook(), Trace()]),
        await names(timeout=60, handler_timeout=60),
    ]


@settings(max_examples=150, deadline=None)
@given(spec=registry_spec, start=st.sampled_from(NAMES), max_events=st.integers(1, 40))
def test_observers_and_guards_never_change_what_a_run_yields(
    spec: dict[str, list[list[str]]], start: str, max_events: int
) -> None:
    # Hooks are gated inside the one loop; whichever are on, a run yields the same events.
    plain, observed, every_hook, guarded = asyncio.run(run_each_way(build(spec, max_events), start))
    assert plain == observed == every_hook == guarded
    assert [name for name, _, _ in plain] == expected_names(spec, start, max_events)


@settings(max_examples=100, deadline=None)
@given(spec=registry_spec, start=st.sampled_from(NAMES), max_events=st.integers(1, 40))
def test_a_tripped_guard_names_a_real_cycle_of_the_registry(
    spec: dict[str, list[list[str]]], start: str, max_events: int
) -> None:
    events, _ = asyncio.run(run(build(spec, max_events), start))
    final = events[-1]
    if not (final.data and final.data.get("reason") == "max_events"):
        return
    cycle: list[str] = final.data["cycle"]
    if cycle:
        assert cycle[0] == cycle[-1]
        assert set(itertools.pairwise(cycle)) <= emits_graph(spec)
        assert " -> ".join(cycle) in (final.error or "")


@settings(max_examples=60, deadline=None)
@given(spec=registry_spec, start=st.sampled_from(NAMES))
def test_cyclic_registries_always_trip_the_guard_with_a_named_cycle(
    spec: dict[str, list[list[str]]], start: str
) -> None:
    # Make a guaranteed reachable cycle start -> start, never broken by a raise.
    spec = {**spec, start: [[start], *spec.get(start, [])]}
    events, _ = asyncio.run(run(build(spec, 30), start))
    final: Any = events[-1]
    assert final.data["reason"] == "max_events"
    assert final.data["cycle"][0] == final.data["cycle"][-1]
    assert set(itertools.pairwise(final.data["cycle"])) <= emits_graph(spec)
