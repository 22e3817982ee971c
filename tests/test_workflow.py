"""The workflow core as the spec describes it: every example, chaining, errors, guards, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import inspect
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from baxiflow import (
    HandlerTypeError,
    HandlerWarning,
    WorkflowEvent,
    WorkflowManager,
    WorkflowObserver,
)
from baxiflow.exceptions import EventNameError

EXAMPLES = Path(__file__).parent / "examples"


class SeesEverything(WorkflowObserver):
    """Overrides every hook, so a run it watches calls every hook of the run loop."""

    def run_started(self, run: Any) -> None:
        pass

    def event_emitted(self, emitted: Any) -> None:
        pass

    def handler_started(self, call: Any) -> None:
        pass

    def handler_finished(self, call: Any) -> None:
        pass

    def run_finished(self, run: Any) -> None:
        pass


@pytest.fixture(autouse=True, params=["unobserved", "observed"])
def hooks_off_and_on(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test here with the run loop's hooks off, and with all of them on.

    A run nobody observes (and without timeouts) calls no hook; the "observed" variant adds
    an observer of every hook to every ``process()`` call, so the same behaviour is checked
    with each hook in play.
    """
    if request.param == "unobserved":
        return
    process = WorkflowManager.process

    def observed(self: WorkflowManager, initial_event: Any, **options: Any) -> Any:
        options["observers"] = [*options.get("observers", ()), SeesEverything()]
        return process(self, initial_event, **options)

    monkeypatch.setattr(WorkflowManager, "process", observed)


async def collect(
    workflow: WorkflowManager, event: WorkflowEvent, **kwargs: Any
) -> list[WorkflowEvent]:
    return [e async for e in workflow.process(event, **kwargs)]


def names(events: list[WorkflowEvent]) -> list[str]:
    return [e.name for e in events]


# The spec's examples, as written (only the import path changed) ---------------------------


def test_seed_full_example_prints_the_documented_output() -> None:
    result = subprocess.run(
        [sys.executable, "seed_example.py"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "Greeting: Hello, Alice!",
        "Progress update: greeting - Sending welcome message",
        "Processing user: Alice with action: welcome",
        "Progress update: processing - Updating user records",
        "Workflow completed: User Alice processed successfully",
    ]
    assert result.stderr == ""


async def test_seed_full_example_yields_initial_event_first_then_emission_order() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import seed_example
    finally:
        sys.path.remove(str(EXAMPLES))
    events = await collect(seed_example.workflow, seed_example.initial_event)
    assert names(events) == ["start", "progress", "process_user", "progress", "completed"]
    assert events[0] is seed_example.initial_event
    assert events[-1].metadata == {"session_id": "12345"}


async def test_seed_registration_snippet_runs_handlers_in_sequence_and_chains() -> None:
    calls: list[str] = []

    def recorder(label: str, emits: str | None = None) -> Any:
        async def handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
            calls.append(label)
            if emits:
                yield WorkflowEvent(name=emits, data=event.data)

        handler.__qualname__ = label
        return handler

    start_handler = recorder("start_handler", "process_data")
    validation_handler = recorder("validation_handler")
    transformation_handler = recorder("transformation_handler", "event1")
    handler1 = recorder("handler1", "event2")
    handler2 = recorder("handler2")

    # The spec's registration snippet, verbatim.
    workflow = WorkflowManager()

    # Register a handler for the "start" event
    workflow.register("start", start_handler)

    # Register multiple handlers for the same event (they'll run in sequence)
    workflow.register("process_data", validation_handler)
    workflow.register("process_data", transformation_handler)

    # Chain registration is supported
    workflow.register("event1", handler1).register("event2", handler2)

    events = await collect(workflow, WorkflowEvent("start", data={}))
    assert calls == [
        "start_handler",
        "validation_handler",
        "transformation_handler",
        "handler1",
        "handler2",
    ]
    assert names(events) == ["start", "process_data", "event1", "event2"]


async def test_seed_search_handler_reports_progress_then_results() -> None:
    async def perform_search(query: str) -> list[str]:
        await asyncio.sleep(0)
        return [f"result for {query}"]

    async def search_handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
        # Report progress
        yield WorkflowEvent.progress("search", "Searching for information...")

        # Perform work
        search_results = await perform_search(event.data["query"])

        # Return results with a new event type
        yield WorkflowEvent(
            name="search_completed",
            data={"search_results": search_results},
            metadata=event.metadata,
        )

    workflow = WorkflowManager().register("search", search_handler)
    events = await collect(
        workflow, WorkflowEvent("search", {"query": "baxi"}, {"session_id": "1"})
    )
    assert names(events) == ["search", "progress", "search_completed"]
    assert events[1].data == {"step": "search", "description": "Searching for information..."}
    assert events[2].data == {"search_results": ["result for baxi"]}
    assert events[2].metadata == {"session_id": "1"}


async def test_seed_complex_handler_progress_does_not_change_direction() -> None:
    async def some_operation() -> None:
        await asyncio.sleep(0)

    another_operation = some_operation

    async def complex_handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
        # Report progress without changing workflow direction
        yield WorkflowEvent.progress("step1", "Starting processing...")

        # Do some work
        await some_operation()

        yield WorkflowEvent.progress("step2", "Halfway done...")

        # Do more work
        await another_operation()

        # Continue the workflow with a new event
        yield WorkflowEvent(name="next_step", data={"result": "success"})

    workflow = WorkflowManager().register("go", complex_handler)
    events = await collect(workflow, WorkflowEvent("go"))
    assert names(events) == ["go", "progress", "progress", "next_step"]


def test_a_handler_for_progress_is_refused_since_it_could_never_run() -> None:
    async def log_progress(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    workflow = WorkflowManager()
    with pytest.raises(EventNameError, match=r"never dispatched.*observers=\[callback\]"):
        workflow.register("progress", log_progress)
    with pytest.raises(EventNameError, match="never dispatched"):
        workflow.on("progress")
    assert workflow.event_names == []


def test_on_without_an_event_name_fails_at_once_saying_how_to_write_it() -> None:
    workflow = WorkflowManager()

    async def start(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    with pytest.raises(EventNameError, match=r'write @workflow.on\("name"\)'):
        workflow.on(start)  # type: ignore[arg-type]  # what @workflow.on without () does
    with pytest.raises(EventNameError, match="non-empty string, got 123"):
        workflow.on(123)  # type: ignore[arg-type]
    assert workflow.event_names == []


@pytest.mark.parametrize("fails", [False, True])
async def test_seed_risky_handler_turns_exceptions_into_error_events(fails: bool) -> None:
    async def risky_operation() -> str:
        if fails:
            raise ConnectionError("backend unreachable")
        return "fine"

    async def risky_handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
        try:
            result = await risky_operation()
            yield WorkflowEvent(name="success", data={"result": result})
        except Exception as e:
            yield WorkflowEvent(name="error", error=str(e), metadata=event.metadata)

    workflow = WorkflowManager().register("start", risky_handler)
    events = await collect(workflow, WorkflowEvent("start", metadata={"session_id": "9"}))
    if fails:
        assert names(events) == ["start", "error"]
        assert events[1].error == "backend unreachable"
        assert events[1].metadata == {"session_id": "9"}
    else:
        assert names(events) == ["start", "success"]


def test_seed_dataclass_fields_and_defaults() -> None:
    event = WorkflowEvent("start")
    assert (event.name, event.data, event.metadata, event.error) == ("start", None, None, None)
    assert [f for f in WorkflowEvent.__dataclass_fields__] == ["name", "data", "metadata", "error"]


# Registration ----------------------------------------------------------------------------


async def plain_coroutine(event: WorkflowEvent) -> WorkflowEvent:
    return event


def sync_generator(event: WorkflowEvent) -> Any:
    yield event


def test_register_rejects_plain_coroutine_function_naming_it() -> None:
    with pytest.raises(
        HandlerTypeError, match=r"'plain_coroutine' is a coroutine function.*async generator"
    ):
        WorkflowManager().register("start", plain_coroutine)  # type: ignore[arg-type]


def test_register_rejects_sync_generator_and_non_callables_as_type_errors() -> None:
    with pytest.raises(TypeError, match="'sync_generator' is a sync generator function"):
        WorkflowManager().register("start", sync_generator)
    with pytest.raises(TypeError, match="not callable"):
        WorkflowManager().register("start", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", None, 3])
def test_register_rejects_bad_event_names_with_value_error(bad: Any) -> None:
    async def handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    with pytest.raises(EventNameError) as info:
        WorkflowManager().register(bad, handler)
    assert isinstance(info.value, ValueError)


def test_event_rejects_empty_name() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        WorkflowEvent("")


async def test_register_accepts_objects_whose_call_is_an_async_generator() -> None:
    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        async def __call__(self, event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent("done", {"text": self.greeting})

    workflow = WorkflowManager().register("start", Greeter("hi"))
    events = await collect(workflow, WorkflowEvent("start"))
    assert events[-1].data == {"text": "hi"}
    assert workflow.registrations("start")[0].name == Greeter.__qualname__


async def test_decorator_registers_and_returns_the_function_unchanged() -> None:
    workflow = WorkflowManager()

    @workflow.on("start", emits=["done"])
    async def start(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    assert workflow.handlers_for("start") == (start,)
    assert workflow.registrations()[0].emits == ("done",)
    assert names(await collect(workflow, WorkflowEvent("start"))) == ["start", "done"]


def test_emits_must_be_a_list_not_a_string() -> None:
    async def h(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    with pytest.raises(TypeError, match=r"emits=\['done'\]"):
        WorkflowManager().register("start", h, emits="done")


def test_introspection_lists_handlers_per_event_in_order() -> None:
    async def a(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    async def b(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    workflow = WorkflowManager().register("x", b).register("x", a).register("y", a)
    assert workflow.event_names == ["x", "y"]
    assert workflow.handlers_for("x") == (b, a)
    assert workflow.handlers_for("missing") == ()
    assert [(r.event_name, r.name, r.position) for r in workflow.registrations()] == [
        ("x", b.__qualname__, 0),
        ("x", a.__qualname__, 1),
        ("y", a.__qualname__, 0),
    ]
    assert repr(workflow) == "<WorkflowManager handlers={'x': 2, 'y': 1}>"


# Dispatch --------------------------------------------------------------------------------


async def test_dispatch_is_first_in_first_out_across_branches() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fan_out(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("a")
        yield WorkflowEvent("b")

    @workflow.on("a")
    async def on_a(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("a_done")

    @workflow.on("b")
    async def on_b(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("b_done")

    assert names(await collect(workflow, WorkflowEvent("start"))) == [
        "start",
        "a",
        "b",
        "a_done",
        "b_done",
    ]


async def test_events_without_handlers_are_yielded_and_end_their_branch() -> None:
    async def h(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("completed", {"ok": True})

    events = await collect(WorkflowManager().register("start", h), WorkflowEvent("start"))
    assert names(events) == ["start", "completed"]


async def test_initial_event_without_handlers_is_yielded_alone() -> None:
    assert names(await collect(WorkflowManager(), WorkflowEvent("nothing"))) == ["nothing"]


async def test_process_rejects_a_non_event_start() -> None:
    with pytest.raises(TypeError, match="takes a WorkflowEvent"):
        await collect(WorkflowManager(), "start")  # type: ignore[arg-type]


async def test_progress_streams_live_while_its_handler_is_still_running() -> None:
    received_progress = asyncio.Event()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("work", "started")
        # Only the consumer can set this, and only after it received the progress event.
        await asyncio.wait_for(received_progress.wait(), timeout=5)
        yield WorkflowEvent("done")

    seen = []
    async for event in workflow.process(WorkflowEvent("start")):
        seen.append(event.name)
        if event.is_progress:
            received_progress.set()
    assert seen == ["start", "progress", "done"]


async def test_handler_exception_keeps_earlier_events_and_run_goes_on() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fan_out(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("risky")
        yield WorkflowEvent("safe")

    @workflow.on("risky")
    async def risky(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("risky", "about to fail")
        raise ValueError("bad input")

    @workflow.on("safe")
    async def safe(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("completed")

    events = await collect(workflow, WorkflowEvent("start", metadata={"session_id": "s"}))
    assert names(events) == ["start", "risky", "safe", "progress", "error", "completed"]
    error = events[4]
    assert error.error == "bad input"
    exception = error.exception
    tb = error.data.pop("traceback")
    # The traceback starts at the handler's frame and names the failing line.
    assert tb.startswith("Traceback (most recent call last):\n")
    assert f'File "{__file__}", line {risky.__code__.co_firstlineno + 3}, in risky' in tb
    assert tb.endswith("ValueError: bad input\n") and "baxiflow" not in tb
    assert isinstance(exception, ValueError) and exception is tb.exception
    assert error.data == {
        "reason": "handler_error",
        "type": "ValueError",
        "handler": "test_handler_exception_keeps_earlier_events_and_run_goes_on.<locals>.risky",
        "event": "risky",
    }
    assert error.metadata is None  # the triggering event "risky" carried no metadata


async def test_error_event_carries_triggering_event_metadata() -> None:
    async def boom(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise KeyError("query")
        yield event

    events = await collect(
        WorkflowManager().register("start", boom), WorkflowEvent("start", metadata={"user": "u1"})
    )
    assert events[-1].metadata == {"user": "u1"}
    assert events[-1].data is not None and events[-1].data["type"] == "KeyError"


async def test_non_event_yield_becomes_an_error_event() -> None:
    async def sloppy(event: WorkflowEvent) -> AsyncIterator[Any]:
        yield "done"

    events = await collect(WorkflowManager().register("start", sloppy), WorkflowEvent("start"))
    assert names(events) == ["start", "error"]
    assert events[1].data is not None and events[1].data["reason"] == "invalid_event"
    assert "yielded str 'done'" in (events[1].error or "")


async def test_error_events_go_to_error_handlers_but_never_recursively() -> None:
    workflow = WorkflowManager()
    handled: list[str | None] = []

    @workflow.on("start")
    async def fails(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("first failure")
        yield event

    @workflow.on("error")
    async def on_error(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        handled.append(event.error)
        yield WorkflowEvent.failure("error handler also failed")
        raise RuntimeError("and raised")

    events = await collect(workflow, WorkflowEvent("start"))
    assert handled == ["first failure"]
    assert names(events) == ["start", "error", "error", "error"]
    assert [e.error for e in events[1:]] == [
        "first failure",
        "error handler also failed",
        "and raised",
    ]


async def test_error_handler_can_recover_the_flow() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def tool(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise TimeoutError("tool down")
        yield event

    @workflow.on("error")
    async def recover(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("fallback", {"because": event.error})

    @workflow.on("fallback")
    async def fallback(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("completed", event.data)

    events = await collect(workflow, WorkflowEvent("start"))
    assert names(events) == ["start", "error", "fallback", "completed"]
    assert events[-1].data == {"because": "tool down"}


def test_a_handler_that_cannot_take_the_event_is_refused_at_registration() -> None:
    async def needs_two(event: WorkflowEvent, other: int) -> AsyncIterator[WorkflowEvent]:
        yield event

    async def takes_none() -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("x")

    for handler in (needs_two, takes_none):
        with pytest.raises(HandlerTypeError, match="must take the event as its one positional"):
            WorkflowManager().register("start", handler)  # type: ignore[arg-type]


async def test_handler_that_cannot_be_called_with_the_event_gives_an_error_event() -> None:
    # Its signature claims one argument (so registration accepts it); calling it fails.
    async def needs_two(event: WorkflowEvent, other: int) -> AsyncIterator[WorkflowEvent]:
        yield event

    needs_two.__signature__ = inspect.signature(lambda event: None)  # type: ignore[attr-defined]
    events = await collect(WorkflowManager().register("start", needs_two), WorkflowEvent("start"))  # type: ignore[arg-type]
    assert names(events) == ["start", "error"]
    assert events[1].data is not None and events[1].data["type"] == "TypeError"


# Guards ----------------------------------------------------------------------------------


def looping_workflow(**kwargs: Any) -> WorkflowManager:
    workflow = WorkflowManager(**kwargs)

    @workflow.on("search")
    async def search(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("research")

    @workflow.on("research")
    async def research(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("research", "again")
        yield WorkflowEvent("search")

    return workflow


async def test_max_events_ends_a_loop_with_an_error_naming_the_cycle() -> None:
    events = await collect(looping_workflow(max_events=50), WorkflowEvent("search"))
    final = events[-1]
    assert final.name == "error"
    assert final.data is not None
    assert final.data["reason"] == "max_events"
    assert final.data["cycle"] == ["search", "research", "search"]
    assert "repeating chain: search -> research -> search" in (final.error or "")
    assert sum(1 for e in events[:-1] if not e.is_progress) == 51


def branching_cycle(names: list[str], fan_out: int) -> WorkflowManager:
    """Each event of ``names`` emits ``fan_out`` of the next, the last looping to the first."""
    workflow = WorkflowManager()
    for current, following in zip(names, [*names[1:], names[0]], strict=True):

        async def emit(
            event: WorkflowEvent, following: str = following
        ) -> AsyncIterator[WorkflowEvent]:
            for _ in range(fan_out):
                yield WorkflowEvent(following)

        workflow.register(current, emit)
    return workflow


@pytest.mark.parametrize("period", [1, 2, 3, 5])
async def test_max_events_names_the_cycle_of_a_loop_that_branches_out(period: int) -> None:
    # Doubling at every step packs the last half of the budget into one or two generations.
    names = ["plan", "search", "read", "rank", "write"][:period]
    events = await collect(branching_cycle(names, 2), WorkflowEvent(names[0]))
    final = events[-1]
    assert final.data is not None and final.data["reason"] == "max_events"
    cycle = final.data["cycle"]
    assert len(cycle) == period + 1 and cycle[0] == cycle[-1]
    assert set(cycle) == set(names)


async def test_max_events_names_a_cycle_after_a_chain_longer_than_the_lineage_window() -> None:
    workflow = WorkflowManager(max_events=1_000)
    for index in range(300):

        async def step(event: WorkflowEvent, index: int = index) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent(f"step{index + 1}")

        workflow.register(f"step{index}", step)
    workflow.register("step300", looping_workflow().handlers_for("search")[0])
    workflow.register("research", looping_workflow().handlers_for("research")[0])
    workflow.register("search", looping_workflow().handlers_for("search")[0])
    events = await collect(workflow, WorkflowEvent("step0"))
    assert events[-1].data is not None
    assert events[-1].data["cycle"] == ["search", "research", "search"]


async def test_max_events_counts_and_names_the_cycle_exactly() -> None:
    events = await collect(looping_workflow(), WorkflowEvent("search"), max_events=7)
    assert sum(1 for e in events[:-1] if not e.is_progress) == 8
    assert (
        events[-1].error
        == "max_events (7) exceeded; repeating chain: research -> search -> research"
    )


async def test_max_events_can_be_set_per_run() -> None:
    workflow = looping_workflow()
    events = await collect(workflow, WorkflowEvent("search"), max_events=5)
    assert sum(1 for e in events[:-1] if not e.is_progress) == 6
    assert events[-1].data is not None and events[-1].data["limit"] == 5


async def test_max_events_trips_on_one_handler_emitting_forever() -> None:
    async def chatty(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        while True:
            yield WorkflowEvent("tick")

    events = await collect(
        WorkflowManager(max_events=10).register("start", chatty), WorkflowEvent("start")
    )
    assert events[-1].data is not None and events[-1].data["reason"] == "max_events"
    assert (
        "handler 'test_max_events_trips_on_one_handler_emitting_forever.<locals>.chatty' kept emitting"
        in (events[-1].error or "")
    )


async def test_default_guard_stops_an_unbounded_loop() -> None:
    events = await collect(looping_workflow(), WorkflowEvent("search"))
    assert events[-1].data is not None and events[-1].data["limit"] == 10_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_events": 0}, "max_events must be a positive int"),
        ({"max_events": 2.5}, "max_events must be a positive int"),
        ({"timeout": -1}, "timeout must be a positive number of seconds"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds"),
        ({"handler_timeout": "1"}, "handler_timeout must be a positive number"),
    ],
)
def test_guard_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkflowManager(**kwargs)


async def test_handler_timeout_ends_the_run_naming_the_handler() -> None:
    finally_ran = asyncio.Event()
    workflow = WorkflowManager(handler_timeout=0.05)

    @workflow.on("start")
    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            yield WorkflowEvent.progress("stuck", "waiting forever")
            await asyncio.sleep(3600)
            yield WorkflowEvent("never")
        finally:
            finally_ran.set()

    events = await collect(workflow, WorkflowEvent("start"))
    assert names(events) == ["start", "progress", "error"]
    assert events[-1].data == {
        "reason": "handler_timeout",
        "handler": "test_handler_timeout_ends_the_run_naming_the_handler.<locals>.stuck",
        "event": "start",
    }
    assert "stuck' timed out while handling 'start'" in (events[-1].error or "")
    assert finally_ran.is_set()


async def test_handler_timeout_counts_only_time_spent_in_the_handler() -> None:
    workflow = WorkflowManager(handler_timeout=0.2)

    @workflow.on("start")
    async def quick_steps(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for i in range(3):
            yield WorkflowEvent.progress("steps", f"step {i}")
        yield WorkflowEvent("done")

    seen = []
    async for event in workflow.process(WorkflowEvent("start")):
        seen.append(event.name)
        await asyncio.sleep(0.1)  # a slow consumer: 0.4 s in all, more than the handler's budget
    assert seen == ["start", "progress", "progress", "progress", "done"]


async def test_run_timeout_ends_the_run_with_a_final_error() -> None:
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for _ in range(100):
            await asyncio.sleep(0.01)
            yield WorkflowEvent.progress("slow", "tick")

    workflow = WorkflowManager().register("start", slow)
    events = await collect(workflow, WorkflowEvent("start"), timeout=0.1)
    assert events[-1].data is not None and events[-1].data["reason"] == "timeout"
    assert "run timed out" in (events[-1].error or "")
    assert 2 <= len(events) < 50


class ShiftedClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is not ``time.monotonic()``, as some loops' are not."""

    def time(self) -> float:
        return super().time() - 1000.0


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, ShiftedClockLoop])
def test_timeouts_follow_the_running_loop_s_own_clock(loop_factory: Any) -> None:
    async def quick(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield WorkflowEvent("never")

    workflow = WorkflowManager().register("start", quick).register("wait", stuck)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        finished = runner.run(collect(workflow, WorkflowEvent("start"), timeout=60))
        stopped = runner.run(collect(workflow, WorkflowEvent("wait"), handler_timeout=0.05))
    assert [event.name for event in finished] == ["start", "done"]
    assert stopped[-1].data is not None and stopped[-1].data["reason"] == "handler_timeout"


async def test_handler_own_timeout_error_is_a_handler_error_not_a_guard() -> None:
    async def raises_timeout(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise TimeoutError("upstream took too long")
        yield event

    workflow = WorkflowManager(handler_timeout=10).register("start", raises_timeout)
    events = await collect(workflow, WorkflowEvent("start"))
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_error"
    assert events[-1].error == "upstream took too long"


# Stopping early and cancellation ----------------------------------------------------------


def tracked_workflow(log: list[str]) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def streaming(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            for i in range(1000):
                yield WorkflowEvent.progress("stream", str(i))
                await asyncio.sleep(0)
        finally:
            log.append("handler finally")

    return workflow


async def test_breaking_out_under_aclosing_closes_the_running_handler_at_once() -> None:
    log: list[str] = []
    async with contextlib.aclosing(tracked_workflow(log).process(WorkflowEvent("start"))) as events:
        async for event in events:
            if event.is_progress:
                break
    assert log == ["handler finally"]


async def test_breaking_out_without_aclosing_still_closes_the_handler() -> None:
    log: list[str] = []
    async for event in tracked_workflow(log).process(WorkflowEvent("start")):
        if event.is_progress:
            break
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == ["handler finally"]


async def test_cancelling_the_consuming_task_closes_the_handler_and_propagates() -> None:
    log: list[str] = []
    started = asyncio.Event()
    workflow = WorkflowManager()

    @workflow.on("start")
    async def waits(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            started.set()
            await asyncio.sleep(3600)
            yield event
        finally:
            log.append("handler finally")

    async def consume() -> None:
        async for _ in workflow.process(WorkflowEvent("start")):
            pass

    tasks_before = asyncio.all_tasks()
    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["handler finally"]
    assert asyncio.all_tasks() == tasks_before  # nothing leaked


async def test_cancelled_error_inside_a_handler_is_never_swallowed() -> None:
    async def cancels(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise asyncio.CancelledError
        yield event

    with pytest.raises(asyncio.CancelledError):
        await collect(WorkflowManager().register("start", cancels), WorkflowEvent("start"))


async def test_keyboard_interrupt_inside_a_handler_propagates() -> None:
    async def interrupted(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise KeyboardInterrupt
        yield event

    with pytest.raises(KeyboardInterrupt):
        await collect(WorkflowManager().register("start", interrupted), WorkflowEvent("start"))


# Isolation -------------------------------------------------------------------------------


async def test_concurrent_runs_of_one_manager_are_isolated() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def count(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        for i in range(event.data["n"]):
            await asyncio.sleep(0)
            yield WorkflowEvent("tick", {"who": event.data["who"], "i": i})

    results = await asyncio.gather(
        *(
            collect(workflow, WorkflowEvent("start", {"who": w, "n": n}))
            for w, n in [("a", 30), ("b", 7), ("c", 19)]
        )
    )
    for (who, n), events in zip([("a", 30), ("b", 7), ("c", 19)], results, strict=True):
        ticks = [e.data for e in events if e.name == "tick"]
        assert ticks == [{"who": who, "i": i} for i in range(n)]


async def test_handler_that_swallows_the_timeout_cancellation_still_times_out() -> None:
    async def stubborn(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        yield WorkflowEvent("late")

    workflow = WorkflowManager(handler_timeout=0.05).register("start", stubborn)
    events = await collect(workflow, WorkflowEvent("start"))
    assert names(events) == ["start", "error"]
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_timeout"
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_external_cancellation_during_a_timed_handler_still_propagates() -> None:
    started = asyncio.Event()

    async def waits(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        started.set()
        await asyncio.sleep(3600)
        yield event

    workflow = WorkflowManager(handler_timeout=30, timeout=60).register("start", waits)
    task = asyncio.create_task(collect(workflow, WorkflowEvent("start")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("guard", ["timeout", "handler_timeout"])
async def test_guards_hold_when_each_event_is_taken_in_a_task_of_its_own(guard: str) -> None:
    # asyncio.wait_for on Python 3.11 takes each event in a new task; so does a consumer
    # that starts a task per anext(). The guard must cancel the task working now.
    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("working")
        await asyncio.Event().wait()
        yield WorkflowEvent("never")

    workflow = WorkflowManager().register("start", stuck)
    stream = workflow.process(WorkflowEvent("start"), **{guard: 0.1})
    seen = []
    async with asyncio.timeout(10), contextlib.aclosing(stream):
        while True:
            try:
                seen.append(await asyncio.wait_for(anext(stream), 60))
            except StopAsyncIteration:
                break
            with contextlib.suppress(StopAsyncIteration):
                seen.append(await asyncio.create_task(anext(stream)))
    assert names(seen) == ["start", "working", "error"]
    assert seen[-1].data is not None and seen[-1].data["reason"] == guard


async def slow_cleanup_after(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    """Yields something that is not an event, or events forever; its cleanup takes 30 s."""
    try:
        if event.data == {"bug": "not an event"}:
            yield "not an event"  # type: ignore[misc]
        while True:
            yield WorkflowEvent("again")
    finally:
        await asyncio.sleep(30)


@pytest.mark.parametrize("guard", ["timeout", "handler_timeout"])
@pytest.mark.parametrize("bug", ["not an event", "max_events"])
async def test_guards_bound_the_cleanup_of_a_handler_the_run_closes(guard: str, bug: str) -> None:
    workflow = WorkflowManager(max_events=3).register("start", slow_cleanup_after)
    start = time.monotonic()
    async with asyncio.timeout(10):
        events = await collect(workflow, WorkflowEvent("start", {"bug": bug}), **{guard: 0.2})
    assert time.monotonic() - start < 5
    reasons = [e.data["reason"] for e in events if e.name == "error" and e.data]
    # The cleanup of a handler that yielded a non-event runs out of the guard's time; the
    # max_events stop is the run's final event, its handler's cleanup cut short.
    assert reasons == ([guard] if bug == "not an event" else ["max_events"])


async def test_a_consumer_timeout_due_with_the_run_timeout_is_the_consumer_s() -> None:
    # Both timers fall due together; the consumer's own asyncio.timeout must win (the
    # watchdog counts a cancellation that came from elsewhere as not its own).
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield WorkflowEvent("done")

    workflow = WorkflowManager().register("start", slow)
    for _ in range(5):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await collect(workflow, WorkflowEvent("start"), timeout=0.05)


async def test_an_external_cancellation_before_the_handler_timeout_fires_propagates() -> None:
    async def blocks(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        time.sleep(0.15)  # past both timers: their callbacks run in the same loop pass
        await asyncio.sleep(10)
        yield WorkflowEvent("done")

    workflow = WorkflowManager().register("start", blocks)
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().call_later(0.02, me.cancel)
    with pytest.raises(asyncio.CancelledError):
        await collect(workflow, WorkflowEvent("start"), handler_timeout=0.05)
    assert me.uncancel() == 0


async def test_a_cancellation_pending_when_the_consumer_asks_again_propagates() -> None:
    # The run's deadline passes while the consumer holds an event; the consumer's task
    # then has a cancellation pending when it asks for the next one.
    async def two(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            yield WorkflowEvent("a")
            yield WorkflowEvent("b")
        finally:
            await asyncio.sleep(0.01)

    workflow = WorkflowManager().register("start", two)
    me = asyncio.current_task()
    assert me is not None
    seen = []
    with pytest.raises(asyncio.CancelledError):
        async for event in workflow.process(WorkflowEvent("start"), timeout=0.05):
            seen.append(event.name)
            if event.name == "a":
                await asyncio.sleep(0.1)
                me.cancel()
    assert seen == ["start", "a"]
    assert me.uncancel() == 0


async def test_a_timed_out_run_leaves_no_timer_behind() -> None:
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield WorkflowEvent("done")

    workflow = WorkflowManager().register("start", slow)
    events = await collect(workflow, WorkflowEvent("start"), handler_timeout=0.05)
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_timeout"
    scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    assert not [h for h in scheduled if not h.cancelled() and "Watchdog" in repr(h)]


async def test_a_run_timeout_found_between_handlers_says_the_next_one_never_started() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def blocks(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("next")
        time.sleep(0.1)  # past the deadline, without giving the timer a chance

    @workflow.on("next")
    async def never(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("unreached")

    events = await collect(workflow, WorkflowEvent("start"), timeout=0.05)

    assert names(events) == ["start", "next", "error"]
    assert events[-1].data is not None and events[-1].data["reason"] == "timeout"
    assert f"before handler {never.__qualname__!r} could start on 'next'" in (
        events[-1].error or ""
    )


async def test_run_timeout_expiring_while_the_consumer_holds_an_event_ends_the_run() -> None:
    async def ticks(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for _ in range(10):
            yield WorkflowEvent.progress("ticks", "tick")

    workflow = WorkflowManager(timeout=0.05).register("start", ticks)
    seen = []
    async for event in workflow.process(WorkflowEvent("start")):
        seen.append(event)
        await asyncio.sleep(0.03)  # two of these outlast the run's timeout
    assert [e.name for e in seen][:2] == ["start", "progress"]
    assert seen[-1].data is not None and seen[-1].data["reason"] == "timeout"
    assert len(seen) < 8


# Gaps found in review ---------------------------------------------------------------------


async def test_handler_timeout_can_be_set_for_one_run_and_lifted_for_another() -> None:
    async def naps(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.05)
        yield WorkflowEvent("rested")

    workflow = WorkflowManager(handler_timeout=0.01).register("start", naps)

    lifted = await collect(workflow, WorkflowEvent("start"), handler_timeout=None)
    set_here = await collect(
        WorkflowManager().register("start", naps), WorkflowEvent("start"), handler_timeout=0.01
    )

    assert names(lifted) == ["start", "rested"]
    assert names(set_here) == ["start", "error"]
    assert set_here[-1].data is not None and set_here[-1].data["reason"] == "handler_timeout"


async def test_run_timeout_can_be_lifted_for_one_run() -> None:
    async def naps(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.05)
        yield WorkflowEvent("rested")

    workflow = WorkflowManager(timeout=0.01).register("start", naps)

    assert names(await collect(workflow, WorkflowEvent("start"), timeout=None)) == [
        "start",
        "rested",
    ]
    assert names(await collect(workflow, WorkflowEvent("start"))) == ["start", "error"]


async def test_run_timeout_error_names_the_handler_that_was_running() -> None:
    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(3600)
        yield event

    workflow = WorkflowManager(timeout=0.02).register("lookup", stuck)
    events = await collect(workflow, WorkflowEvent("lookup", metadata={"session_id": "7"}))

    final = events[-1]
    assert final.data == {"reason": "timeout", "handler": stuck.__qualname__, "event": "lookup"}
    assert f"while handler {stuck.__qualname__!r} was handling 'lookup'" in (final.error or "")
    assert final.metadata == {"session_id": "7"}


async def test_an_error_event_a_handler_yields_goes_to_the_error_handlers() -> None:
    workflow = WorkflowManager()
    handled: list[str | None] = []

    @workflow.on("start")
    async def reports(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.failure("quota exceeded", metadata=event.metadata)
        yield WorkflowEvent("went_on")

    @workflow.on("error")
    async def central(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        handled.append(event.error)
        yield WorkflowEvent("recovered", metadata=event.metadata)

    events = await collect(workflow, WorkflowEvent("start", metadata={"user": "u"}))

    assert handled == ["quota exceeded"]
    assert names(events) == ["start", "error", "went_on", "recovered"]
    assert events[-1].metadata == {"user": "u"}


async def test_a_non_event_yield_keeps_earlier_events_closes_the_handler_and_names_it() -> None:
    log: list[str] = []

    async def sloppy(event: WorkflowEvent) -> AsyncIterator[Any]:
        try:
            yield WorkflowEvent("first")
            yield {"name": "second"}
            log.append("went on after the bad yield")
        finally:
            log.append("finally")

    workflow = WorkflowManager().register("start", sloppy)
    events = await collect(workflow, WorkflowEvent("start", metadata={"session_id": "s"}))

    assert names(events) == ["start", "first", "error"]
    # Nothing was raised, so the traceback is the message line alone.
    assert events[-1].data.pop("traceback") == f"TypeError: {events[-1].error}\n"
    assert events[-1].data == {
        "reason": "invalid_event",
        "type": "TypeError",
        "handler": sloppy.__qualname__,
        "event": "start",
    }
    assert events[-1].metadata == {"session_id": "s"}
    assert log == ["finally"]


async def test_failures_after_a_recovery_reach_the_error_handlers_again() -> None:
    workflow = WorkflowManager()
    handled: list[str | None] = []

    @workflow.on("start")
    async def tool(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("tool down")
        yield event

    @workflow.on("error")
    async def recover(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        handled.append(event.error)
        if event.error == "tool down":
            yield WorkflowEvent("fallback")

    @workflow.on("fallback")
    async def fallback(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("fallback also failed")
        yield event

    events = await collect(workflow, WorkflowEvent("start"))
    assert names(events) == ["start", "error", "fallback", "error"]
    assert handled == ["tool down", "fallback also failed"]


async def swallows_then_waits(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)
    yield WorkflowEvent("late")


async def waits_in_finally(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    try:
        await asyncio.sleep(3600)
        yield event
    finally:
        await asyncio.sleep(3600)


@pytest.mark.parametrize("handler", [swallows_then_waits, waits_in_finally])
@pytest.mark.parametrize("limit", [{"handler_timeout": 0.02}, {"timeout": 0.02}])
async def test_a_handler_that_fights_its_timeout_still_cannot_hang_the_run(
    handler: Any, limit: dict[str, float]
) -> None:
    workflow = WorkflowManager(**limit).register("start", handler)
    events = await asyncio.wait_for(collect(workflow, WorkflowEvent("start")), timeout=5)
    assert names(events) == ["start", "error"]
    assert events[-1].data is not None
    assert events[-1].data["reason"] in {"timeout", "handler_timeout"}
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


class Stubborn:
    """Handlers that swallow every cancellation until released; counts how often they wake."""

    def __init__(self) -> None:
        self.released = False
        self.wakeups = 0

    async def in_body(self, event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await self.ignore_cancellation()
        yield WorkflowEvent("late")

    async def in_cleanup(self, event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            await asyncio.sleep(3600)
            yield event
        finally:
            await self.ignore_cancellation()

    async def ignore_cancellation(self) -> None:
        while not self.released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)
            self.wakeups += 1


@pytest.mark.parametrize("where", ["in_body", "in_cleanup"])
@pytest.mark.parametrize("limit", [{"handler_timeout": 0.02}, {"timeout": 0.02}])
async def test_a_handler_that_swallows_every_cancellation_is_left_behind_and_the_run_ends(
    where: str, limit: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("baxiflow._deadline.GIVE_UP_AFTER", 0.2)
    stubborn = Stubborn()
    workflow = WorkflowManager(**limit).register("start", getattr(stubborn, where))

    started = time.monotonic()
    with pytest.warns(HandlerWarning, match="ignored its cancellation for 0.2 s") as caught:
        events = await asyncio.wait_for(collect(workflow, WorkflowEvent("start")), timeout=5)

    # The stream ended, with the guard's error, soon after the grace period.
    assert names(events) == ["start", "error"]
    assert events[-1].data is not None
    assert events[-1].data["reason"] in {"timeout", "handler_timeout"}
    assert time.monotonic() - started < 2
    assert len(caught) == 1 and "goes on in a task of its own" in str(caught[0].message)
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
    # The handler goes on, in a task of its own, until it stops by itself.
    before = stubborn.wakeups
    await asyncio.sleep(0.05)
    assert stubborn.wakeups > before
    stubborn.released = True
    await asyncio.sleep(0.05)


async def test_a_guarded_handler_runs_in_the_task_and_context_of_whoever_iterates_the_run() -> None:
    seen: list[object] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    async def look(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(marker.get())
        marker.set("set by the handler")
        yield WorkflowEvent("looked")
        seen.append(marker.get())

    workflow = WorkflowManager(handler_timeout=5).register("start", look)
    marker.set("set by the caller")
    events = await collect(workflow, WorkflowEvent("start"))

    assert names(events) == ["start", "looked"]
    assert seen == [asyncio.current_task(), "set by the caller", "set by the handler"]


async def test_a_copied_or_unpickled_workflow_routes_on_its_own_handlers() -> None:
    import copy

    cloudpickle = pytest.importorskip("cloudpickle")  # how Dask ships a workflow
    workflow = WorkflowManager()

    @workflow.on("start")
    async def greet(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("greeted")

    async def extra(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("extra")

    copied = copy.deepcopy(workflow)
    copied.register("greeted", extra)
    restored = cloudpickle.loads(cloudpickle.dumps(copied))

    async def names(manager: WorkflowManager) -> list[str]:
        return [event.name async for event in manager.process(WorkflowEvent("start"))]

    assert await names(workflow) == ["start", "greeted"]  # the original is untouched
    assert await names(copied) == ["start", "greeted", "extra"]
    assert await names(restored) == ["start", "greeted", "extra"]


async def test_a_handler_over_its_time_at_a_yield_leaves_no_gap_in_the_event_numbers() -> None:
    from baxiflow import Trace

    workflow = WorkflowManager(handler_timeout=0.05)

    @workflow.on("start")
    async def stubborn(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("first")
        with contextlib.suppress(asyncio.CancelledError):  # ignores its time running out
            await asyncio.sleep(1)
        yield WorkflowEvent("never_emitted")  # found out here: the run stops

    trace = Trace()
    events = [event async for event in workflow.process(WorkflowEvent("start"), observers=[trace])]
    assert [event.name for event in events] == ["start", "first", "error"]
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_timeout"
    assert [record["seq"] for record in trace.records] == [0, 1, 2]
