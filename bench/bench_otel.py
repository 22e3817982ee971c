"""Cost of exporting runs to OpenTelemetry: CPU time per event against no observer.

Run with ``uv run python bench/bench_otel.py``; it prints figures, it asserts nothing.
Each round drains the same workflow, a chain where every handler call yields one progress
event and the next event, so per handler call there is one span and one span event. The
rounds alternate between the setups (best of N each), so drift of the machine hits all alike:

- no observer, and an observer that does nothing (what observing costs the engine);
- ``OpenTelemetryObserver()`` with no SDK configured: OpenTelemetry's default no-op tracer;
- the SDK with a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` (cleared between
  rounds), with and without progress events as span events.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.observe import EmittedEvent, HandlerCall, Observer, RunInfo, WorkflowObserver
from baxiflow.otel import OpenTelemetryObserver


def chain_workflow(steps: int) -> WorkflowManager:
    workflow = WorkflowManager(max_events=None)

    @workflow.on("step")
    async def advance(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        i = event.data["i"] if event.data else 0
        if i < steps:
            yield WorkflowEvent.progress("advance", "one more", current=i, total=steps)
            yield WorkflowEvent("step", data={"i": i + 1})

    return workflow


async def drain(workflow: WorkflowManager, observers: list[Observer]) -> int:
    count = 0
    async for _ in workflow.process(WorkflowEvent("step", {"i": 0}), observers=observers):
        count += 1
    return count


class EmptyObserver(WorkflowObserver):
    """Hears every hook and does nothing: the engine's own cost of being observed."""

    def run_started(self, run: RunInfo) -> None:
        pass

    def event_emitted(self, emitted: EmittedEvent) -> None:
        pass

    def handler_started(self, call: HandlerCall) -> None:
        pass

    def handler_finished(self, call: HandlerCall) -> None:
        pass

    def run_finished(self, run: RunInfo) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5_000, help="handler calls per run")
    parser.add_argument("--repeats", type=int, default=7, help="best of N timings")
    args = parser.parse_args()

    workflow = chain_workflow(args.steps)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    setups: dict[str, Callable[[], list[Observer]]] = {
        "no observer": lambda: [],
        "empty observer (engine's own cost)": lambda: [EmptyObserver()],
        "no-op tracer (API default)": lambda: [OpenTelemetryObserver()],
        "SDK, in-memory exporter": lambda: [OpenTelemetryObserver(provider)],
        "SDK, in-memory, no progress events": lambda: [
            OpenTelemetryObserver(provider, progress_events=False)
        ],
    }
    best = dict.fromkeys(setups, float("inf"))
    events = 0
    for _ in range(args.repeats):
        for label, observers in setups.items():
            exporter.clear()
            gc.collect()
            start = time.process_time()
            events = asyncio.run(drain(workflow, observers()))
            best[label] = min(best[label], time.process_time() - start)
    spans = len(exporter.get_finished_spans())
    print(f"{events} events per run ({args.steps} handler calls), best of {args.repeats}")
    base = best["no observer"]
    for label, seconds in best.items():
        extra = (seconds - base) / events * 1e6
        print(
            f"{label:<36} {seconds / events * 1e6:7.2f} us/event   "
            f"+{extra:6.2f} us/event over none   ratio {seconds / base:5.2f}x"
        )
    print(f"spans in the last SDK round: {spans}")
    print(f"for scale, the SDK alone: {sdk_span_cost(provider, exporter):.2f} us per bare span")


def sdk_span_cost(provider: TracerProvider, exporter: InMemorySpanExporter) -> float:
    """Microseconds to start and end one span with no attributes, straight on the SDK."""
    tracer = provider.get_tracer("bench")
    count = 20_000
    exporter.clear()
    gc.collect()
    start = time.process_time()
    for _ in range(count):
        tracer.start_span("bare").end()
    seconds = time.process_time() - start
    exporter.clear()
    return seconds / count * 1e6


if __name__ == "__main__":
    main()
