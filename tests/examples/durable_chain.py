"""A long workflow for the crash tests: run it logged, be killed anywhere, be resumed.

``python durable_chain.py STORE RUN_ID`` runs it from the start with a SQLite store, or with
a PostgreSQL store when STORE is a ``postgresql://`` DSN.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from baxiflow import WorkflowEvent, WorkflowManager

STEPS = 120


def build() -> WorkflowManager:
    workflow = WorkflowManager(max_events=None)

    @workflow.on("start")
    async def fan_out(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for branch in range(3):
            yield WorkflowEvent("step", {"branch": branch, "n": 0})

    @workflow.on("step")
    async def advance(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        branch, n = event.data["branch"], event.data["n"]
        yield WorkflowEvent.progress(f"branch {branch}", "working", current=n, total=STEPS)
        await asyncio.sleep(0.0005)
        if n + 1 < STEPS // 3:
            yield WorkflowEvent("step", {"branch": branch, "n": n + 1, "pad": "x" * (n % 7)})
        else:
            yield WorkflowEvent("branch_done", {"branch": branch})

    @workflow.on("step")
    async def audit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        if event.data["n"] % 10 == 0:
            yield WorkflowEvent("audited", {"at": (event.data["branch"], event.data["n"])})

    return workflow


async def main(path: str, run_id: str) -> None:
    from baxiflow.store import PostgresStore, SQLiteStore

    store = PostgresStore(path) if path.startswith("postgresql://") else SQLiteStore(path)
    async for _ in build().process(WorkflowEvent("start"), store=store, run_id=run_id):
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
