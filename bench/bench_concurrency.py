"""Overlapping handler calls: the I/O fan-out speed-up, and what concurrency costs CPU-bound runs.

Run with ``uv run python bench/bench_concurrency.py``. Prints:

- an I/O-bound fan-out, 10 handlers (``sequential=False``) on one event, each awaiting 10 ms,
  wall time at ``concurrency=1`` and ``concurrency=10`` and the speed-up (best of N);
- the CPU-bound workloads of ``bench_core.py`` (chain, self-loop, fan-out) at
  ``concurrency=1`` and ``concurrency=8``, in CPU microseconds per handler step against the
  plain-async-generator baseline (best of N rounds that alternate baseline and baxiflow).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from bench_core import (
    reorder,
    report,
    scenario_chain,
    scenario_fan,
    scenario_self_loop,
    workload_sizes,
)

from baxiflow import WorkflowEvent, WorkflowManager


def io_fan_out(concurrency: int) -> WorkflowManager:
    workflow = WorkflowManager(concurrency=concurrency)
    for index in range(10):

        async def fetch(event: WorkflowEvent, index: int = index) -> AsyncIterator[WorkflowEvent]:
            await asyncio.sleep(0.01)
            yield WorkflowEvent("fetched", {"index": index})

        workflow.register("question", fetch, sequential=False)
    return workflow


def best_wall_time(workflow: WorkflowManager, repeats: int) -> float:
    async def once() -> float:
        started = time.perf_counter()
        async for _ in workflow.process(WorkflowEvent("question")):
            pass
        return time.perf_counter() - started

    async def rounds() -> float:
        return min([await once() for _ in range(repeats)])

    return asyncio.run(rounds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="best of N timings")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    runs, loop_count = workload_sizes(quick=args.quick)

    sequential = best_wall_time(io_fan_out(1), args.repeats)
    overlapping = best_wall_time(io_fan_out(10), args.repeats)
    print("I/O fan-out: 10 handlers on one event, each awaiting 10 ms (wall time, best of N)")
    print(f"  concurrency=1   {sequential * 1e3:7.1f} ms")
    print(
        f"  concurrency=10  {overlapping * 1e3:7.1f} ms   speed-up {sequential / overlapping:5.1f}x"
    )
    for concurrency in (1, 8):
        print(f"CPU-bound workloads at concurrency={concurrency} (guards on: max_events)")
        options = {"concurrency": concurrency}
        report("chain of 10 handlers x 1000 runs", *reorder(scenario_chain(args.repeats, runs, **options)))  # fmt: skip
        report(
            "one handler re-emitting itself 100,000 x",
            *reorder(scenario_self_loop(args.repeats, loop_count, **options)),
        )
        report(
            "one event with 100 handlers x 100 runs",
            *reorder(scenario_fan(args.repeats, runs // 10, **options)),
        )


if __name__ == "__main__":
    main()
