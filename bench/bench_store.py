"""Cost of durable runs: per handler step on a chain, and resuming a long log.

Run with ``uv run python bench/bench_store.py``. Prints CPU microseconds per handler step
(process time, best of N rounds, alternating the plain and the logged run) for the chain of
10 handlers with :class:`~baxiflow.store.SQLiteStore` in ``"batched"`` and ``"sync"``
durability, with the part of the store's cost spent in the kernel (system time, the mean
over all rounds: writing the WAL, taking locks), and the wall time to resume a run whose
log holds 100,000 events.

For scale it also prints the floor under the store's cost: the same rows that a logged run of
the chain writes (its run's row, its events and its calls), written with ``sqlite3`` alone
and committed as often as the store commits them (once a run in ``"batched"``, since a run of
the chain lasts less than 100 ms; at every event in ``"sync"``). No Python work but binding
the rows is in it: no engine, no encoding, no checks.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench_core import chain_handlers

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.store import SQLiteStore
from baxiflow.store._log import RUN_SPAN
from baxiflow.store._sqlite import WAL_PAGES


async def drain(events: AsyncIterator[WorkflowEvent]) -> int:
    count = 0
    async for _ in events:
        count += 1
    return count


CHAIN_START = WorkflowEvent("step0", {"n": 1})
"""The event a run of :func:`chain_workflow` starts from."""


def chain_workflow() -> WorkflowManager:
    workflow = WorkflowManager()
    for index, handler in enumerate(chain_handlers(10)):
        workflow.register(f"step{index}", handler)
    return workflow


def per_step(
    repeats: int, runs: int, store: SQLiteStore, durability: str, floor: SQLiteFloor
) -> tuple[float, float, float, float]:
    """Best CPU seconds per step without a store, logged to ``store``, and of ``floor``'s
    writes, in alternating rounds; and the system time per step the store adds (writing the
    WAL, taking locks), over all rounds."""
    workflow, initial = chain_workflow(), CHAIN_START
    options = {"store": store, "durability": durability}
    best_plain = best_logged = best_floor = float("inf")
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
        best_floor = min(best_floor, floor.round(runs))
    steps = runs * 10
    return best_plain / steps, best_logged / steps, best_floor / steps, system / (steps * repeats)


def _system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def _runs(
    workflow: WorkflowManager, initial: WorkflowEvent, runs: int, options: dict[str, Any]
) -> None:
    for _ in range(runs):
        await drain(workflow.process(initial, **options))


class SQLiteFloor:
    """The rows of a logged run of the chain (its run's row, its events, its calls), written
    again and again with ``sqlite3`` alone into the store at ``path``, committed once a run
    (``"batched"``) or at every event (``"sync"``), as the store commits them."""

    def __init__(self, path: Path, durability: str) -> None:
        store = SQLiteStore(path)
        asyncio.run(_runs(chain_workflow(), CHAIN_START, 1, {"store": store}))
        store.close()
        self._durability = durability
        self._connection = connection = sqlite3.connect(path, isolation_level="DEFERRED")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        ((self._run_no, *self._run),) = connection.execute(
            "SELECT run_no, * FROM baxiflow_runs"
        ).fetchall()
        self._events = connection.execute(
            "SELECT * FROM baxiflow_events ORDER BY log_key"
        ).fetchall()
        self._calls = connection.execute(
            "SELECT * FROM baxiflow_calls ORDER BY call_key"
        ).fetchall()
        self._insert = {
            table: f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})"
            for table, rows in (("baxiflow_runs", [self._run]), ("baxiflow_events", self._events),
                                ("baxiflow_calls", self._calls))
        }  # fmt: skip
        self._copies = 0

    def round(self, runs: int) -> float:
        """CPU seconds to write ``runs`` more copies of the run (made before timing)."""
        copies = [self._commits(self._copies + n + 1) for n in range(runs)]
        self._copies += runs
        connection, insert = self._connection, self._insert
        started = time.process_time()
        for commits in copies:
            for commit in commits:
                for table, rows in commit:
                    connection.executemany(insert[table], rows)
                connection.commit()
        return time.process_time() - started

    def close(self) -> None:
        self._connection.close()

    def _commits(self, copy: int) -> list[list[tuple[str, list[tuple[Any, ...]]]]]:
        """The commits of copy number ``copy``: its own id, number and keys; each commit a
        list of ``(table, rows)``."""
        shift = copy * RUN_SPAN
        run = (f"{self._run[0]}-{copy}", self._run_no + copy, *self._run[2:])
        events = [(row[0] + shift, *row[1:]) for row in self._events]
        calls = [(row[0] + shift, *row[1:]) for row in self._calls]
        if self._durability == "batched":
            return [
                [("baxiflow_runs", [run]), ("baxiflow_events", events), ("baxiflow_calls", calls)]
            ]
        # "sync": the run's row with its first event, then an event a commit; a handler's
        # call (two events each) with the event after its last.
        commits = [[("baxiflow_runs", [run]), ("baxiflow_events", events[:1])]]
        for index, row in enumerate(events[1:], start=1):
            ended = calls[(index - 3) // 2 : (index - 1) // 2] if index % 2 and index > 1 else []
            commits.append(
                [("baxiflow_events", [row])] + ([("baxiflow_calls", ended)] if ended else [])
            )
        commits[-1].append(("baxiflow_calls", calls[len(events) // 2 - 1 :]))
        return commits


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
            floor = SQLiteFloor(Path(folder) / f"{durability}-floor.db", durability)
            plain, logged, alone, system = per_step(args.repeats, runs, store, durability, floor)
            print(
                f"chain of 10 handlers, SQLiteStore {durability:<8} "
                f"plain {plain * 1e6:6.2f} us/step   logged {logged * 1e6:7.2f} us/step   "
                f"store's cost {(logged - plain) * 1e6:7.2f} us/step "
                f"(system time {system * 1e6:5.2f})\n"
                f"  its rows and commits written with sqlite3 alone{'':>40}"
                f"{alone * 1e6:7.2f} us/step"
            )
            store.close()
            floor.close()
    size = 10_000 if args.quick else 100_000
    seconds, resumed_at = resume_seconds(size)
    print(f"resume a run logged to {size:,} events: {seconds:.2f} s (went on from n={resumed_at})")


if __name__ == "__main__":
    main()
