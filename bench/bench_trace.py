"""Cost of recording a run with a Trace: time per step and memory per recorded event.

Run with ``uv run python bench/bench_trace.py``; it prints figures, it asserts nothing.
Targets (issue 3): traced cost per step at most 2x the untraced cost; under 1 KiB per
recorded event.

Every round starts from ``gc.collect()``, so the garbage collector's work on what a trace
keeps is counted in the traced figures. A trace keeps each event's fields as items of one
flat list, and the event's own ``data`` dict, so with plain payloads it adds no object per
event for the collector to scan; payloads that hold containers are scanned as in any
program that keeps them.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import timeit
import tracemalloc
from collections.abc import AsyncIterator, Callable

from baxiflow import WorkflowEvent, WorkflowManager, WorkflowObserver
from baxiflow._recording import call_fields, event_fields
from baxiflow.observe import EmittedEvent, HandlerCall, Observer, RunInfo
from baxiflow.trace import Trace

STEPS = 20_000
REPEATS = 9


def chain_workflow(steps: int) -> WorkflowManager:
    """One handler call per step: each ``step`` event triggers the next."""
    workflow = WorkflowManager(max_events=steps + 10)

    @workflow.on("step")
    async def advance(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        i = event.data["i"] if event.data else 0
        if i < steps:
            yield WorkflowEvent("step", data={"i": i + 1})

    return workflow


def burst_workflow(events: int) -> WorkflowManager:
    """One handler call that yields ``events`` events nobody handles."""
    workflow = WorkflowManager(max_events=events + 10)

    @workflow.on("start")
    async def burst(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for i in range(events):
            yield WorkflowEvent("tick", data={"i": i})

    return workflow


async def drain(workflow: WorkflowManager, first: WorkflowEvent, observers: list[Observer]) -> int:
    count = 0
    async for _ in workflow.process(first, observers=observers):
        count += 1
    return count


def per_event_seconds(
    workflow: WorkflowManager,
    first: WorkflowEvent,
    variants: dict[str, Callable[[], list[Observer]]],
) -> dict[str, float]:
    """Best time per event of each variant; rounds interleave the variants so load affects all."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(REPEATS):
        for label, make in variants.items():
            observers = make()
            gc.collect()
            start = time.perf_counter()
            count = asyncio.run(drain(workflow, first, observers))
            best[label] = min(best[label], (time.perf_counter() - start) / count)
    return best


def timing(label: str, workflow: WorkflowManager, first: WorkflowEvent) -> None:
    best = per_event_seconds(
        workflow,
        first,
        {
            "untraced": list,
            "no-op observer": lambda: [WorkflowObserver()],
            "Trace": lambda: [Trace()],
            "Trace(max_records=1000)": lambda: [Trace(max_records=1000)],
        },
    )
    print(f"{label}, {STEPS} steps, best of {REPEATS} interleaved rounds:")
    base = best["untraced"]
    for name, seconds in best.items():
        print(f"  {name:<24} {seconds * 1e6:6.2f} us/event  ({seconds / base:.2f}x untraced)")
    own = best["Trace"] - best["no-op observer"]
    print(
        f"  Trace's own share (Trace - no-op observer): {own * 1e6:.2f} us/event ({own / base:.2f}x)"
    )


def hook_cost() -> None:
    """The Trace's own share: what the run loop calls, without a manager around it."""
    run = RunInfo("bench", WorkflowEvent("start"), 0.0)
    first = EmittedEvent(WorkflowEvent("start"), 0, None, 0, None, 0.0, run, None)
    emitted = EmittedEvent(WorkflowEvent("tick", {"i": 1}), 1, 0, 1, "h", 0.1, run, None)
    call = HandlerCall(run, hook_cost, "h", 0, first.event, first.seq, 0.0, 0.1, "ok", 1)
    fields, done = event_fields(*emitted), call_fields(call)
    n = STEPS * 5
    trace = Trace()
    event_sink, call_sink = trace.recording_sinks()
    assert event_sink is not None and call_sink is not None
    timings = {
        "event sink (per event)": lambda: event_sink(fields),
        "call sink (per call)": lambda: call_sink(done),
        "event_emitted (by hand)": lambda: trace.event_emitted(emitted),
        "handler_finished (by hand)": lambda: trace.handler_finished(call),
    }
    for name, work in timings.items():
        seconds = min(timeit.repeat(work, number=n, repeat=5)) / n
        print(f"  {name:<27} {seconds * 1e6:6.2f} us/call")


def memory(label: str, workflow: WorkflowManager, first: WorkflowEvent) -> None:
    trace = Trace()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    asyncio.run(drain(workflow, first, [trace]))
    gc.collect()
    recording = tracemalloc.take_snapshot()
    events, spans = len(trace.records), len(trace.spans)
    gc.collect()
    read = tracemalloc.take_snapshot()
    tracemalloc.stop()
    for when, snapshot in (("while recording", recording), ("after reading rows", read)):
        held = sum(stat.size_diff for stat in snapshot.compare_to(before, "filename"))
        print(
            f"  {label}, {when:<18} {held / events:5.0f} B per recorded event "
            f"({events} event rows, {spans} span rows, {held / 1024:.0f} KiB held)"
        )


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; times are wall clock")
    timing("chain (one handler call per event)", chain_workflow(STEPS), WorkflowEvent("step"))
    timing("burst (one handler yields every event)", burst_workflow(STEPS), WorkflowEvent("start"))
    print("Trace alone (the sinks the run loop calls, and the public hooks; lambda call included):")
    hook_cost()
    print("memory (tracemalloc; event data dicts the trace keeps alive included):")
    memory("chain", chain_workflow(STEPS), WorkflowEvent("step"))
    memory("burst", burst_workflow(STEPS), WorkflowEvent("start"))


if __name__ == "__main__":
    main()
