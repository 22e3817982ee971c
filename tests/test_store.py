"""Durable runs in SQLite: the log, resume after a stop or a crash (SIGKILL), replay and fork."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from baxiflow import Retry, WorkflowEvent, WorkflowManager
from baxiflow.exceptions import StoreError
from baxiflow.store import SQLiteStore
from baxiflow.trace import Trace

EXAMPLES = Path(__file__).parent / "examples"


def load_chain() -> Any:
    spec = importlib.util.spec_from_file_location("durable_chain", EXAMPLES / "durable_chain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chain = load_chain()


# The tests that take `store`, `open_store` and `committed` only are run again on PostgreSQL
# by test_store_postgres.py, with its own fixtures of those names.


@pytest.fixture
def open_store(tmp_path: Path) -> Any:
    """Opens another store object on the same database (as another process would)."""
    opened: list[SQLiteStore] = []

    def open_one() -> SQLiteStore:
        opened.append(SQLiteStore(tmp_path / "runs.db"))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


@pytest.fixture
def store(open_store: Any) -> Any:
    return open_store()


@pytest.fixture
def target(tmp_path: Path) -> str:
    """The store as a subprocess names it: the file of ``open_store``."""
    return str(tmp_path / "runs.db")


@pytest.fixture
def committed(tmp_path: Path) -> Any:
    """How many events the store's log holds committed, as another connection sees it."""

    def count() -> int:
        with sqlite3.connect(tmp_path / "runs.db") as reader:
            return int(reader.execute("SELECT count(*) FROM baxiflow_events").fetchone()[0])

    return count


def shape(events: list[WorkflowEvent]) -> list[tuple[str, Any]]:
    return [(e.name, e.data) for e in events]


async def collect(stream: AsyncIterator[WorkflowEvent]) -> list[WorkflowEvent]:
    return [event async for event in stream]


def counting_workflow(calls: list[str]) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def plan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        calls.append("plan")
        for i in range(3):
            yield WorkflowEvent("task", {"i": i})

    @workflow.on("task")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        calls.append(f"work {event.data['i']}")
        yield WorkflowEvent.progress("work", "doing", current=event.data["i"], total=3)
        yield WorkflowEvent("done", {"i": event.data["i"], "pair": (1, 2)})

    return workflow


async def test_a_logged_run_holds_every_event_it_yielded_with_its_data(store: Any) -> None:
    events = await collect(
        counting_workflow([]).process(WorkflowEvent("start"), store=store, run_id="r1")
    )

    logged = store.logged("r1")
    assert [(e.seq, e.event.name, e.event.data) for e in logged] == [
        (i, e.name, e.data) for i, e in enumerate(events)
    ]
    assert logged[-1].event.data == {"i": 2, "pair": (1, 2)}  # a tuple comes back a tuple
    assert [(row["run_id"], row["status"]) for row in store.runs()] == [("r1", "finished")]
    trace = store.trace("r1")
    assert len(trace.records) == len(events) and len(trace.spans) == 4


async def test_a_run_stopped_by_its_consumer_resumes_without_repeating_anything(
    store: Any,
) -> None:
    calls: list[str] = []
    workflow = counting_workflow(calls)
    whole = await collect(counting_workflow([]).process(WorkflowEvent("start")))

    first: list[WorkflowEvent] = []
    stream = workflow.process(WorkflowEvent("start"), store=store, run_id="cut")
    async for event in stream:
        first.append(event)
        if event.name == "progress":
            break
    await stream.aclose()
    assert store.runs()[0]["status"] == "interrupted"

    rest = await collect(workflow.resume("cut", store))

    assert shape(first + rest) == shape(whole)
    assert shape([e.event for e in store.logged("cut")]) == shape(whole)
    # The call stopped at its progress event ran again; no other ran twice.
    assert calls == ["plan", "work 0", "work 0", "work 1", "work 2"]
    assert store.runs()[0]["status"] == "finished"
    # The stored trace keeps the attempt that was cut short beside the one that ran again.
    spans = [(s["handler"].rpartition(".")[2], s["status"]) for s in store.trace("cut").spans]
    assert spans == [("plan", "ok"), ("work", "cancelled")] + [("work", "ok")] * 3


async def test_resuming_is_refused_for_finished_unknown_and_changed_runs(store: Any) -> None:
    workflow = counting_workflow([])
    await collect(workflow.process(WorkflowEvent("start"), store=store, run_id="done"))
    with pytest.raises(ValueError, match="'done' is finished"):
        workflow.resume("done", store)
    with pytest.raises(LookupError, match="no run 'missing'"):
        workflow.resume("missing", store)

    stream = workflow.process(WorkflowEvent("start"), store=store, run_id="open")
    await anext(stream)
    await stream.aclose()
    changed = counting_workflow([])

    @changed.on("done")
    async def extra(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("extra")

    with pytest.raises(
        ValueError, match=r"handlers changed since run 'open' was logged \(now done: .*extra"
    ):
        changed.resume("open", store)
    resumed = await collect(changed.resume("open", store, allow_changed=True))
    assert [e.name for e in resumed].count("extra") == 3


async def test_a_run_that_ends_while_it_is_being_resumed_is_refused_as_ended(
    open_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process killed just as it sent the commit of the run's end: the database can apply
    # that commit after a resume read the run as unfinished, and before it took it over.
    store, late_writer = open_store(), open_store()
    stream = counting_workflow([]).process(WorkflowEvent("start"), store=store, run_id="late")
    async for _ in stream:
        break
    await stream.aclose()
    execute = store._execute

    def ended_first(statement: str, parameters: Any = ()) -> Any:
        if statement.startswith("UPDATE baxiflow_runs SET lease_owner"):
            late_writer._execute(
                "UPDATE baxiflow_runs SET status = 'finished', lease_owner = NULL WHERE run_id = ?",
                ("late",),
            )
            late_writer.commit()
        return execute(statement, parameters)

    monkeypatch.setattr(store, "_execute", ended_first)
    with pytest.raises(ValueError, match="run 'late' is finished; only an unfinished run"):
        counting_workflow([]).resume("late", store)
    assert [row["status"] for row in store.runs()] == ["finished"]


async def test_a_second_process_cannot_resume_a_run_that_is_being_run(open_store: Any) -> None:
    first, second = open_store(), open_store()
    workflow = counting_workflow([])
    stream = workflow.process(WorkflowEvent("start"), store=first, run_id="busy")
    await anext(stream)
    await asyncio.sleep(0.15)
    await anext(stream)  # committed (past the batch interval): running, holding its lease
    with pytest.raises(ValueError, match="being run by another process"):
        workflow.resume("busy", second)
    await stream.aclose()
    rest = await collect(workflow.resume("busy", second))  # stopped: the lease is free
    assert [e.name for e in rest].count("done") == 3


@pytest.mark.parametrize("durability", ["sync", "batched", "exit"])
async def test_durability_decides_what_another_reader_sees_during_the_run(
    store: Any, committed: Any, durability: Any
) -> None:
    seen: list[int] = []
    stream = counting_workflow([]).process(
        WorkflowEvent("start"), store=store, run_id="d", durability=durability
    )
    async for event in stream:
        seen.append(committed())
        if event.name == "task":
            await asyncio.sleep(0.12)  # past the batch interval
    assert committed() == len(seen)
    if durability == "sync":
        assert seen == list(range(1, len(seen) + 1))  # committed before the caller gets it
    elif durability == "exit":
        assert set(seen) == {0}
    else:
        assert 0 < max(seen) < len(seen)


def test_a_file_that_is_not_a_baxiflow_store_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"\xff\xfenot a database")
    with pytest.raises(StoreError, match="not a baxiflow store"):
        SQLiteStore(text)
    assert text.read_bytes() == b"\xff\xfenot a database"

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    before = other.read_bytes()
    with pytest.raises(StoreError, match="holds other tables"):
        SQLiteStore(other)
    assert other.read_bytes() == before


# The tables of the older schema versions, verbatim ({real} and {int} are the dialect's
# types), and the columns each had: a store written by that baxiflow.
_VERSION_1_TABLES = (
    """CREATE TABLE IF NOT EXISTS baxiflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS baxiflow_runs (
        run_id TEXT PRIMARY KEY, status TEXT NOT NULL, workflow_name TEXT,
        fingerprint TEXT NOT NULL, created {real} NOT NULL, updated {real} NOT NULL,
        parent_run_id TEXT, fork_seq {int}, lease_owner TEXT, lease_until {real})""",
    """CREATE TABLE IF NOT EXISTS baxiflow_events (
        run_id TEXT NOT NULL, seq {int} NOT NULL, parent_seq {int}, depth {int} NOT NULL,
        name TEXT NOT NULL, handler TEXT, position {int}, error TEXT, elapsed {real} NOT NULL,
        data TEXT, metadata TEXT, reused {int} NOT NULL DEFAULT 0, PRIMARY KEY (run_id, seq))""",
    """CREATE TABLE IF NOT EXISTS baxiflow_calls (
        run_id TEXT NOT NULL, trigger_seq {int} NOT NULL, position {int} NOT NULL,
        handler TEXT NOT NULL, started {real} NOT NULL, finished {real}, status TEXT NOT NULL,
        error TEXT, emitted {int} NOT NULL DEFAULT 0, PRIMARY KEY (run_id, trigger_seq, position))""",
)
_VERSION_3_TABLES = (
    _VERSION_1_TABLES[0],
    """CREATE TABLE IF NOT EXISTS baxiflow_runs (
        run_no {int} PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
        workflow_name TEXT, fingerprint TEXT NOT NULL, created {real} NOT NULL,
        updated {real} NOT NULL, parent_run_id TEXT, fork_seq {int}, lease_owner TEXT,
        lease_until {real})""",
    """CREATE TABLE IF NOT EXISTS baxiflow_events (
        log_key {int} PRIMARY KEY, seq {int} NOT NULL, parent_seq {int}, depth {int} NOT NULL,
        name TEXT NOT NULL, handler TEXT, position {int}, error TEXT, elapsed {real} NOT NULL,
        data TEXT, metadata TEXT, reused {int} NOT NULL DEFAULT 0, occurrence {int})""",
    """CREATE TABLE IF NOT EXISTS baxiflow_calls (
        run_no {int} NOT NULL, trigger_seq {int} NOT NULL, position {int} NOT NULL,
        handler TEXT NOT NULL, started {real} NOT NULL, finished {real}, status TEXT NOT NULL,
        error TEXT, emitted {int} NOT NULL DEFAULT 0, occurrence {int} NOT NULL DEFAULT 0,
        attempt {int} NOT NULL DEFAULT 1,
        PRIMARY KEY (run_no, trigger_seq, handler, occurrence, attempt))""",
)
OLD_TABLES = {
    1: _VERSION_1_TABLES,
    # Version 2 kept the meta and runs tables of version 1.
    2: (
        *_VERSION_1_TABLES[:2],
        """CREATE TABLE IF NOT EXISTS baxiflow_events (
        run_id TEXT NOT NULL, seq {int} NOT NULL, parent_seq {int}, depth {int} NOT NULL,
        name TEXT NOT NULL, handler TEXT, position {int}, error TEXT, elapsed {real} NOT NULL,
        data TEXT, metadata TEXT, reused {int} NOT NULL DEFAULT 0, occurrence {int},
        PRIMARY KEY (run_id, seq))""",
        """CREATE TABLE IF NOT EXISTS baxiflow_calls (
        run_id TEXT NOT NULL, trigger_seq {int} NOT NULL, position {int} NOT NULL,
        handler TEXT NOT NULL, started {real} NOT NULL, finished {real}, status TEXT NOT NULL,
        error TEXT, emitted {int} NOT NULL DEFAULT 0, occurrence {int} NOT NULL DEFAULT 0,
        attempt {int} NOT NULL DEFAULT 1,
        PRIMARY KEY (run_id, trigger_seq, handler, occurrence, attempt))""",
    ),
    3: _VERSION_3_TABLES,
}
_VERSION_1_COLUMNS = {
    "baxiflow_meta": "key, value",
    "baxiflow_runs": "run_id, status, workflow_name, fingerprint, created, updated,"
    " parent_run_id, fork_seq, lease_owner, lease_until",
    "baxiflow_events": "run_id, seq, parent_seq, depth, name, handler, position, error,"
    " elapsed, data, metadata, reused",
    "baxiflow_calls": "run_id, trigger_seq, position, handler, started, finished, status,"
    " error, emitted",
}
OLD_COLUMNS = {
    1: _VERSION_1_COLUMNS,
    2: {
        **_VERSION_1_COLUMNS,
        "baxiflow_events": _VERSION_1_COLUMNS["baxiflow_events"] + ", occurrence",
        "baxiflow_calls": _VERSION_1_COLUMNS["baxiflow_calls"] + ", occurrence, attempt",
    },
    3: {
        "baxiflow_meta": "key, value",
        "baxiflow_runs": "run_no, " + _VERSION_1_COLUMNS["baxiflow_runs"],
        "baxiflow_events": "log_key, seq, parent_seq, depth, name, handler, position, error,"
        " elapsed, data, metadata, reused, occurrence",
        "baxiflow_calls": "run_no, trigger_seq, position, handler, started, finished, status,"
        " error, emitted, occurrence, attempt",
    },
}

# Where the old versions' columns are in today's tables: events and calls name their run by
# number (an event's log_key is run_no * 2**32 + seq, a call's call_key run_no * 2**32 + i),
# runs their registry by key.
_TODAY = {
    "baxiflow_meta": "baxiflow_meta t",
    "baxiflow_runs": "baxiflow_runs t JOIN baxiflow_runs r ON r.run_id = t.run_id"
    " JOIN baxiflow_registries g ON g.registry_key = t.registry_key",
    "baxiflow_events": "baxiflow_events t JOIN baxiflow_runs r ON r.run_no = t.log_key / 4294967296",
    "baxiflow_calls": "baxiflow_calls t JOIN baxiflow_runs r ON r.run_no = t.call_key / 4294967296",
}


def old_rows(source: Any, table: str, columns: str, version: int) -> list[tuple[Any, ...]]:
    """``table``'s rows in the ``columns`` of an older ``version``, read from store ``source``."""
    aliases = {"run_id": "r", "run_no": "r", "fingerprint": "g"}
    picked = ", ".join(f"{aliases.get(c, 't')}.{c}" for c in columns.split(", "))
    where = _TODAY[table]
    if table == "baxiflow_meta" and version < 3:  # next_run_no came with version 3
        where += " WHERE t.key = 'version'"
    return list(source._rows(f"SELECT {picked} FROM {where}"))


@pytest.fixture
def write_old_version(tmp_path: Path) -> Callable[[SQLiteStore, int], None]:
    """Writes ``open_store``'s database as an older schema version held the runs of
    ``source`` (a store of this version)."""

    def write(source: SQLiteStore, version: int) -> None:
        with sqlite3.connect(tmp_path / "runs.db") as connection:
            for statement in OLD_TABLES[version]:
                connection.execute(statement.format(real="REAL", int="INTEGER"))
            for table, columns in OLD_COLUMNS[version].items():
                marks = ", ".join("?" * (columns.count(",") + 1))
                connection.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                    old_rows(source, table, columns, version),
                )
            connection.execute(
                "UPDATE baxiflow_meta SET value = ? WHERE key = 'version'", (str(version),)
            )

    return write


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_a_store_of_an_older_schema_version_is_migrated_and_its_runs_go_on(
    tmp_path: Path,
    open_store: Any,
    write_old_version: Callable[[SQLiteStore, int], None],
    version: int,
) -> None:
    # Runs logged now, written into a database of an older version's tables: one finished,
    # one stopped in the second call of a handler registered twice, which version 1 knew
    # by its position alone.
    source = SQLiteStore(tmp_path / "source.db")
    await collect(
        counting_workflow([]).process(WorkflowEvent("start"), store=source, run_id="done")
    )
    stream = chain.build_twice().process(WorkflowEvent("start"), store=source, run_id="cut")
    second_task_parts = 0
    async for event in stream:
        second_task_parts += event.data == {"i": 1, "part": 1}
        if second_task_parts == 2:  # the second call of note for the second task
            break
    await stream.aclose()
    write_old_version(source, version)
    reference = await collect(chain.build_twice().process(WorkflowEvent("start")))

    store = open_store()

    assert store._rows("SELECT value FROM baxiflow_meta WHERE key = 'version'") == [("4",)]
    assert [e.event for e in store.logged("done")] == [e.event for e in source.logged("done")]
    assert store.events("done") == source.events("done")
    assert [span["attempt"] for span in store.trace("done").spans] == [1] * 4
    assert [run["run_id"] for run in store.runs()] == ["done", "cut"]
    calls: list[int] = []
    rest = await collect(chain.build_twice(calls=calls).resume("cut", store))
    assert shape(rest) == [("noted", {"i": 1, "part": 2})] and calls == [0]
    assert shape([e.event for e in store.logged("cut")]) == shape(reference)
    # New runs take numbers after the migrated ones.
    await collect(counting_workflow([]).process(WorkflowEvent("start"), store=store, run_id="new"))
    assert [e.event for e in store.logged("new")] == [e.event for e in store.logged("done")]
    assert store._rows("SELECT run_id FROM baxiflow_runs ORDER BY run_no") == [
        ("done",),
        ("cut",),
        ("new",),
    ]
    source.close()
    open_store()  # opened again: already version 4, nothing to migrate


def test_a_store_from_a_newer_baxiflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE baxiflow_meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        SQLiteStore(path)


async def test_replay_forks_a_run_from_an_event_with_a_changed_handler(store: Any) -> None:
    calls: list[str] = []
    source = counting_workflow(calls)
    await collect(source.process(WorkflowEvent("start"), store=store, run_id="src"))
    calls.clear()

    fixed = WorkflowManager()
    fixed.register("start", source.handlers_for("start")[0])

    @fixed.on("task")
    async def better(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        yield WorkflowEvent("done", {"i": event.data["i"], "better": True})

    fork = await collect(fixed.replay((store, "src"), from_seq=2, store=store, run_id="fork"))

    # Events 0..3 (start and the three tasks) are reused; task 0 (seq 1) was already handled.
    assert shape(fork) == [("done", {"i": 1, "better": True}), ("done", {"i": 2, "better": True})]
    assert calls == []  # the planning handler did not run again
    rows = store.events("fork")
    assert [(r["name"], r["reused"]) for r in rows][:6] == [
        ("start", True), ("task", True), ("task", True), ("task", True),
        ("progress", True), ("done", True),
    ]  # fmt: skip
    fork_row = next(row for row in store.runs() if row["run_id"] == "fork")
    assert (fork_row["parent_run_id"], fork_row["fork_seq"]) == ("src", 2)


async def test_replay_from_a_trace_file(tmp_path: Path) -> None:
    from baxiflow.trace import Trace, record

    trace = await record(counting_workflow([]), WorkflowEvent("start"))
    trace.to_jsonl(tmp_path / "run.jsonl")
    fork = await collect(
        counting_workflow([]).replay(Trace.from_jsonl(tmp_path / "run.jsonl"), from_seq=3)
    )
    assert [e.name for e in fork] == ["progress", "done"]
    with pytest.raises(ValueError, match="never dispatched"):
        counting_workflow([]).replay(trace, from_seq=4)  # a progress event
    with pytest.raises(LookupError, match="no event 99"):
        counting_workflow([]).replay(trace, from_seq=99)


def _kill_and_resume(
    target: str,
    run_id: str,
    after: float,
    begun: Callable[[str], bool] | None = None,
    script: str = "durable_chain.py",
) -> None:
    worker = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), target, run_id],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while begun is not None and not begun(run_id) and worker.poll() is None:
        assert time.monotonic() < deadline, f"{run_id} never began"
        time.sleep(0.005)
    time.sleep(after)
    worker.send_signal(signal.SIGKILL)
    worker.wait()


async def kill_at_random_points_and_resume(
    target: str,
    open_store: Callable[[], Any],
    kills: int,
    *,
    span: float = 0.9,
    begun: Callable[[str], bool] | None = None,
) -> None:
    """Runs the chain in a subprocess logging to ``target`` (a path or a DSN), kills it
    ``kills`` times at random points, resumes each run here and checks its whole log.

    A kill comes up to ``span`` seconds after the start, or after ``begun(run_id)`` says
    the run has committed its first events (so that few kills are spent before it begins).
    """
    reference = shape(await collect(chain.build().process(WorkflowEvent("start"))))
    generator = random.Random(20261202)
    for attempt in range(kills):
        run_id = f"run-{attempt}"
        _kill_and_resume(target, run_id, generator.uniform(0.0, span), begun)
        store = open_store()
        try:
            if any(row["run_id"] == run_id for row in store.runs()):
                status = next(r["status"] for r in store.runs() if r["run_id"] == run_id)
                if status != "finished":
                    try:
                        await collect(chain.build().resume(run_id, store))
                    except ValueError as exc:
                        # The end the process sent as it was killed landed since: done.
                        if f"run {run_id!r} is finished" not in str(exc):
                            raise
            else:  # killed before its first commit: nothing of it was kept
                await collect(chain.build().process(WorkflowEvent("start"), store=store, run_id=run_id))  # fmt: skip
            logged = store.logged(run_id)
            assert [e.seq for e in logged] == list(range(len(logged))), run_id  # no gap, no dup
            assert shape([e.event for e in logged]) == reference, run_id
        finally:
            store.close()


def _killed_in_the_second_call_of_note(target: str, run_id: str) -> None:
    """Runs ``build_twice`` in a subprocess that kills itself in the second task's second
    call of ``note``, after that call's first event was committed."""
    finished = subprocess.run(
        [sys.executable, str(EXAMPLES / "durable_chain.py"), target, run_id, "twice"],
        capture_output=True,
        timeout=60,
    )
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode()


async def test_a_process_killed_in_the_second_call_of_a_handler_registered_twice_resumes_that_call(
    target: str, open_store: Any
) -> None:
    _killed_in_the_second_call_of_note(target, "twice")
    store = open_store()
    reference = await collect(chain.build_twice().process(WorkflowEvent("start")))
    calls: list[int] = []

    rest = await collect(chain.build_twice(calls=calls).resume("twice", store))

    assert shape(rest) == [("noted", {"i": 1, "part": 2})]
    assert calls == [0]  # only the call that died ran again
    assert shape([e.event for e in store.logged("twice")]) == shape(reference)
    # plan, and note twice for each task: every call ended once, all of them well.
    assert [span["status"] for span in store.trace("twice").spans] == ["ok"] * 5


async def test_a_changed_registry_resumes_each_logged_call_as_the_registration_it_was(
    target: str, open_store: Any
) -> None:
    # A handler registered before the two notes moves them to positions 1 and 2: the
    # notes' logged calls still match them (by name and occurrence), and the new handler,
    # never logged, runs for both tasks.
    _killed_in_the_second_call_of_note(target, "changed")
    store = open_store()

    async def audit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        yield WorkflowEvent("audited", {"i": event.data["i"]})

    calls: list[int] = []
    changed = chain.build_twice(calls=calls, first=audit)
    rest = await collect(changed.resume("changed", store, allow_changed=True))

    assert shape(rest) == [
        ("audited", {"i": 0}), ("audited", {"i": 1}), ("noted", {"i": 1, "part": 2}),
    ]  # fmt: skip
    assert calls == [0]
    noted = [e.event.data for e in store.logged("changed") if e.event.name == "noted"]
    assert noted == [{"i": i, "part": p} for i in (0, 1) for _ in (0, 1) for p in (1, 2)]


def _killed_in_a_retry_pause(
    target: str, open_store: Callable[[], Any], run_id: str, durability: str, pause_after: int
) -> None:
    """Runs ``build_flaky`` in a subprocess and kills it (SIGKILL) in its minute-long pause
    after attempt ``pause_after``, once the store holds that attempt as retried."""
    watcher = open_store()
    command = [sys.executable, str(EXAMPLES / "durable_chain.py"), target, run_id, "flaky"]
    worker = subprocess.Popen(
        [*command, durability, str(pause_after)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while not watcher._rows(
            "SELECT 1 FROM baxiflow_calls c JOIN baxiflow_runs r ON r.run_no = c.call_key / 4294967296"
            " WHERE r.run_id = ? AND c.status = 'retried' AND c.attempt = ?",
            (run_id, pause_after),
        ):
            assert worker.poll() is None, worker.communicate()[1].decode()
            assert time.monotonic() < deadline, f"{run_id} never retried attempt {pause_after}"
            time.sleep(0.01)
    finally:
        worker.kill()
        worker.communicate()
    assert worker.returncode == -signal.SIGKILL
    assert [r["status"] for r in watcher.runs() if r["run_id"] == run_id] == ["running"]


def fetch_spans(trace: Any) -> list[tuple[int, str]]:
    return [(s["attempt"], s["status"]) for s in trace.spans if s["handler"].endswith("fetch")]


@pytest.mark.parametrize(("durability", "pause_after"), [("sync", 1), ("batched", 2)])
async def test_a_process_killed_in_a_retry_pause_resumes_the_call_from_its_next_attempt(
    target: str, open_store: Any, durability: str, pause_after: int
) -> None:
    _killed_in_a_retry_pause(target, open_store, "paused", durability, pause_after)
    store = open_store()
    calls: list[int] = []

    rest = await collect(chain.build_flaky(fails=0, calls=calls).resume("paused", store))

    # The call ran again once: the attempt after those logged as retried, and it succeeded.
    assert calls == [0]
    assert [e.name for e in rest] == ["progress", "fetched", "reported"]
    reference = await collect(chain.build_flaky(fails=pause_after).process(WorkflowEvent("start")))  # fmt: skip
    logged = store.logged("paused")
    assert [e.seq for e in logged] == list(range(len(logged)))  # no gap, no duplicate
    assert shape([e.event for e in logged]) == shape(reference)
    retried = [(n, "retried") for n in range(1, pause_after + 1)]
    assert fetch_spans(store.trace("paused")) == [*retried, (pause_after + 1, "ok")]
    assert [r["status"] for r in store.runs() if r["run_id"] == "paused"] == ["finished"]


async def test_a_call_killed_in_a_retry_pause_that_fails_again_ends_with_one_error_for_all_attempts(
    target: str, open_store: Any
) -> None:
    _killed_in_a_retry_pause(target, open_store, "failing", "batched", 1)
    store = open_store()
    calls: list[int] = []

    rest = await collect(chain.build_flaky(fails=99, calls=calls).resume("failing", store))

    assert calls == [0, 1]  # attempts 2 and 3
    assert [e.name for e in rest] == ["progress", "progress", "error"]
    errors = [e.event for e in store.logged("failing") if e.event.name == "error"]
    assert len(errors) == 1 and errors[0].error == "backend down (failed all 3 attempts)"
    assert errors[0].data is not None and errors[0].data["attempts"] == 3
    reference = await collect(chain.build_flaky(fails=99).process(WorkflowEvent("start")))
    logged = store.logged("failing")
    assert [e.seq for e in logged] == list(range(len(logged)))
    assert shape([e.event for e in logged]) == shape(reference)
    assert fetch_spans(store.trace("failing")) == [(1, "retried"), (2, "retried"), (3, "error")]
    with pytest.raises(ValueError, match="is finished"):
        await collect(chain.build_flaky(fails=0).resume("failing", store))


async def test_a_resumed_call_whose_handler_lost_its_retry_policy_still_counts_its_attempts(
    store: Any,
) -> None:
    workflow = chain.build_flaky(fails=99, pause=60)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await collect(workflow.process(WorkflowEvent("start"), store=store, run_id="cut"))

    # The fixed handler has no retry policy now: its one attempt is the call's second.
    rest = await collect(chain.build_flaky(fails=99, retried=False).resume("cut", store))

    assert [e.name for e in rest] == ["progress", "error"]
    assert rest[-1].error == "backend down (failed all 2 attempts)"
    assert fetch_spans(store.trace("cut")) == [(1, "retried"), (2, "error")]


@pytest.mark.parametrize("durability", ["sync", "batched", "exit"])
async def test_a_run_cancelled_in_a_retry_pause_resumes_from_the_next_attempt(
    store: Any, durability: str
) -> None:
    calls: list[int] = []
    workflow = chain.build_flaky(fails=99, calls=calls, pause=60)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await collect(
                workflow.process(
                    WorkflowEvent("start"), store=store, run_id="cut", durability=durability
                )
            )
    assert calls == [0]

    rest = await collect(chain.build_flaky(fails=0).resume("cut", store))

    assert [e.name for e in rest] == ["progress", "fetched", "reported"]
    assert fetch_spans(store.trace("cut")) == [(1, "retried"), (2, "ok")]


async def test_a_resumed_call_that_yields_an_event_already_logged_then_fails_is_not_retried(
    store: Any,
) -> None:
    failing: list[bool] = [False]
    workflow = WorkflowManager()

    @workflow.on("start", retry=Retry(attempts=3, backoff=0, on=ConnectionError))
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("fetched", {"part": 1})
        if failing[0]:
            raise ConnectionError("backend down")
        yield WorkflowEvent("fetched", {"part": 2})

    stream = workflow.process(WorkflowEvent("start"), store=store, run_id="cut")
    async for event in stream:
        if event.name == "fetched":
            break  # the call is cut short after its first event
    await stream.aclose()
    failing[0] = True

    rest = await collect(workflow.resume("cut", store))

    # Its first event is matched to the log; the attempt had yielded it, so it is final.
    assert [(e.name, e.error) for e in rest] == [("error", "backend down")]
    assert [e.event.name for e in store.logged("cut")] == ["start", "fetched", "error"]


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_the_stored_trace_has_a_span_for_each_attempt_as_the_trace_in_memory(
    store: Any, concurrency: int
) -> None:
    trace = Trace()
    workflow = chain.build_flaky(fails=2)
    await collect(
        workflow.process(
            WorkflowEvent("start"),
            store=store,
            run_id="flaky",
            observers=[trace],
            concurrency=concurrency,
        )
    )

    assert fetch_spans(trace) == [(1, "retried"), (2, "retried"), (3, "ok")]
    assert store.trace("flaky").spans == trace.spans


async def test_runs_killed_at_random_points_resume_to_exactly_the_uninterrupted_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    await kill_at_random_points_and_resume(str(path), lambda: SQLiteStore(path), kills=50)
    os.remove(path)


async def test_data_the_log_cannot_give_back_fails_at_emit_time_naming_handler_and_key(
    store: Any,
) -> None:
    workflow = WorkflowManager()
    closed: list[bool] = []

    @workflow.on("start")
    async def remember(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            yield WorkflowEvent("fine", {"pair": (1, 2), 3: "non-string keys come back too"})
            yield WorkflowEvent("kept", {"seen": {"a", "b"}})
        finally:
            closed.append(True)

    events = await collect(workflow.process(WorkflowEvent("start"), store=store, run_id="r"))

    assert [e.name for e in events] == ["start", "fine", "error"]
    assert events[-1].data is not None and events[-1].data["handler"] == remember.__qualname__
    assert "data['seen'] is a set" in str(events[-1].error)
    assert closed == [True]
    assert [e.event.name for e in store.logged("r")] == ["start", "fine", "error"]
    with pytest.raises(ValueError, match=r"initial event cannot be logged: metadata\['at'\]"):
        workflow.process(WorkflowEvent("start", metadata={"at": object()}), store=store)


@pytest.mark.parametrize("durability", ["sync", "batched"])
async def test_a_log_that_fails_mid_run_ends_the_run_with_an_error_and_never_marks_it_finished(
    store: Any, durability: Any
) -> None:
    # "sync" finds the failure at the next event's commit; "batched" at the commit it makes
    # when the run's queue runs dry, before the run ends, so either way the stream says so.
    workflow = counting_workflow([])
    events: list[WorkflowEvent] = []
    stream = workflow.process(
        WorkflowEvent("start"), store=store, run_id="broken", durability=durability
    )
    async for event in stream:
        events.append(event)
        if event.name == "task":
            store._connection.close()  # the database goes away

    assert events[-1].name == "error"
    assert events[-1].data is not None and events[-1].data["reason"] == "log_failed"
    assert "could not be written" in str(events[-1].error)
    reopened = SQLiteStore(store.path)
    assert all(row["status"] != "finished" for row in reopened.runs())
    reopened.close()
    store._connection = sqlite3.connect(store.path)  # for the fixture's close


async def test_deleting_a_run_removes_its_log_and_leaves_the_others_whole(store: Any) -> None:
    workflow = counting_workflow([])
    for run_id in ("kept", "gone"):
        await collect(workflow.process(WorkflowEvent("start"), store=store, run_id=run_id))
    kept = store.logged("kept")

    store.delete("gone")

    assert [row["run_id"] for row in store.runs()] == ["kept"]
    assert store.logged("gone") == [] and store.events("gone") == []
    with pytest.raises(LookupError, match="no run 'gone'"):
        store.trace("gone")
    with pytest.raises(LookupError, match="no run 'gone'"):
        store.delete("gone")
    assert store.logged("kept") == kept and len(store.trace("kept").spans) == 4
    assert store._rows("SELECT count(*) FROM baxiflow_calls") == [(4,)]


async def test_each_registry_is_kept_once_and_every_run_names_its_own(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = counting_workflow([]), counting_workflow([])

    @second.on("done")
    async def extra(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("extra")

    for run_id, workflow in (("a", first), ("b", first), ("c", second)):
        await collect(workflow.process(WorkflowEvent("start"), store=store, run_id=run_id))
    assert store._rows("SELECT count(*) FROM baxiflow_registries") == [(2,)]
    fingerprints = {row["run_id"]: row["fingerprint"] for row in store.runs()}
    assert fingerprints == {
        "a": first.fingerprint(),
        "b": first.fingerprint(),
        "c": second.fingerprint(),
    }
    # Two registries whose keys clashed (64 bits of a digest) would be told apart, loudly.
    from baxiflow.store import _sqlite

    monkeypatch.setattr(_sqlite, "_registry_key", lambda fingerprint: 7)
    again = pickle.loads(pickle.dumps(store))  # the same database; no registry seen yet
    await collect(first.process(WorkflowEvent("start"), store=again, run_id="d"))
    with pytest.raises(StoreError, match="keeps another registry under this one's key 7"):
        second.process(WorkflowEvent("start"), store=again, run_id="e")
    again.close()


async def test_store_objects_sharing_a_database_number_their_runs_apart(
    open_store: Any,
) -> None:
    # Each store object takes run numbers in blocks; two of them (two processes, say)
    # opening runs in turn, past a block each, keep every run's log to itself.
    first, second = open_store(), open_store()
    workflow = counting_workflow([])
    for _ in range(70):
        for store in (first, second):
            await collect(workflow.process(WorkflowEvent("start"), store=store))
    reader = open_store()
    runs = reader.runs()
    assert len(runs) == 140 and all(run["status"] == "finished" for run in runs)
    reference = [e.event for e in reader.logged(runs[0]["run_id"])]
    for run in runs:
        assert [e.event for e in reader.logged(run["run_id"])] == reference
    numbers = reader._rows("SELECT run_no FROM baxiflow_runs")
    assert len(set(numbers)) == 140


async def test_a_run_past_the_events_one_log_can_key_stops_with_a_log_error(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A log keys run n's events from n * 2**32: a run can log 2**32 of them. Made small
    # here, the bound stops the run like a failed write, and the next run's log is whole.
    from baxiflow.store import _log, _sqlite

    for module in (_log, _sqlite):
        monkeypatch.setattr(module, "RUN_SPAN", 6)
    workflow = counting_workflow([])
    events = await collect(workflow.process(WorkflowEvent("start"), store=store, run_id="long"))
    assert events[-1].name == "error" and events[-1].data is not None
    assert events[-1].data["reason"] == "log_failed"
    assert "logs at most 6 events" in str(events[-1].error)
    assert [e.event for e in store.logged("long")] == events[:6]
    assert [row["status"] for row in store.runs()] == ["running"]  # never marked finished
    monkeypatch.undo()
    whole = await collect(
        counting_workflow([]).process(WorkflowEvent("start"), store=store, run_id="next")
    )
    assert [e.event for e in store.logged("next")] == whole


async def test_a_run_past_the_calls_one_log_can_key_stops_with_a_log_error(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls are keyed as events are (run n's from n * 2**32): past the bound, made small
    # here, the run stops like a failed write, with the calls before it kept.
    from baxiflow.store import _log, _sqlite

    for module in (_log, _sqlite):
        monkeypatch.setattr(module, "RUN_SPAN", 3)
    workflow = WorkflowManager()
    for _ in range(5):

        @workflow.on("start")
        async def listen(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            return
            yield

    events = await collect(workflow.process(WorkflowEvent("start"), store=store, run_id="wide"))
    assert [e.name for e in events] == ["start", "error"]
    assert "logs at most 3 handler calls" in str(events[-1].error)
    assert [e.event for e in store.logged("wide")] == events[:1]
    assert [span["status"] for span in store.trace("wide").spans] == ["ok"] * 3
    assert [row["status"] for row in store.runs()] == ["running"]


async def test_run_and_run_many_pass_the_store_on(store: Any) -> None:
    import baxiflow

    result = await baxiflow.run(
        counting_workflow([]), WorkflowEvent("start"), view=False, store=store, run_id="one"
    )
    batch = await baxiflow.run_many(
        counting_workflow([]), [WorkflowEvent("start")] * 3, view=False, store=store
    )
    assert result.status == "ok" and batch.ok
    rows = store.runs()
    assert len(rows) == 4 and {row["status"] for row in rows} == {"finished"}
    assert [e.event.name for e in store.logged("one")][-1] == "done"
    # Each outcome row names its run in the store (on Dask too: tests/test_batch_dask.py).
    assert {row["run_id"] for row in batch.records} == {row["run_id"] for row in rows} - {"one"}
