"""What a durable run costs with PostgresStore: per step, and to resume a long log.

Run with ``uv run python bench/bench_store_postgres.py --dsn postgresql://user@host/db``
(or with ``BAXIFLOW_TEST_POSTGRES`` set, as ``.ci/run`` sets it). Prints the wall-clock
microseconds per handler step on a chain of 10 handlers (each yields a progress event and
the next event) with no store and with ``PostgresStore`` in ``"batched"`` and ``"sync"``
durability, then the seconds ``resume`` takes to read a 100,000-event log back and go on.
The tables go in a schema of their own, dropped at the end. With no server given it says
so and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.store import PostgresStore

CHAIN = 10


def chain() -> WorkflowManager:
    workflow = WorkflowManager(max_events=None)
    for index in range(CHAIN):
        following = f"step{index + 1}"

        async def handler(
            event: WorkflowEvent, following: str = following
        ) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent.progress(following, "working")
            yield WorkflowEvent(following, event.data)

        workflow.register(f"step{index}", handler)
    return workflow


def long_run(events: int) -> WorkflowManager:
    workflow = WorkflowManager(max_events=None)

    @workflow.on("start")
    async def fan_out(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for i in range(events):
            yield WorkflowEvent("item", {"i": i})
        yield WorkflowEvent("last")

    return workflow


async def per_step(workflow: WorkflowManager, runs: int, **options: Any) -> float:
    """Microseconds per handler step, over ``runs`` runs of the chain."""
    started = time.perf_counter()
    for _ in range(runs):
        async for _event in workflow.process(WorkflowEvent("step0", {"n": 1}), **options):
            pass
    return (time.perf_counter() - started) / (runs * CHAIN) * 1e6


async def resume_time(store: PostgresStore, events: int) -> tuple[float, float]:
    """Seconds to log a run of ``events`` events (cut just before its end), and to resume it."""
    workflow = long_run(events - 2)  # the start event, the items, then "last"
    started = time.perf_counter()
    stream = workflow.process(WorkflowEvent("start"), store=store, run_id="long", durability="exit")
    async for event in stream:
        if event.name == "item" and event.data == {"i": events - 3}:
            break
    await stream.aclose()
    logged = time.perf_counter() - started
    started = time.perf_counter()
    rest = [event.name async for event in workflow.resume("long", store)]
    assert rest == ["last"], rest
    return logged, time.perf_counter() - started


def _admin(dsn: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(statement)


async def main(dsn: str, runs: int, events: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    _admin(dsn, f'CREATE SCHEMA "{schema}"')
    try:
        store = PostgresStore(f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}")
        workflow = chain()
        await per_step(workflow, 5)  # warm up
        bare = await per_step(workflow, runs)
        print(f"chain of {CHAIN} handlers, {runs} runs, wall-clock per step:")
        print(f"  no store           {bare:8.1f} µs")
        for durability in ("batched", "sync"):
            cost = await per_step(workflow, runs, store=store, durability=durability)
            print(f"  PostgresStore {durability:<7} {cost:6.1f} µs  (+{cost - bare:.1f} µs)")
        logged, resumed = await resume_time(store, events)
        print(f"a {events:,}-event log: written in {logged:.2f} s (one transaction),")
        print(f"  resumed (read back, state derived, run to its end) in {resumed:.2f} s")
        store.close()
    finally:
        _admin(dsn, f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("BAXIFLOW_TEST_POSTGRES"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--events", type=int, default=100_000)
    arguments = parser.parse_args()
    if not arguments.dsn:
        print(
            "bench_store_postgres: no PostgreSQL server given; pass --dsn postgresql://... "
            "or set BAXIFLOW_TEST_POSTGRES"
        )
        sys.exit(0)
    asyncio.run(main(arguments.dsn, arguments.runs, arguments.events))
