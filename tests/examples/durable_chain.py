"""A long workflow for the crash tests: run it logged, be killed anywhere, be resumed.

``python durable_chain.py STORE RUN_ID`` runs it from the start with a SQLite store, or with
a PostgreSQL store when STORE is a ``postgresql://`` DSN. ``python durable_chain.py STORE
RUN_ID twice`` runs :func:`build_twice` instead, which kills its own process (SIGKILL) in
the second call of a handler registered twice, its first event committed. ``python
durable_chain.py STORE RUN_ID flaky DURABILITY PAUSE_AFTER`` runs :func:`build_flaky`, whose
call always fails and pauses a minute after attempt PAUSE_AFTER: a process to kill there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

from baxiflow import Retry, WorkflowEvent, WorkflowManager

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


def build_twice(
    *,
    calls: list[int] | None = None,
    die_in: int | None = None,
    first: Callable[..., object] | None = None,
) -> WorkflowManager:
    """Two tasks, each handled by ``note`` registered twice (after ``first``, if given).

    ``calls`` gets one entry per call of ``note``; its call number ``die_in`` (counting
    from 0) kills the process after its first event.
    """
    workflow = WorkflowManager()
    made: list[int] = [] if calls is None else calls

    @workflow.on("start")
    async def plan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("task", {"i": 0})
        yield WorkflowEvent("task", {"i": 1})

    if first is not None:
        workflow.register("task", first)

    async def note(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        number = len(made)
        made.append(number)
        yield WorkflowEvent("noted", {"i": event.data["i"], "part": 1})
        if number == die_in:
            os.kill(os.getpid(), signal.SIGKILL)
        yield WorkflowEvent("noted", {"i": event.data["i"], "part": 2})

    workflow.register("task", note).register("task", note)
    return workflow


def build_flaky(
    *,
    fails: int,
    calls: list[int] | None = None,
    pause: float = 0.0,
    pause_after: int = 1,
    retried: bool = True,
) -> WorkflowManager:
    """``fetch``, retried up to 3 attempts on ``ConnectionError`` (with ``retried``), then
    ``report``.

    The first ``fails`` calls of ``fetch`` in this process fail, each after a progress
    event; ``calls`` gets one entry per call. The pause after attempt ``pause_after`` lasts
    ``pause`` seconds, the others none.
    """
    workflow = WorkflowManager()
    made: list[int] = [] if calls is None else calls
    retry = Retry(attempts=3, backoff=lambda n: pause if n == pause_after else 0.0, on=ConnectionError)  # fmt: skip

    @workflow.on("start", retry=retry if retried else None)
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        made.append(len(made))
        yield WorkflowEvent.progress("fetch", "trying")
        if len(made) <= fails:
            raise ConnectionError("backend down")
        yield WorkflowEvent("fetched", {"rows": 3})

    @workflow.on("fetched")
    async def report(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("reported", event.data)

    return workflow


async def main(path: str, run_id: str, mode: list[str]) -> None:
    from baxiflow.store import PostgresStore, SQLiteStore

    store = PostgresStore(path) if path.startswith("postgresql://") else SQLiteStore(path)
    if mode == ["twice"]:  # the second task's second call of note dies: call number 3
        workflow, durability = build_twice(die_in=3), "sync"
    elif mode[:1] == ["flaky"]:
        workflow, durability = build_flaky(fails=99, pause=60, pause_after=int(mode[2])), mode[1]
    else:
        workflow, durability = build(), "batched"
    async for _ in workflow.process(
        WorkflowEvent("start"),
        store=store,
        run_id=run_id,
        durability=durability,  # type: ignore[arg-type]
    ):
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
