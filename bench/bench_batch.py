"""Figures for batch runs: overhead, I/O-bound speedup, scale-out on Dask, the view's cost.

Run with ``uv run python bench/bench_batch.py`` (``--quick`` for smaller counts). The
machine may be shared: kinds are timed in alternating rounds, the best of each is kept,
and the load average is printed with the figures. Prints:

* overhead: 10,000 runs of the seed example at concurrency 100 with ``view=False``,
  ``run_many`` (both ``keep`` values) against a hand-written ``asyncio.gather`` over
  ``process()`` with a semaphore (target <= 1.2x), and against the same gather recording
  one ``Trace`` of every run, which is what ``keep="all"`` records;
* I/O-bound: handlers that ``await asyncio.sleep(0.01)``, 2,000 runs at concurrency 200,
  against running them one after another (measured on 200 runs, scaled; target >= 100x);
* scale-out: CPU-bound handlers (about 1 ms of pure-Python work each, 5 per run), 2,000
  runs, a 2-worker ``LocalCluster`` against the local batch (target >= 1.6x on 2 cores),
  and the time from the call to the first progress message streamed back (target <= 2 s);
* view: widget state updates for 10,000 runs (target <= 200), counted with a comm that
  counts messages instead of sending them, and wall time with the view against
  ``view=False`` (target <= 1.3x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import comm
from counting_comm import CountingComm

import baxiflow
from baxiflow import WorkflowEvent, WorkflowManager, run_many
from baxiflow.batch import BatchDisplay, BatchView, _dask, _run
from baxiflow.trace import Trace


def seed_workflow() -> WorkflowManager:
    """The README's quickstart flow (its prints go to a buffer while timing)."""
    workflow = WorkflowManager()

    async def greeting(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        print(f"Greeting: Hello, {event.data['name']}!")
        yield WorkflowEvent.progress("greeting", "Sending welcome message")
        yield WorkflowEvent(
            "process_user", {"name": event.data["name"], "action": "welcome"}, event.metadata
        )

    async def process_user(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        print(f"Processing user: {event.data['name']} with action: {event.data['action']}")
        yield WorkflowEvent.progress("processing", "Updating user records")
        yield WorkflowEvent(
            "completed", {"result": f"User {event.data['name']} processed"}, event.metadata
        )

    workflow.register("start", greeting)
    workflow.register("process_user", process_user)
    return workflow


def starts(count: int) -> list[WorkflowEvent]:
    return [
        WorkflowEvent("start", {"name": f"user{n}"}, {"session_id": str(n)}) for n in range(count)
    ]


async def gather_by_hand(
    workflow: WorkflowManager, events: list[WorkflowEvent], limit: int, trace: Trace | None = None
) -> Any:
    slots = asyncio.Semaphore(limit)
    observers = () if trace is None else (trace,)

    async def one(event: WorkflowEvent) -> list[WorkflowEvent]:
        async with slots:
            stream = workflow.process(event, observers=observers)
            return [e async for e in stream if e.name != "progress"]

    return await asyncio.gather(*(one(event) for event in events))


def timed(make: Callable[[], Any], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        with contextlib.redirect_stdout(io.StringIO()):
            start = time.perf_counter()
            asyncio.run(make())
            best = min(best, time.perf_counter() - start)
    return best


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def overhead(count: int, rounds: int = 5) -> None:
    """Alternating rounds (the machine is shared), the best of each kind."""
    workflow, events = seed_workflow(), starts(count)
    kinds: dict[str, Callable[[], Any]] = {
        "by hand": lambda: gather_by_hand(workflow, events, 100),
        "by hand + Trace": lambda: gather_by_hand(workflow, events, 100, Trace()),
        "all": lambda: run_many(workflow, events, concurrency=100, view=False, keep="all"),
        "summary": lambda: run_many(workflow, events, concurrency=100, view=False, keep="summary"),
    }
    best = dict.fromkeys(kinds, float("inf"))
    for _ in range(rounds):
        for kind, make in kinds.items():
            best[kind] = min(best[kind], timed(make, repeats=1))
    by_hand, traced = best["by hand"], best["by hand + Trace"]
    print(f"overhead: {count} runs of the seed example, concurrency 100, view=False")
    print(f"  (best of {rounds} alternating rounds; {load()})")
    print(f"  gather + semaphore over process(): {by_hand:.3f} s")
    print(
        f"  the same, recording one Trace of every run: {traced:.3f} s = {traced / by_hand:.2f}x "
        "(what keep='all' records)"
    )
    for keep in ("summary", "all"):
        batch = best[keep]
        print(f"  run_many keep={keep!r}: {batch:.3f} s = {batch / by_hand:.2f}x (target <= 1.2x)")
    print(f"  run_many keep='all' against gather + Trace: {best['all'] / traced:.2f}x")


def sleeper() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def wait(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.01)
        yield WorkflowEvent("done")

    return workflow


def io_bound(count: int) -> None:
    workflow = sleeper()
    sample = max(count // 10, 20)

    async def one_by_one() -> None:
        for event in starts(sample):
            async for _ in workflow.process(event):
                pass

    sequential = timed(one_by_one, repeats=1) * count / sample
    batch = timed(lambda: run_many(workflow, starts(count), concurrency=200, view=False), 3)
    print(f"I/O-bound: {count} runs of asyncio.sleep(0.01), concurrency 200")
    print(f"  one after another: {sequential:.2f} s (measured on {sample} runs, scaled)")
    print(f"  run_many: {batch:.3f} s = {sequential / batch:.0f}x faster (target >= 100x)")


def cpu_workflow() -> WorkflowManager:
    workflow = WorkflowManager()

    def spin() -> int:
        total = 0
        for i in range(12_000):  # about 1 ms of pure Python
            total += i * i % 7
        return total

    previous = "start"
    for step in range(5):
        name = f"step{step}"

        async def work(event: WorkflowEvent, _next: str = name) -> AsyncIterator[WorkflowEvent]:
            spin()
            yield WorkflowEvent.progress(_next, "working")
            yield WorkflowEvent(_next, event.data)

        work.__name__ = work.__qualname__ = f"work_{name}"
        workflow.register(previous, work)
        previous = name
    return workflow


def scale_out(count: int, rounds: int = 3) -> None:
    """Alternating rounds of the local batch and the cluster's (no view: nothing streams),
    the best ratio of a round; then one batch on the cluster with a view (one that draws
    nothing), timed to its first streamed progress message."""
    from distributed import Client, LocalCluster

    workflow = cpu_workflow()
    spin_start = time.perf_counter()
    asyncio.run(run_many(workflow, starts(50), view=False))
    per_run = (time.perf_counter() - spin_start) / 50
    print(f"scale-out: {count} CPU-bound runs ({per_run * 1000:.1f} ms each: 5 handlers)")
    ratios, locals_, walls, cpu_ratios = [], [], [], []
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        baxiflow.run_many_sync(workflow, starts(20), client=client, view=False)  # warm up
        for _ in range(rounds):
            cpu = cpu_seconds()
            local = timed(lambda: run_many(workflow, starts(count), view=False), 1)
            local_cpu, cpu = cpu_seconds() - cpu, cpu_seconds()
            start = time.perf_counter()
            batch = baxiflow.run_many_sync(workflow, starts(count), client=client, view=False)
            wall = time.perf_counter() - start
            cpu_ratios.append((cpu_seconds() - cpu) / local_cpu)
            assert batch.ok and len(batch.results) == count
            ratios.append(local / wall)
            locals_.append(local)
            walls.append(wall)
            print(
                f"  local batch {local:.2f} s ({count / local:.0f} runs/s), 2-worker LocalCluster "
                f"{wall:.2f} s ({count / wall:.0f} runs/s) = {local / wall:.2f}x; {load()}"
            )
        print(
            f"  best local time / best cluster time: {min(locals_) / min(walls):.2f}x the local "
            f"throughput (target >= 1.6x); best round {max(ratios):.2f}x"
        )
        best_cpu = min(cpu_ratios)
        print(
            f"  CPU seconds of the cluster's batch (client, scheduler, workers) per CPU second of "
            f"the local one: {best_cpu:.2f}, so at most {2 / best_cpu:.2f}x on 2 idle cores"
        )
        first_progress(workflow, client, count)


def cpu_seconds() -> float:
    """CPU time of this process and its children (the cluster's scheduler and workers)."""
    import psutil  # distributed's dependency

    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def first_progress(workflow: WorkflowManager, client: Any, count: int) -> None:
    first: list[float] = []
    apply, view = _dask._Stream.apply, _run.batch_view

    def timed_apply(stream: Any, message: dict[str, Any]) -> None:
        first.append(time.perf_counter())
        apply(stream, message)

    _dask._Stream.apply = timed_apply  # type: ignore[method-assign]
    _run.batch_view = BatchDisplay  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        baxiflow.run_many_sync(workflow, starts(count), client=client)
        wall = time.perf_counter() - start
    finally:
        _dask._Stream.apply, _run.batch_view = apply, view  # type: ignore[method-assign]
    print(
        f"  with a view: first streamed progress after {first[0] - start:.2f} s (target <= 2 s), "
        f"{len(first)} messages, {count / wall:.0f} runs/s"
    )


def view_cost(count: int) -> None:
    comm.create_comm = CountingComm
    views: list[BatchView] = []

    def widget_view(state: Any) -> BatchView:
        views.append(BatchView(state, display=False))
        return views[-1]

    _run.batch_view = widget_view  # type: ignore[assignment]
    workflow, events = seed_workflow(), starts(count)
    without = timed(lambda: run_many(workflow, events, concurrency=100, view=False))
    CountingComm.sent = Counter()
    with_view = timed(lambda: run_many(workflow, events, concurrency=100, view=True), repeats=1)
    updates = CountingComm.sent["update"]
    with_view = min(
        with_view, timed(lambda: run_many(workflow, events, concurrency=100, view=True))
    )
    print(f"view: {count} runs of the seed example, concurrency 100")
    print(f"  widget state updates: {updates} (target <= 200), redraws {views[-1].redraws}")
    print(
        f"  wall time: {with_view:.3f} s with the view, {without:.3f} s without = {with_view / without:.2f}x (target <= 1.3x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    quick = parser.parse_args().quick
    overhead(1_000 if quick else 10_000)
    io_bound(200 if quick else 2_000)
    scale_out(200 if quick else 2_000)
    view_cost(1_000 if quick else 10_000)


if __name__ == "__main__":
    main()
