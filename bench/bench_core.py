"""Dispatch overhead of WorkflowManager against plain async generators called directly.

Run with ``uv run python bench/bench_core.py``. Prints CPU microseconds per handler step (process
time, best of N rounds that alternate baseline and baxiflow, so other load on the machine
disturbs both figures little and alike), the ratio to a baseline that drives the same handlers
with direct calls and no routing, and peak memory of a long run. The manager runs with streaming and its max_events guard on; the timeout guards are
measured separately, since they read the clock twice per event.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from baxiflow import WorkflowEvent, WorkflowManager

PROGRESS = WorkflowEvent.progress


def chain_handlers(length: int) -> list[Callable[[WorkflowEvent], AsyncIterator[WorkflowEvent]]]:
    handlers = []
    for index in range(length):
        next_name = f"step{index + 1}"

        async def handler(
            event: WorkflowEvent, next_name: str = next_name
        ) -> AsyncIterator[WorkflowEvent]:
            yield PROGRESS(next_name, "working")
            yield WorkflowEvent(next_name, event.data)

        handlers.append(handler)
    return handlers


async def baseline_chain(
    handlers: list[Any], initial: WorkflowEvent
) -> AsyncIterator[WorkflowEvent]:
    yield initial
    event = initial
    for handler in handlers:
        following = event
        async for emitted in handler(event):
            yield emitted
            if emitted.name != "progress":
                following = emitted
        event = following


async def baseline_self_loop(
    handler: Any, initial: WorkflowEvent, count: int
) -> AsyncIterator[WorkflowEvent]:
    yield initial
    event = initial
    for _ in range(count):
        async for emitted in handler(event):
            yield emitted
            event = emitted


async def baseline_fan(handlers: list[Any], initial: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    yield initial
    for handler in handlers:
        async for emitted in handler(initial):
            yield emitted


async def drain(events: AsyncIterator[WorkflowEvent]) -> int:
    count = 0
    async for _ in events:
        count += 1
    return count


def best_of(
    repeats: int,
    base: Callable[[], Coroutine[Any, Any, Any]],
    managed: Callable[[], Coroutine[Any, Any, Any]],
) -> tuple[float, float]:
    """Best CPU time of ``base`` and of ``managed``, measured in alternation.

    Alternating the two puts both under the same drift of the machine (frequency, other load),
    which measuring all of one and then all of the other would not.
    """
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for index, make in enumerate((base, managed)):
            gc.collect()
            start = time.process_time()
            asyncio.run(make())
            best[index] = min(best[index], time.process_time() - start)
    return best[0], best[1]


def report(label: str, steps: int, base: float, managed: float) -> None:
    print(
        f"{label:<44} baseline {base / steps * 1e6:7.2f} us/step   "
        f"baxiflow {managed / steps * 1e6:7.2f} us/step   ratio {managed / base:5.2f}x"
    )


def scenario_chain(repeats: int, runs: int, **limits: Any) -> tuple[float, float, int]:
    handlers = chain_handlers(10)
    workflow = WorkflowManager(**limits)
    for index, handler in enumerate(handlers):
        workflow.register(f"step{index}", handler)
    initial = WorkflowEvent("step0", {"n": 1})

    async def base() -> None:
        for _ in range(runs):
            await drain(baseline_chain(handlers, initial))

    async def managed() -> None:
        for _ in range(runs):
            await drain(workflow.process(initial))

    return (*best_of(repeats, base, managed), runs * 10)


def self_loop_handler(count: int) -> Any:
    async def again(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        n = event.data["n"] + 1
        if n <= count:
            yield WorkflowEvent("again", {"n": n})

    return again


def scenario_self_loop(repeats: int, count: int, **limits: Any) -> tuple[float, float, int]:
    handler = self_loop_handler(count)
    workflow = WorkflowManager(max_events=count + 10, **limits).register("again", handler)
    initial = WorkflowEvent("again", {"n": 0})

    async def base() -> None:
        await drain(baseline_self_loop(handler, initial, count))

    async def managed() -> None:
        assert await drain(workflow.process(initial)) == count + 1

    return (*best_of(repeats, base, managed), count)


def peak_memory(count: int) -> float:
    handler = self_loop_handler(count)
    workflow = WorkflowManager(max_events=count + 10).register("again", handler)
    gc.collect()
    tracemalloc.start()
    asyncio.run(drain(workflow.process(WorkflowEvent("again", {"n": 0}))))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024


def scenario_fan(repeats: int, runs: int, **limits: Any) -> tuple[float, float, int]:
    async def one(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    handlers = [one] * 100
    workflow = WorkflowManager(**limits)
    for handler in handlers:
        workflow.register("start", handler)
    initial = WorkflowEvent("start")

    async def base() -> None:
        for _ in range(runs):
            await drain(baseline_fan(handlers, initial))

    async def managed() -> None:
        for _ in range(runs):
            await drain(workflow.process(initial))

    return (*best_of(repeats, base, managed), runs * 100)


def workload_sizes(*, quick: bool) -> tuple[int, int]:
    """Runs of the chain (and of the fan-out, times 10) and events of the self-loop; a tenth
    of each for a smoke run."""
    scale = 10 if quick else 1
    return 1000 // scale, 100_000 // scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9, help="best of N timings")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    runs, loop_count = workload_sizes(quick=args.quick)

    print("Dispatch overhead (guards on: max_events; streaming on)")
    chain, loop, fan = (
        f"chain of 10 handlers x {runs:,} runs",
        f"one handler re-emitting itself {loop_count:,} x",
        f"one event with 100 handlers x {runs // 10:,} runs",
    )
    report(chain, *reorder(scenario_chain(args.repeats, runs)))
    report(loop, *reorder(scenario_self_loop(args.repeats, loop_count)))
    report(fan, *reorder(scenario_fan(args.repeats, runs // 10)))
    print("With timeout=60 and handler_timeout=30 as well (one watchdog timer per run)")
    timed = {"timeout": 60.0, "handler_timeout": 30.0}
    report(chain, *reorder(scenario_chain(args.repeats, runs, **timed)))
    report(loop, *reorder(scenario_self_loop(args.repeats, loop_count, **timed)))
    print("Peak traced memory of a self-re-emitting run (flat means no growth)")
    for count in (loop_count // 10, loop_count):
        print(f"  {count:>7,} events: {peak_memory(count):8.1f} KiB")


def reorder(result: tuple[float, float, int]) -> tuple[int, float, float]:
    base, managed, steps = result
    return steps, base, managed


if __name__ == "__main__":
    main()
