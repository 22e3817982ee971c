"""A fan-out for the crash tests of overlapping calls: up to 4 handler calls in flight at once.

``python durable_fan_out.py STORE RUN_ID`` runs it from the start with a SQLite store, or with
a PostgreSQL store when STORE is a ``postgresql://`` DSN. Every event it emits is told apart by
its name and data, so a log can be compared with another run's whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from baxiflow import WorkflowEvent, WorkflowManager

TASKS = 8
PARTS = 12


def build() -> WorkflowManager:
    workflow = WorkflowManager(max_events=None, concurrency=4)

    @workflow.on("start")
    async def plan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for task in range(TASKS):
            yield WorkflowEvent("task", {"task": task})

    @workflow.on("task")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        task = event.data["task"]
        for part in range(PARTS):
            yield WorkflowEvent.progress(f"task {task}", "working", current=part, total=PARTS)
            await asyncio.sleep(0.002)
            yield WorkflowEvent("part", {"task": task, "part": part})
        yield WorkflowEvent("task_done", {"task": task})

    @workflow.on("task")  # after work, on the same event
    async def audit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.001)
        yield WorkflowEvent("audited", event.data)

    @workflow.on("part", sequential=False)
    async def store_part(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.001)
        yield WorkflowEvent("stored", event.data)
        await asyncio.sleep(0.001)
        yield WorkflowEvent("verified", event.data)

    @workflow.on("part", sequential=False)
    async def index_part(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.0015)
        yield WorkflowEvent("indexed", event.data)

    return workflow


async def main(path: str, run_id: str) -> None:
    from baxiflow.store import PostgresStore, SQLiteStore

    store = PostgresStore(path) if path.startswith("postgresql://") else SQLiteStore(path)
    # Every event committed on its own: a kill may come between any two of them.
    stream = build().process(WorkflowEvent("start"), store=store, run_id=run_id, durability="sync")
    async for _ in stream:
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
