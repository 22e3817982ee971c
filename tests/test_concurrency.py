"""Overlapping handler calls (concurrency=N) and retries: what the docs promise still holds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baxiflow import Retry, Trace, WorkflowEvent, WorkflowManager, diagram
from baxiflow.observe import HandlerCall, WorkflowObserver

NAMES = ["a", "b", "c", "d"]
step = st.one_of(
    st.sampled_from(NAMES), st.just("<progress>"), st.just("<raise>"), st.just("<sleep>")
)
handler_spec = st.tuples(st.lists(step, max_size=4), st.booleans())  # steps, sequential
registry_spec = st.dictionaries(
    st.sampled_from([*NAMES, "error"]), st.lists(handler_spec, min_size=1, max_size=3), max_size=4
)


class Calls(WorkflowObserver):
    """Which calls run when: start and end of each, by (trigger_seq, position)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, int]] = []
        self.running = 0
        self.peak = 0

    def handler_started(self, call: HandlerCall) -> None:
        self.log.append(("start", call.trigger_seq, call.position))
        self.running += 1
        self.peak = max(self.peak, self.running)

    def handler_finished(self, call: HandlerCall) -> None:
        self.log.append(("end", call.trigger_seq, call.position))
        self.running -= 1


def build(spec: dict[str, list[tuple[list[str], bool]]], concurrency: int, limit: int) -> WorkflowManager:  # fmt: skip
    workflow = WorkflowManager(max_events=limit, concurrency=concurrency)
    for event_name, handlers in spec.items():
        for steps, sequential in handlers:

            async def handler(
                event: WorkflowEvent, steps: list[str] = steps
            ) -> AsyncIterator[WorkflowEvent]:
                for s in steps:
                    if s == "<sleep>":
                        await asyncio.sleep(0.001)
                    elif s == "<progress>":
                        yield WorkflowEvent.progress("p", "step")
                    elif s == "<raise>":
                        raise RuntimeError("planned")
                    else:
                        yield WorkflowEvent(s)

            workflow.register(event_name, handler, sequential=sequential)
    return workflow


def reference_counts(spec: dict[str, list[tuple[list[str], bool]]], start: str) -> Counter[str]:
    """The reference model, without a limit: every event a run emits, whatever the overlap."""
    out: Counter[str] = Counter([start])
    pending = [start]
    while pending:
        current = pending.pop()
        for steps, _ in spec.get(current, []):
            for s in steps:
                if s == "<sleep>":
                    continue
                name = "progress" if s == "<progress>" else "error" if s == "<raise>" else s
                out[name] += 1
                if name != "progress" and not (name == "error" and current == "error"):
                    pending.append(name)
                if s == "<raise>":
                    break
            if sum(out.values()) > 400:
                return out
    return out


@settings(max_examples=60, deadline=None)
@given(spec=registry_spec, start=st.sampled_from(NAMES), concurrency=st.sampled_from([1, 2, 8]))
def test_overlapping_runs_keep_every_promise_of_the_reference_model(
    spec: dict[str, list[tuple[list[str], bool]]], start: str, concurrency: int
) -> None:
    calls, seen = Calls(), []
    workflow = build(spec, concurrency, 60)

    async def main() -> list[WorkflowEvent]:
        stream = workflow.process(WorkflowEvent(start), observers=[calls, seen.append])
        return [e async for e in stream]

    events = asyncio.run(main())
    expected = reference_counts(spec, start)
    final = events[-1]
    if final.data and final.data.get("reason") == "max_events":
        # The guard trips at the same count; every event yielded once before it.
        assert sum(e.name != "progress" for e in events) == 62
    elif sum(expected.values()) <= 400:
        assert Counter(e.name for e in events) == expected
    # Every emitted event yielded exactly once, numbered in yield order.
    assert [o.seq for o in seen] == list(range(len(events)))
    assert all(o.event is e for o, e in zip(seen, events, strict=True))
    # An event is dispatched only after it is emitted; calls of one event's sequential
    # handlers never overlap and start in registration order.
    started = [(seq, pos) for kind, seq, pos in calls.log if kind == "start"]
    assert all(seq < len(events) for seq, _ in started)
    for o in seen[1:]:
        assert o.parent_seq is not None and o.parent_seq < o.seq
    registrations = {name: [s for _, s in handlers] for name, handlers in spec.items()}
    for seq, pos in started:
        sequential = registrations[events[seq].name]
        earlier = [p for p in range(pos) if sequential[p]] if sequential[pos] else []
        if earlier:
            previous = earlier[-1]
            assert calls.log.index(("end", seq, previous)) < calls.log.index(("start", seq, pos))
    assert calls.peak <= concurrency
    assert calls.running == 0


async def test_calls_that_wait_on_each_other_run_at_once() -> None:
    # Each side waits for the other: one call at a time would wait forever.
    ping_seen, pong_seen = asyncio.Event(), asyncio.Event()
    workflow = WorkflowManager(concurrency=2, timeout=5)

    @workflow.on("start", sequential=False)
    async def ping(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        ping_seen.set()
        await pong_seen.wait()
        yield WorkflowEvent("ping_done")

    @workflow.on("start", sequential=False)
    async def pong(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        pong_seen.set()
        await ping_seen.wait()
        yield WorkflowEvent("pong_done")

    names = [e.name async for e in workflow.process(WorkflowEvent("start"))]
    assert sorted(names) == ["ping_done", "pong_done", "start"]


async def test_an_io_fan_out_overlaps_and_events_stream_as_they_come() -> None:
    workflow = WorkflowManager(concurrency=10)
    for index in range(10):

        async def fetch(event: WorkflowEvent, index: int = index) -> AsyncIterator[WorkflowEvent]:
            await asyncio.sleep(0.05 if index else 0.3)
            yield WorkflowEvent("fetched", {"index": index})

        workflow.register("start", fetch, sequential=False)
    started = time.perf_counter()
    arrivals = []
    async for event in workflow.process(WorkflowEvent("start")):
        arrivals.append((event.data or {}).get("index"))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.9  # 10 calls one after another take 0.75 s
    # The slow first call comes last: the others were yielded as they came.
    assert arrivals[-1] == 0 and sorted(arrivals[1:-1]) == list(range(1, 10))


async def test_a_per_handler_limit_is_never_exceeded_across_the_run() -> None:
    running, peak = 0, 0
    workflow = WorkflowManager(concurrency=8)

    @workflow.on("start")
    async def fan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for index in range(12):
            yield WorkflowEvent("call_api", {"index": index})

    @workflow.on("call_api", concurrency=3)
    async def call_api(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.005)
            yield WorkflowEvent("answered")
        finally:
            running -= 1

    names = [e.name async for e in workflow.process(WorkflowEvent("start"))]
    assert names.count("answered") == 12
    assert peak == 3


@pytest.mark.parametrize("stop", ["break", "cancel", "max_events", "timeout"])
async def test_stopping_closes_every_call_in_flight_and_leaks_no_task(stop: str) -> None:
    opened, closed = [], []
    workflow = WorkflowManager(
        concurrency=4, max_events=4 if stop == "max_events" else 100,
        timeout=0.2 if stop == "timeout" else None,
    )  # fmt: skip

    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        opened.append(event)
        try:
            yield WorkflowEvent.progress("slow", "working")
            yield WorkflowEvent("partial")
            await asyncio.sleep(30)
            yield WorkflowEvent("never")
        finally:
            closed.append(event)

    for _ in range(4):
        workflow.register("start", slow, sequential=False)
    before = asyncio.all_tasks()
    stream = workflow.process(WorkflowEvent("start"))

    async def consume() -> list[WorkflowEvent]:
        seen = []
        async for event in stream:
            seen.append(event)
            if stop == "break" and len(seen) == 6:
                break
        return seen

    task = asyncio.ensure_future(consume())
    if stop == "cancel":
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        seen = await asyncio.wait_for(task, 5)
        await stream.aclose()
        assert "never" not in [e.name for e in seen]
        if stop in ("max_events", "timeout"):
            assert seen[-1].data and seen[-1].data["reason"] == stop
    assert len(opened) == len(closed) == 4
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_handler_timeout_applies_to_each_overlapping_call() -> None:
    workflow = WorkflowManager(concurrency=3, handler_timeout=0.1)

    @workflow.on("start", sequential=False)
    async def quick(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.05)
        yield WorkflowEvent("quick_done")

    @workflow.on("start", sequential=False)
    async def stuck(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield WorkflowEvent("never")

    events = [e async for e in workflow.process(WorkflowEvent("start"))]
    assert [e.name for e in events] == ["start", "quick_done", "error"]
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_timeout"
    assert events[-1].data["handler"].endswith("stuck")


def flaky_workflow(failures: int, concurrency: int, **retry: Any) -> tuple[WorkflowManager, list[int]]:  # fmt: skip
    attempts: list[int] = []
    workflow = WorkflowManager(concurrency=concurrency)

    @workflow.on("start", retry=Retry(attempts=3, backoff=0.01, on=ConnectionError, **retry))
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        attempts.append(len(attempts) + 1)
        yield WorkflowEvent.progress("fetch", f"attempt {len(attempts)}")
        if len(attempts) <= failures:
            raise ConnectionError("backend down")
        yield WorkflowEvent("fetched")

    return workflow, attempts


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_call_that_fails_twice_then_succeeds_is_retried_each_attempt_a_span(
    concurrency: int,
) -> None:
    workflow, attempts = flaky_workflow(2, concurrency)
    trace = Trace()
    names = [e.name async for e in workflow.process(WorkflowEvent("start"), observers=[trace])]
    assert names == ["start", "progress", "progress", "progress", "fetched"]
    assert attempts == [1, 2, 3]
    spans = trace.spans
    assert [(s["attempt"], s["status"]) for s in spans] == [
        (1, "retried"),
        (2, "retried"),
        (3, "ok"),
    ]
    assert spans[0]["error"] == "backend down"
    # The pauses between attempts: 10 ms, then 20 ms.
    assert spans[1]["start"] - spans[0]["end"] >= 0.009
    assert spans[2]["start"] - spans[1]["end"] >= 0.019


async def test_observers_show_retried_attempts_apart_from_failures() -> None:
    workflow, _ = flaky_workflow(2, 1)
    trace = Trace()
    async for _ in workflow.process(WorkflowEvent("start"), observers=[trace]):
        pass

    handlers = trace.summary().split("handlers:")[1].splitlines()
    assert handlers[1].split() == ["handler", "calls", "ok", "error", "timeout", "cancelled", "retried", "emitted"]  # fmt: skip
    assert handlers[2].split()[1:] == ["3", "1", "0", "0", "0", "2", "4"]
    [node] = [n for n in diagram(workflow, trace).spec.nodes if n.label.startswith("fetch\n")]
    assert node.label.splitlines()[1].startswith("3 calls, 2 retried, mean")
    assert node.style == "handler"  # not drawn as failed: the call succeeded


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_call_that_always_fails_ends_with_one_error_saying_how_many_attempts(
    concurrency: int,
) -> None:
    workflow, attempts = flaky_workflow(99, concurrency)
    events = [e async for e in workflow.process(WorkflowEvent("start"))]
    errors = [e for e in events if e.name == "error"]
    assert len(errors) == 1 and attempts == [1, 2, 3]
    assert errors[0].error == "backend down (failed all 3 attempts)"
    assert errors[0].data is not None and errors[0].data["attempts"] == 3


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_call_that_fails_after_yielding_an_event_is_not_retried(concurrency: int) -> None:
    calls = 0
    workflow = WorkflowManager(concurrency=concurrency, retry=Retry(attempts=5, backoff=0))

    @workflow.on("start")
    async def half(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal calls
        calls += 1
        yield WorkflowEvent("partial")
        raise ConnectionError("lost")

    names = [e.name async for e in workflow.process(WorkflowEvent("start"))]
    assert calls == 1 and names == ["start", "partial", "error"]


async def test_backoff_pauses_do_not_count_toward_handler_timeout() -> None:
    workflow = WorkflowManager(handler_timeout=0.15)
    tries = 0

    @workflow.on("start", retry=Retry(attempts=3, backoff=0.1, on=ConnectionError))
    async def flaky(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal tries
        tries += 1
        await asyncio.sleep(0.1)  # each attempt under its own budget; all three are not
        if tries < 3:
            raise ConnectionError("down")
        yield WorkflowEvent("done")

    names = [e.name async for e in workflow.process(WorkflowEvent("start"))]
    assert names == ["start", "done"] and tries == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"concurrency": 1.5}, "concurrency must be a positive int"),
        ({"sequential": "no"}, "sequential must be True or False"),
        ({"retry": 3}, "retry must be a baxiflow.Retry"),
    ],
)
def test_register_rejects_bad_call_options_naming_the_handler(
    options: dict[str, Any], message: str
) -> None:
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    with pytest.raises((TypeError, ValueError), match=f"handler '.*fetch'.*{message}"):
        WorkflowManager().register("start", fetch, **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attempts": 0}, ValueError, "attempts=...\\) must be a positive int"),
        ({"attempts": True}, ValueError, "attempts"),
        ({"backoff": "fast"}, TypeError, "backoff=...\\) must be a number"),
        ({"backoff": -1}, TypeError, "backoff"),
        ({"on": ValueError("x")}, TypeError, "on=...\\) must be an exception type"),
        ({"on": (KeyError, int)}, TypeError, "on="),
    ],
)
def test_retry_rejects_bad_settings(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Retry(**options)


def test_manager_and_process_reject_a_bad_concurrency() -> None:
    with pytest.raises(ValueError, match="concurrency must be a positive int"):
        WorkflowManager(concurrency=0)
    with pytest.raises(ValueError, match="concurrency must be a positive int"):
        WorkflowManager().process(WorkflowEvent("start"), concurrency=-2)


async def test_a_timeout_or_task_a_handler_opens_is_its_own_call_s_not_the_run_s() -> None:
    # A call that yields inside `asyncio.timeout` and then waits: its timeout must cancel
    # the call, never the task that iterates the run.
    workflow = WorkflowManager(concurrency=4)
    consumer: list[asyncio.Task[Any] | None] = []
    seen: list[asyncio.Task[Any] | None] = []

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(0.05):
            yield WorkflowEvent("next")
            await asyncio.sleep(5)
        yield WorkflowEvent("unreachable")

    @workflow.on("next")
    async def other(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.1)
        yield WorkflowEvent("other_done")

    consumer.append(asyncio.current_task())
    events = [event async for event in workflow.process(WorkflowEvent("start"))]
    names = [event.name for event in events]
    assert names == ["start", "next", "error", "other_done"]
    assert events[2].data["type"] == "TimeoutError"
    assert events[2].data["handler"].endswith("slow")
    assert seen[0] is not None and seen[0] is not consumer[0]
