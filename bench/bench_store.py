"""Cost of durable runs: per handler step on a chain, and resuming a long log.

Run with ``uv run python bench/bench_store.py``. Prints CPU microseconds per handler step
(process time, best of N rounds, alternating the plain and the logged run) for the chain of
10 handlers with :class:`~baxiflow.store.SQLiteStore` in ``"batched"`` and ``"sync"``
durability, with the part of the store's cost spent in the kernel (system time, the mean
over all rounds: writing the WAL, taking locks), and the wall time to resume a run whose
log holds 100,000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench_core import chain_handlers

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.store import SQLiteStore


async def drain(events: AsyncIterator[WorkflowEvent]) -> int:
    count = 0
    async for _ in events:
        count += 1
    return count


def chain_workflow() -> WorkflowManager:
    workflow = WorkflowManager()
    for index, handler in enumerate(chain_handlers(10)):
        workflow.register(f"step{index}", handler)
    return workflow


def per_step(repeats: int, runs: int, **options: Any) -> tuple[float, float, float]:
    """Best CPU seconds per step without a store and with ``options``, and the system
    time per step the store adds (writing the WAL, taking locks), over all rounds."""
    workflow = chain_workflow()
    initial = WorkflowEvent("step0", {"n": 1})
    best_plain = best_logged = float("inf")
    system = 0.0
    for _ in range(repeats):
        started, in_kernel = time.process_time(), _system_seconds()
        asyncio.run(_runs(workflow, initial, runs, {}))
        best_plain = min(best_plain, time.process_time() - started)
        plain_in_kernel = _system_seconds() - in_kernel
        started, in_kernel = time.process_time(), _system_seconds()
        asyncio.run(_runs(workflow, initial, runs, options))
        best_logged = min(best_logged, time.process_time() - started)
        system += _system_seconds() - in_kernel - plain_in_kernel
    steps = runs * 10
    return best_plain / steps, best_logged / steps, system / (steps * repeats)


def _system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def _runs(
    workflow: WorkflowManager, initial: WorkflowEvent, runs: int, options: dict[str, Any]
) -> None:
    for _ in range(runs):
        await drain(workflow.process(initial, **options))


def resume_seconds(events: int) -> tuple[float, int]:
    """Wall seconds to resume a run stopped after about ``events`` logged events."""
    workflow = WorkflowManager(max_events=None)

    @workflow.on("tick")
    async def tick(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        yield WorkflowEvent("tick", {"n": event.data["n"] + 1, "note": "x" * 20})

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "long.db")

        async def run_then_stop() -> None:
            stream = workflow.process(WorkflowEvent("tick", {"n": 0}), store=store, run_id="long")
            async for event in stream:
                assert event.data is not None
                if event.data["n"] >= events - 1:
                    break
            await stream.aclose()

        asyncio.run(run_then_stop())

        async def resume_one_step() -> int:
            stream = workflow.resume("long", store)
            first = await anext(stream)
            await stream.aclose()
            assert first.data is not None
            return int(first.data["n"])

        started = time.perf_counter()
        resumed_at = asyncio.run(resume_one_step())
        seconds = time.perf_counter() - started
        store.close()
    return seconds, resumed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="best of N timings")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    runs = 30 if args.quick else 300
    with tempfile.TemporaryDirectory() as folder:
        for durability in ("batched", "sync"):
            store = SQLiteStore(Path(folder) / f"{durability}.db")
            plain, logged, system = per_step(args.repeats, runs, store=store, durability=durability)
            print(
                f"chain of 10 handlers, SQLiteStore {durability:<8} "
                f"plain {plain * 1e6:6.2f} us/step   logged {logged * 1e6:7.2f} us/step   "
                f"store's cost {(logged - plain) * 1e6:7.2f} us/step "
                f"(system time {system * 1e6:5.2f})"
            )
            store.close()
    size = 10_000 if args.quick else 100_000
    seconds, resumed_at = resume_seconds(size)
    print(f"resume a run logged to {size:,} events: {seconds:.2f} s (went on from n={resumed_at})")


if __name__ == "__main__":
    main()
