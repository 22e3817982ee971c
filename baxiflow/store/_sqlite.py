"""Durable stores over SQL: the shared schema and logic, and the SQLite store.

Three tables: ``baxiflow_runs`` (one row per run, keyed by its id), ``baxiflow_events``
(the log: one row per emitted event, in order) and ``baxiflow_calls`` (one row per ended
handler call); ``baxiflow_registries`` keeps each registry's fingerprint once (keyed by 64
bits of its SHA-256 digest), which each run names by ``registry_key``; ``baxiflow_meta``
holds the schema version. Event data and metadata are kept as JSON through the trace's
codec, so what comes back equals what was emitted.

A run has a number in the store, ``run_no``, besides its id. The events of run ``n`` are
keyed by ``log_key = n * 2**32 + seq``, and its ended calls by ``call_key = n * 2**32 + i``
(``i`` counts the run's call rows in the order they were logged): one run's log is one range
of one integer key in each table, so appending a row writes it into one tree, at its end,
and reading a run reads a range. Run numbers are taken in blocks by each store object
(``next_run_no`` in ``baxiflow_meta``), so opening a run asks nothing of the database.

A call is known by its trigger's ``seq``, its handler's qualified name and its
``occurrence`` (which registration of that handler for that event it is; see
:mod:`baxiflow._durable`). Events name the call that emitted them the same way. The calls
table holds one row per ended *attempt* of a call (``attempt``, 1 for a call never retried),
so a stored trace has a span for each attempt, as a trace recorded in memory does; an
attempt cut short when a run stopped (``cancelled``) keeps its row, and the attempt run
again when the run is resumed has one of its own.

The schema is versioned (:data:`SCHEMA_VERSION`, in ``baxiflow_meta``). A store of an
older version is migrated when it is opened, in one transaction; one of a newer version
is refused. Version 1 (the first released) knew a call by its position alone; version 2
added the ``occurrence`` columns and keyed calls by handler name, occurrence and attempt
(each row of version 1 is attempt 1); version 3 keys events and calls by run number, not
by run id (a commit of a run writes about half the pages it did); version 4 keys calls by
one integer, as events are (a table keyed by several columns, handler names among them,
split its pages at each run's commit), keys runs by their id alone (one tree, not a table
and an index) and keeps fingerprints once, not in every run's row: a 10-step run's commit
writes 5.6 pages, not 8.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from baxiflow._durable import (
    DURABILITIES,
    Durability,
    LoggedCall,
    LoggedEvent,
    SavedRun,
    occurrences,
    registry_changes,
    state_from_log,
)
from baxiflow._engine import new_run_id
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import StoreError
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo
from baxiflow.registry import Route
from baxiflow.store._codec import decode, encode, encode_event
from baxiflow.store._log import LEASE_SECONDS, RUN_SPAN, NewRun, RunLog
from baxiflow.trace import Trace
from baxiflow.trace._frames import ColumnKind, typed_frame

__all__ = ["SCHEMA_VERSION", "SQLStore", "SQLiteStore", "table_columns"]

SCHEMA_VERSION = 4
"""Version of the tables' layout; an older store is migrated, a newer one is refused."""

RUN_COLUMNS = (
    "run_id",
    "status",
    "workflow_name",
    "fingerprint",
    "created",
    "updated",
    "parent_run_id",
    "fork_seq",
)
"""Columns of :meth:`SQLStore.runs`, in order."""

_RUN_KINDS: dict[str, ColumnKind] = {
    "run_id": "text",
    "status": "category",
    "workflow_name": "text",
    "fingerprint": "text",
    "created": "time",
    "updated": "time",
    "parent_run_id": "text",
    "fork_seq": "int",
}

WAL_PAGES = 4000
"""How many pages SQLite's write-ahead log holds before they are copied into the database
(SQLite's default is 1,000). A run's commits write the same last pages of each table again
and again; the fewer the copies, the fewer times each is copied and synced: about a fifth
less time per logged step, for a log file of up to 16 MB beside the database."""

RUN_NUMBERS_TAKEN = 64
"""How many run numbers a store object takes from ``baxiflow_meta`` at once."""

_TABLES = (
    """CREATE TABLE IF NOT EXISTS baxiflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS baxiflow_registries (
        registry_key {int} PRIMARY KEY, fingerprint TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS baxiflow_runs (
        run_id TEXT PRIMARY KEY, run_no {int} NOT NULL, status TEXT NOT NULL,
        workflow_name TEXT, registry_key {int} NOT NULL, created {real} NOT NULL,
        updated {real} NOT NULL, parent_run_id TEXT, fork_seq {int}, lease_owner TEXT,
        lease_until {real}){small_rows}""",
    """CREATE TABLE IF NOT EXISTS baxiflow_events (
        log_key {int} PRIMARY KEY, seq {int} NOT NULL, parent_seq {int}, depth {int} NOT NULL,
        name TEXT NOT NULL, handler TEXT, position {int}, error TEXT, elapsed {real} NOT NULL,
        data TEXT, metadata TEXT, reused {int} NOT NULL DEFAULT 0, occurrence {int})""",
    """CREATE TABLE IF NOT EXISTS baxiflow_calls (
        call_key {int} PRIMARY KEY, trigger_seq {int} NOT NULL, position {int} NOT NULL,
        handler TEXT NOT NULL, started {real} NOT NULL, finished {real}, status TEXT NOT NULL,
        error TEXT, emitted {int} NOT NULL DEFAULT 0, occurrence {int} NOT NULL DEFAULT 0,
        attempt {int} NOT NULL DEFAULT 1)""",
)
"""The tables of the current version. ``{small_rows}`` is how the dialect keeps a table's
rows in its key's tree alone (SQLite's ``WITHOUT ROWID``)."""

_VERSION_3_TABLES = (
    """CREATE TABLE baxiflow_runs_v3 (
        run_no {int} PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
        workflow_name TEXT, fingerprint TEXT NOT NULL, created {real} NOT NULL,
        updated {real} NOT NULL, parent_run_id TEXT, fork_seq {int}, lease_owner TEXT,
        lease_until {real})""",
    """CREATE TABLE baxiflow_calls_v3 (
        run_no {int} NOT NULL, trigger_seq {int} NOT NULL, position {int} NOT NULL,
        handler TEXT NOT NULL, started {real} NOT NULL, finished {real}, status TEXT NOT NULL,
        error TEXT, emitted {int} NOT NULL DEFAULT 0, occurrence {int} NOT NULL DEFAULT 0,
        attempt {int} NOT NULL DEFAULT 1,
        PRIMARY KEY (run_no, trigger_seq, handler, occurrence, attempt))""",
)
"""The runs and calls tables of version 3, which the migration from version 2 makes."""

_VERSION_2_RUN_COLUMNS = (
    "run_id, status, workflow_name, fingerprint, created, updated, parent_run_id, fork_seq,"
    " lease_owner, lease_until"
)
_VERSION_3_CALL_COLUMNS = (
    "trigger_seq, position, handler, started, finished, status, error, emitted, occurrence, attempt"
)

_NOT_IN_EVERY_VERSION = {
    "baxiflow_registries": {"registry_key", "fingerprint"},
    "baxiflow_runs": {"run_no", "registry_key"},
    "baxiflow_events": {"log_key", "occurrence"},
    "baxiflow_calls": {"call_key", "occurrence", "attempt"},
}
"""Columns that some version of the schema lacks (``run_id`` left events and calls in 3,
``fingerprint`` left runs for ``baxiflow_registries`` in 4)."""

_INSERT_EVENT = (
    "INSERT INTO baxiflow_events (log_key, seq, parent_seq, depth, name, handler, position,"
    " occurrence, error, elapsed, data, metadata, reused)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, {text}, ?, {text}, {text}, {reused})"
)
_INSERT_CALL = (
    "INSERT INTO baxiflow_calls (call_key, trigger_seq, position, handler, occurrence, attempt,"
    " started, finished, status, error, emitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {text}, ?)"
)
_INSERT_RUN = (
    "INSERT INTO baxiflow_runs (run_id, run_no, status, workflow_name, registry_key, created,"
    " updated, parent_run_id, fork_seq, lease_owner, lease_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_STATUS = (
    "UPDATE baxiflow_runs SET status = ?, updated = ?, lease_owner = ?, lease_until = ?"
    " WHERE run_id = ? AND lease_owner = ?"
)
"""A run's new status, while this process holds it; an ended run's lease is let go (``NULL``)."""
_RENEW_LEASE = "UPDATE baxiflow_runs SET lease_until = ? WHERE run_id = ? AND lease_owner = ?"
_WITH_FINGERPRINT = "baxiflow_runs r JOIN baxiflow_registries g ON g.registry_key = r.registry_key"
"""The runs with the registry each ran on."""


def table_columns(*, oldest: bool = False) -> dict[str, set[str]]:
    """Each table's columns, as baxiflow creates them; with ``oldest``, those that every
    version of the schema has.

    >>> sorted(table_columns()["baxiflow_meta"])
    ['key', 'value']
    >>> "occurrence" in table_columns(oldest=True)["baxiflow_calls"]
    False
    """
    tables = {}
    for statement in _TABLES:
        name, _, body = statement.removeprefix("CREATE TABLE IF NOT EXISTS ").partition(" (")
        # A column is a name followed by its type; "PRIMARY KEY (a, b)" names no new one.
        columns = set(re.findall(r"(?:^|,)\s*(\w+) (?:TEXT|\{real\}|\{int\})", body))
        tables[name] = columns - _NOT_IN_EVERY_VERSION.get(name, set()) if oldest else columns
    return tables


def _registry_key(fingerprint: str) -> int:
    """The key a registry's fingerprint is kept under: 64 bits of its SHA-256 digest."""
    digest = hashlib.sha256(fingerprint.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _made(table: str) -> str:
    """The statement of :data:`_TABLES` that makes ``table``."""
    return next(t for t in _TABLES if t.startswith(f"CREATE TABLE IF NOT EXISTS {table} ("))


def _process_alive(owner: str) -> bool:
    """Whether the process named in a lease still runs (only knowable on this host)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SQLStore:
    """What the SQLite and PostgreSQL stores share: schema, log writing, reading back.

    Subclasses give the connection (:meth:`_connect`) and the dialect (placeholder, types).
    """

    placeholder: ClassVar[str] = "?"
    real: ClassVar[str] = "REAL"
    integer: ClassVar[str] = "INTEGER"
    no_text: ClassVar[object] = None
    """What a log row holds for an error, data or metadata that is ``None``."""
    text_parameter: ClassVar[str] = "?"
    """How the log's statements take those columns (and turn :attr:`no_text` into NULL)."""
    small_rows: ClassVar[str] = " WITHOUT ROWID"
    """What makes a table keep its rows in its key's tree alone."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.encoded: tuple[WorkflowEvent | None, str | None, str | None] = (None, None, None)
        """The last event :meth:`check_event` passed, with its data and metadata encoded."""
        self._insert_events = self._sql(_INSERT_EVENT.format(reused=0, text=self.text_parameter))
        self._insert_reused = self._sql(_INSERT_EVENT.format(reused=1, text=self.text_parameter))
        self._insert_calls = self._sql(_INSERT_CALL.format(text=self.text_parameter))
        self._insert_run = self._sql(_INSERT_RUN)
        self._set_status = self._sql(_SET_STATUS)
        self._renew_lease = self._sql(_RENEW_LEASE)
        self._run_numbers: Iterator[int] = iter(())
        self._registries: dict[str, int] = {}  # fingerprints in baxiflow_registries: keys
        self._connection = self._connect()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        try:
            self._prepare()
        except BaseException:
            self._connection.close()
            raise

    # Subclasses ---------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _check_foreign(self) -> None:
        """Refuse a database that holds tables of another application."""

    @property
    def where(self) -> str:
        """The database, as messages name it."""
        raise NotImplementedError

    # Plumbing -------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> Any:
        try:
            with self._lock:
                cursor = self._connection.cursor()
                cursor.execute(self._sql(statement), parameters)
                return cursor
        except Exception as exc:
            raise StoreError(f"the store at {self.where} failed: {exc}") from exc

    def _rows(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._execute(statement, parameters).fetchall())

    def commit(self) -> None:
        """Commit what was written."""
        with self._lock:
            try:
                self._connection.commit()
            except Exception as exc:
                raise StoreError(f"the store at {self.where} could not commit: {exc}") from exc

    def close(self) -> None:
        """Close the connection (what was not committed is lost)."""
        with self._lock:
            self._connection.close()

    def _begin(self) -> None:
        """Open a write transaction now, if none is open (for a migration's DDL)."""

    def _writing(self) -> contextlib.AbstractContextManager[object]:
        """Where a run's write goes: its transaction, opened where the driver does not open
        it by itself (``sqlite3`` does, at the first statement that writes)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _own_transaction(self) -> Iterator[None]:
        """A write in a transaction of its own, under the store's lock: committed when the
        block ends, rolled back if it fails."""
        with self._lock:
            try:
                self._begin()
                yield
                self.commit()
            except StoreError:
                self._roll_back()
                raise

    def _prepare(self) -> None:
        self._check_foreign()
        for table in _TABLES:
            self._execute(self._table(table))
        self._begin()  # the version is read again, and migrated, in one transaction
        found = self._rows("SELECT value FROM baxiflow_meta WHERE key = 'version'")
        version = int(found[0][0]) if found else SCHEMA_VERSION
        if not found:
            self._execute(
                "INSERT INTO baxiflow_meta (key, value) VALUES ('version', ?), ('next_run_no', '1')",
                (str(SCHEMA_VERSION),),
            )
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.where} has schema version {version}, newer than this "
                f"baxiflow's {SCHEMA_VERSION}; upgrade baxiflow to use it"
            )
        while version < SCHEMA_VERSION:
            _MIGRATIONS[version](self)
            version += 1
            self._execute(
                "UPDATE baxiflow_meta SET value = ? WHERE key = 'version'", (str(version),)
            )
        self.commit()

    def _migrate_from_1(self) -> None:
        """Version 1 to 2: calls and events name a call by handler and occurrence; each call
        row is its attempt 1 (the default of the new ``attempt`` column)."""
        for table in ("baxiflow_events", "baxiflow_calls"):
            self._execute(f"ALTER TABLE {table} ADD COLUMN occurrence {self.integer}")
            self._execute(f"UPDATE {table} SET occurrence = 0 WHERE position IS NOT NULL")
        # Version 1 kept no occurrence: a repeated handler's comes from the run's registry.
        for run_id, logged_fingerprint in self._rows(
            "SELECT run_id, fingerprint FROM baxiflow_runs"
        ):
            for (event, position), occurrence in occurrences(logged_fingerprint).items():
                for table, trigger in (("baxiflow_calls", "trigger_seq"), ("baxiflow_events", "parent_seq")):  # fmt: skip
                    self._execute(
                        f"UPDATE {table} SET occurrence = ? WHERE run_id = ? AND position = ?"
                        f" AND {trigger} IN (SELECT seq FROM baxiflow_events"
                        " WHERE run_id = ? AND name = ?)",
                        (occurrence, run_id, position, run_id, event),
                    )
        # The calls' new key comes with version 3, which makes every table again.
        self._execute(
            f"ALTER TABLE baxiflow_calls ADD COLUMN attempt {self.integer} NOT NULL DEFAULT 1"
        )

    def _migrate_from_2(self) -> None:
        """Version 2 to 3: events and calls are keyed by run number (runs numbered in the
        order they were created), not by run id; SQLite can change a key only by making
        the table again."""
        for table in _VERSION_3_TABLES:
            self._execute(self._table(table))
        self._execute(self._table(_made("baxiflow_events"), "baxiflow_events_v3"))
        runs = _VERSION_2_RUN_COLUMNS
        self._execute(
            f"INSERT INTO baxiflow_runs_v3 (run_no, {runs}) SELECT"
            f" ROW_NUMBER() OVER (ORDER BY created, run_id), {runs} FROM baxiflow_runs"
        )
        events = ", ".join(sorted(table_columns()["baxiflow_events"] - {"log_key"}))
        self._execute(
            f"INSERT INTO baxiflow_events_v3 (log_key, {events}) SELECT"
            f" r.run_no * {RUN_SPAN} + e.seq, {_prefixed('e', events)} FROM baxiflow_events e"
            " JOIN baxiflow_runs_v3 r ON r.run_id = e.run_id"
        )
        calls = _VERSION_3_CALL_COLUMNS
        self._execute(
            f"INSERT INTO baxiflow_calls_v3 (run_no, {calls}) SELECT"
            f" r.run_no, {_prefixed('c', calls)} FROM baxiflow_calls c"
            " JOIN baxiflow_runs_v3 r ON r.run_id = c.run_id"
        )
        for table in ("baxiflow_events", "baxiflow_calls", "baxiflow_runs"):
            self._execute(f"DROP TABLE {table}")
            self._execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
        self._execute(
            "INSERT INTO baxiflow_meta (key, value) SELECT 'next_run_no',"
            " CAST(COALESCE(MAX(run_no), 0) + 1 AS TEXT) FROM baxiflow_runs"
        )

    def _migrate_from_3(self) -> None:
        """Version 3 to 4: runs are keyed by run id alone and name their registry by key
        (each fingerprint kept once, in ``baxiflow_registries``); calls are keyed by
        ``call_key``, numbered in each run in the order they ended."""
        for (fingerprint,) in self._rows("SELECT DISTINCT fingerprint FROM baxiflow_runs"):
            self._add_registry(fingerprint)
        self._execute(self._table(_made("baxiflow_runs"), "baxiflow_runs_v4"))
        runs = ", ".join(sorted(table_columns()["baxiflow_runs"] - {"registry_key"}))
        self._execute(
            f"INSERT INTO baxiflow_runs_v4 (registry_key, {runs}) SELECT g.registry_key,"
            f" {_prefixed('r', runs)} FROM baxiflow_runs r"
            " JOIN baxiflow_registries g ON g.fingerprint = r.fingerprint"
        )
        self._execute(self._table(_made("baxiflow_calls"), "baxiflow_calls_v4"))
        calls = ", ".join(sorted(table_columns()["baxiflow_calls"] - {"call_key"}))
        self._execute(
            f"INSERT INTO baxiflow_calls_v4 (call_key, {calls}) SELECT run_no * {RUN_SPAN}"
            " + ROW_NUMBER() OVER (PARTITION BY run_no ORDER BY finished, started, trigger_seq,"
            f" handler, occurrence, attempt) - 1, {calls} FROM baxiflow_calls"
        )
        for table in ("baxiflow_runs", "baxiflow_calls"):
            self._execute(f"DROP TABLE {table}")
            self._execute(f"ALTER TABLE {table}_v4 RENAME TO {table}")

    def _table(self, statement: str, name: str | None = None) -> str:
        """A table's statement in this dialect; with ``name``, one that makes it (for a
        migration) under that name."""
        statement = statement.format(real=self.real, int=self.integer, small_rows=self.small_rows)
        if name is None:
            return statement
        _, _, body = statement.removeprefix("CREATE TABLE IF NOT EXISTS ").partition(" (")
        return f"CREATE TABLE {name} ({body}"

    def _next_run_no(self) -> int:
        """A number for a new run, from the block this store object took last."""
        with self._lock:
            run_no = next(self._run_numbers, None)
            if run_no is None:
                self._run_numbers = iter(self._take_run_numbers())
                run_no = next(self._run_numbers)
            return run_no

    def _take_run_numbers(self) -> range:
        """The next :data:`RUN_NUMBERS_TAKEN` run numbers, taken in a transaction of their own
        so that no other store object takes them."""
        with self._own_transaction():
            self._execute(
                f"UPDATE baxiflow_meta SET value = CAST(CAST(value AS {self.integer}) + ?"
                " AS TEXT) WHERE key = 'next_run_no'",
                (RUN_NUMBERS_TAKEN,),
            )
            end = int(self._rows("SELECT value FROM baxiflow_meta WHERE key = 'next_run_no'")[0][0])
        return range(end - RUN_NUMBERS_TAKEN, end)

    def _registry(self, fingerprint: str) -> int:
        """The key of ``fingerprint`` in ``baxiflow_registries``, which holds it from now on
        (written in a transaction of its own the first time this store object sees it)."""
        key = self._registries.get(fingerprint)
        if key is None:
            with self._own_transaction():
                key = self._add_registry(fingerprint)
            self._registries[fingerprint] = key
        return key

    def _add_registry(self, fingerprint: str) -> int:
        """Keep ``fingerprint`` in ``baxiflow_registries`` (once, whoever writes it first);
        its key."""
        key = _registry_key(fingerprint)
        self._execute(
            "INSERT INTO baxiflow_registries (registry_key, fingerprint) VALUES (?, ?)"
            " ON CONFLICT (registry_key) DO NOTHING",
            (key, fingerprint),
        )
        kept = self._rows(
            "SELECT fingerprint FROM baxiflow_registries WHERE registry_key = ?", (key,)
        )
        if kept[0][0] != fingerprint:  # two registries whose digests share 64 bits
            raise StoreError(
                f"the store at {self.where} keeps another registry under this one's key "
                f"{key}; it cannot log runs of both"
            )
        return key

    # Writing a run ---------------------------------------------------------------------

    def check_event(self, event: WorkflowEvent) -> str | None:
        """What in ``event`` this store could not give back exactly; ``None`` if all of it.

        The encoded data is kept in :attr:`encoded` for the run's log, which logs the same
        event next.
        """
        data, metadata, problem = encode_event(event)
        if problem is not None:
            return problem
        self.encoded = (event, data, metadata)
        return None

    def open_run(
        self,
        run_id: str | None,
        fingerprint: str,
        durability: Durability,
        *,
        workflow_name: str | None = None,
        parent: tuple[str, int] | None = None,
        reused: Sequence[LoggedEvent] = (),
    ) -> RunLog:
        """The log of a new run (named here when ``run_id`` is ``None``): nothing is written
        until its first commit, which writes the run's row (and a fork's reused events) with
        its first events."""
        _check_durability(durability)
        if run_id is None:
            run_id = new_run_id()  # new: its prefix is this process's alone
        elif self._rows("SELECT 1 FROM baxiflow_runs WHERE run_id = ?", (run_id,)):
            raise ValueError(f"run {run_id!r} is already in the store at {self.where}")
        run_no = self._next_run_no()
        rows = [self._reused_row(run_no, event) for event in reused]
        new_run = NewRun(workflow_name, self._registry(fingerprint), parent, rows)
        return RunLog(self, run_id, run_no, durability, fingerprint, new_run)

    def resume_run(
        self,
        run_id: str,
        fingerprint: str,
        durability: Durability,
        route: Callable[[str], Route | None],
        *,
        allow_changed: bool = False,
    ) -> SavedRun:
        """Take over an unfinished run; see :class:`baxiflow._durable.RunStore`."""
        _check_durability(durability)
        with self._lock:
            run_no = self._take_lease(run_id, fingerprint, allow_changed)
            events = self._logged(run_no)
            calls = [
                LoggedCall(*row)
                for row in self._rows(
                    "SELECT trigger_seq, position, handler, status, occurrence, attempt, emitted"
                    " FROM baxiflow_calls WHERE call_key >= ? AND call_key < ?",
                    _keys(run_no),
                )
            ]
            # The clock of the run goes on from its last logged time, so that a trace of
            # the whole run keeps its order; its calls go on after the last one logged.
            ((elapsed,),) = self._rows(
                "SELECT max(elapsed) FROM baxiflow_events WHERE log_key >= ? AND log_key < ?",
                _keys(run_no),
            )
            ((finished, last_call),) = self._rows(
                "SELECT max(finished), max(call_key) FROM baxiflow_calls"
                " WHERE call_key >= ? AND call_key < ?",
                _keys(run_no),
            )
            self.commit()
        state, reruns = state_from_log(events, calls, route)
        state.elapsed = max((t for t in (elapsed, finished) if t is not None), default=0.0)
        next_call = 0 if last_call is None else last_call + 1 - run_no * RUN_SPAN
        log = RunLog(self, run_id, run_no, durability, fingerprint, next_call=next_call)
        return SavedRun(run_id, state, reruns, log)

    def _take_lease(self, run_id: str, fingerprint: str, allow_changed: bool) -> int:
        """Hold run ``run_id`` for this process; its number."""
        rows = self._rows(
            "SELECT r.run_no, r.status, g.fingerprint, r.lease_owner, r.lease_until FROM"
            f" {_WITH_FINGERPRINT} WHERE r.run_id = ?",
            (run_id,),
        )
        if not rows:
            raise LookupError(f"no run {run_id!r} in the store at {self.where}")
        run_no, status, logged_fingerprint, owner, until = rows[0]
        _check_unfinished(run_id, status)
        if logged_fingerprint != fingerprint and not allow_changed:
            raise ValueError(
                f"the workflow's handlers changed since run {run_id!r} was logged "
                f"({registry_changes(logged_fingerprint, fingerprint)}); resume with "
                "allow_changed=True to run it on the handlers registered now"
            )
        if owner is not None and owner != self.owner:
            held = until is not None and until > time.time() and _process_alive(owner)
            if held and status in ("running", "waiting"):
                raise ValueError(
                    f"run {run_id!r} is being run by another process ({owner}); "
                    "two processes cannot go on with one run"
                )
        # Only if nobody took the lease, nor ended the run, since it was read: of two
        # processes, one wins.
        taken = self._execute(
            "UPDATE baxiflow_runs SET lease_owner = ?, lease_until = ?, status = 'running'"
            " WHERE run_id = ? AND COALESCE(lease_owner, '') = ?"
            " AND status NOT IN ('finished', 'failed')",
            (self.owner, time.time() + LEASE_SECONDS, run_id, owner or ""),
        )
        if taken.rowcount != 1:
            # A process killed as it committed the run's end can have its commit land now.
            _check_unfinished(run_id, self._rows(
                "SELECT status FROM baxiflow_runs WHERE run_id = ?", (run_id,))[0][0])  # fmt: skip
            raise ValueError(
                f"run {run_id!r} was taken over by another process while this one resumed it"
            )
        return int(run_no)

    def write(
        self,
        run_id: str,
        run_no: int,
        events: list[tuple[Any, ...]],
        calls: list[tuple[Any, ...]],
        *,
        new_run: NewRun | None = None,
        status: str | None = None,
        ended: bool = False,
        renew: bool = False,
    ) -> None:
        """Write a run's rows and the change of its row, and commit them: all or nothing.

        Args:
            run_id: The run.
            run_no: Its number in the store.
            events: Rows of its events, as :class:`~baxiflow.store._log.RunLog` makes them.
            calls: Rows of its ended handler calls, each keyed by the run's next call key
                (an attempt run again after a resume has a row beside the one cut short).
            new_run: The row of a run that has none yet, written with ``status`` (or
                ``running``).
            status: The run's new status.
            ended: The run has ended: this process lets go of its lease.
            renew: Extend this process's lease on the run.
        """
        if not (events or calls or new_run or status or renew):
            return
        lease_until = None if ended else time.time() + LEASE_SECONDS
        lease_owner = None if ended else self.owner
        with self._lock:
            try:
                with self._writing():
                    cursor = self._connection.cursor()
                    if new_run is not None:
                        parent_id, fork_seq = new_run.parent or (None, None)
                        cursor.execute(self._insert_run, (
                            run_id, run_no, status or "running", new_run.workflow_name,
                            new_run.registry, new_run.created, time.time(), parent_id,
                            fork_seq, lease_owner, lease_until))  # fmt: skip
                        if new_run.reused:
                            cursor.executemany(self._insert_reused, new_run.reused)
                    elif status is not None:
                        cursor.execute(self._set_status, (status, time.time(), lease_owner,
                                                          lease_until, run_id, self.owner))  # fmt: skip
                    elif renew:
                        cursor.execute(self._renew_lease, (lease_until, run_id, self.owner))
                    if events:
                        cursor.executemany(self._insert_events, events)
                    if calls:
                        cursor.executemany(self._insert_calls, calls)
                    self._connection.commit()
            except Exception as exc:
                self._roll_back()
                raise StoreError(
                    f"the store at {self.where} could not write run {run_id!r}: {exc}"
                ) from exc

    def _roll_back(self) -> None:
        """Drop what the connection wrote since its last commit."""
        # A connection that is gone has nothing left to undo.
        with self._lock, contextlib.suppress(Exception):
            self._connection.rollback()

    def _reused_row(self, run_no: int, logged: LoggedEvent) -> tuple[Any, ...]:
        """The log's row of ``logged``, an event of the run a fork reuses."""
        event = logged.event
        texts = [event.error, encode(event.data), encode(event.metadata)]
        error, data, metadata = (self.no_text if t is None else t for t in texts)
        return (run_no * RUN_SPAN + logged.seq, logged.seq, logged.parent_seq, logged.depth, event.name, logged.handler,
                logged.position, logged.occurrence, error, 0.0, data, metadata)  # fmt: skip

    # Reading ---------------------------------------------------------------------------

    def logged(self, run_id: str) -> list[LoggedEvent]:
        """The events of run ``run_id``'s log, in order (none for a run not in the store)."""
        run_no = self._run_no(run_id)
        return [] if run_no is None else self._logged(run_no)

    def _run_no(self, run_id: str) -> int | None:
        """Run ``run_id``'s number; ``None`` if the store has no such run."""
        found = self._rows("SELECT run_no FROM baxiflow_runs WHERE run_id = ?", (run_id,))
        return int(found[0][0]) if found else None

    def _logged(self, run_no: int) -> list[LoggedEvent]:
        rows = self._rows(
            "SELECT seq, parent_seq, depth, name, handler, position, occurrence, error, data,"
            " metadata FROM baxiflow_events WHERE log_key >= ? AND log_key < ? ORDER BY log_key",
            _keys(run_no),
        )
        return [
            LoggedEvent(
                seq,
                parent_seq,
                depth,
                WorkflowEvent(name, decode(data), decode(metadata), error),
                handler,
                position,
                occurrence,
            )
            for seq, parent_seq, depth, name, handler, position, occurrence, error, data, metadata in rows
        ]

    def runs(self) -> list[dict[str, Any]]:
        """One row per run, oldest first (ready for ``pandas.DataFrame``)."""
        columns = ", ".join(("g." if c == "fingerprint" else "r.") + c for c in RUN_COLUMNS)
        rows = self._rows(f"SELECT {columns} FROM {_WITH_FINGERPRINT} ORDER BY r.created")
        return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]

    def to_pandas(self) -> Any:
        """:meth:`runs` as a pandas DataFrame: ``created``/``updated`` as UTC times,
        ``status`` a ``category``, ``fork_seq`` an ``Int64``, the rest ``string``; a missing
        value is ``<NA>``.

        Raises:
            MissingDependencyError: pandas is not installed (an ``ImportError``).
        """
        return typed_frame(self.runs(), _RUN_KINDS, feature="store.to_pandas")

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Run ``run_id``'s log as rows: seq, parent_seq, depth, name, handler, error, data,
        metadata and whether the event was reused from the run it forks."""
        run_no = self._run_no(run_id)
        rows = [] if run_no is None else self._rows(
            "SELECT seq, parent_seq, depth, name, handler, error, data, metadata, reused"
            " FROM baxiflow_events WHERE log_key >= ? AND log_key < ? ORDER BY log_key",
            _keys(run_no),
        )  # fmt: skip
        columns = ("seq", "parent_seq", "depth", "name", "handler", "error", "data", "metadata")
        return [
            {**dict(zip(columns, row[:6], strict=False)), "data": decode(row[6]),
             "metadata": decode(row[7]), "reused": bool(row[8])}
            for row in rows
        ]  # fmt: skip

    def trace(self, run_id: str) -> Trace:
        """Run ``run_id`` as a :class:`~baxiflow.trace.Trace`: its events, and a span for each
        ended attempt of each handler call, in the order they ended (as in a trace recorded
        while the run ran)."""
        rows = self._rows(
            "SELECT run_no, status, workflow_name, created, updated FROM baxiflow_runs"
            " WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            raise LookupError(f"no run {run_id!r} in the store at {self.where}")
        run_no, status, workflow_name, created, updated = rows[0]
        logged = self._logged(run_no)
        elapsed = dict(
            self._rows(
                "SELECT seq, elapsed FROM baxiflow_events WHERE log_key >= ? AND log_key < ?",
                _keys(run_no),
            )
        )
        first = logged[0].event if logged else WorkflowEvent("start")
        run = RunInfo(run_id, first, created, workflow_name)
        trace = Trace()
        trace.run_started(run)
        for e in logged:
            trace.event_emitted(
                EmittedEvent(e.event, e.seq, e.parent_seq, e.depth, e.handler, elapsed[e.seq], run, None)
            )  # fmt: skip
        calls = self._rows(
            "SELECT handler, position, trigger_seq, started, finished, status, error, emitted,"
            " attempt FROM baxiflow_calls WHERE call_key >= ? AND call_key < ?"
            " AND status != 'running' ORDER BY finished, started",
            _keys(run_no),
        )
        by_seq = {e.seq: e.event for e in logged}
        for handler, position, trigger_seq, started, finished, call_status, error, emitted, attempt in calls:  # fmt: skip
            trigger = by_seq.get(trigger_seq, first)
            call = HandlerCall(run, len, handler, position, trigger, trigger_seq, started,
                               finished, call_status, emitted, error, attempt)  # fmt: skip
            trace.handler_finished(call)
        run.status = {"finished": "ok", "failed": "error", "waiting": "waiting"}.get(
            status, "stopped"
        )  # type: ignore[assignment]
        if status == "finished" and any(e.event.error for e in logged):
            run.status = "error"
        run.events, run.errors = len(logged), sum(e.event.name == "error" for e in logged)
        run.duration = updated - created
        trace.run_finished(run)
        return trace

    def delete(self, run_id: str) -> None:
        """Remove a run and its log.

        Raises:
            LookupError: There is no such run.
        """
        with self._lock:
            run_no = self._run_no(run_id)
            if run_no is None:
                raise LookupError(f"no run {run_id!r} in the store at {self.where}")
            with self._own_transaction():
                for table, key in (("baxiflow_events", "log_key"), ("baxiflow_calls", "call_key")):
                    self._execute(
                        f"DELETE FROM {table} WHERE {key} >= ? AND {key} < ?", _keys(run_no)
                    )
                self._execute("DELETE FROM baxiflow_runs WHERE run_id = ?", (run_id,))

    def __repr__(self) -> str:
        runs = self.runs()
        counts: dict[str, int] = {}
        for run in runs:
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        noun = "run" if len(runs) == 1 else "runs"
        return f"<{type(self).__name__} {self.where}: {len(runs)} {noun}" + (
            f" ({by_status})>" if by_status else ">"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(run[c]))}</td>" for c in RUN_COLUMNS[:4]) + "</tr>"
            for run in self.runs()[-20:]
        )  # fmt: skip
        head = "".join(f"<th>{c}</th>" for c in RUN_COLUMNS[:4])
        return (
            f"<div><b>{html.escape(repr(self))}</b>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
        )


_MIGRATIONS: dict[int, Callable[[SQLStore], None]] = {
    1: SQLStore._migrate_from_1,
    2: SQLStore._migrate_from_2,
    3: SQLStore._migrate_from_3,
}
"""For each older version, what brings a store from it to the next."""


def _keys(run_no: int) -> tuple[int, int]:
    """The range of keys that run ``run_no``'s rows take (``log_key`` of its events,
    ``call_key`` of its calls): first, and after last."""
    return run_no * RUN_SPAN, (run_no + 1) * RUN_SPAN


def _prefixed(alias: str, columns: str) -> str:
    """``"a, b"`` as columns of the table ``alias`` names: ``"t.a, t.b"``."""
    return ", ".join(f"{alias}.{column}" for column in columns.split(", "))


def _check_unfinished(run_id: str, status: str) -> None:
    """Refuse to resume a run that has ended for good."""
    if status in ("finished", "failed"):
        raise ValueError(f"run {run_id!r} is {status}; only an unfinished run can be resumed")


def _check_durability(durability: object) -> None:
    if durability not in DURABILITIES:
        raise ValueError(
            f"durability must be one of {', '.join(map(repr, DURABILITIES))}, got {durability!r}"
        )


class SQLiteStore(SQLStore):
    """A durable store in one SQLite file (standard-library ``sqlite3``, WAL journal).

    Args:
        path: The database file; created if missing. A file that is not a baxiflow store
            (not SQLite, or holding another application's tables) is refused, untouched.

    >>> import tempfile, os
    >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "runs.db"))
    >>> store.runs()
    []
    >>> store.close()
    """

    # The sqlite3 module binds None slowly (it looks for an adapter each time): the log's
    # rows hold 0 instead, which NULLIF turns into NULL (a text never equals an integer).
    no_text: ClassVar[object] = 0
    text_parameter: ClassVar[str] = "NULLIF(?, 0)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        super().__init__()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A store pickles as its path: unpickled in another process of this machine (a
        worker of a Dask ``LocalCluster``, say), it opens the same file, which must be
        there; WAL lets the processes write it at once.

        >>> import pickle, tempfile, os
        >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "runs.db"))
        >>> again = pickle.loads(pickle.dumps(store))
        >>> again.path == store.path, again is store
        (True, False)
        >>> again.close(); store.close(); os.remove(store.path)
        >>> pickle.loads(pickle.dumps(store))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        baxiflow.exceptions.StoreError: the SQLite store .../runs.db is not on this machine ...
        """
        return (_reopened, (type(self), self.path))

    @property
    def where(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as file:
                if file.read(16) != b"SQLite format 3\x00":
                    raise StoreError(
                        f"{self.path} is not a baxiflow store (not an SQLite database)"
                    )
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level="DEFERRED")
        return connection

    def _begin(self) -> None:
        if not self._connection.in_transaction:
            self._connection.execute("BEGIN IMMEDIATE")

    def _check_foreign(self) -> None:
        tables = {row[0] for row in self._rows("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "baxiflow_meta" not in tables:
            raise StoreError(
                f"{self.path} is not a baxiflow store: it holds other tables "
                f"({', '.join(sorted(tables)[:5])}); it was left untouched"
            )
        if not tables:
            self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")


def _reopened(kind: type[SQLiteStore], path: Path) -> SQLiteStore:
    """Open a pickled SQLite store again; only where its file is (never a new, empty one)."""
    if not path.exists():
        raise StoreError(
            f"the SQLite store {path} is not on this machine (pickled, an SQLite store opens "
            "its file again and never makes a new one); processes on several machines "
            "share a PostgresStore"
        )
    return kind(path)
