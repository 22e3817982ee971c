"""Durable stores over SQL: the shared schema and logic, and the SQLite store.

Three tables: ``baxiflow_runs`` (one row per run), ``baxiflow_events`` (the log: one row
per emitted event, in order) and ``baxiflow_calls`` (one row per handler call: started, then
ended), plus ``baxiflow_meta`` holding the schema version. Event data and metadata are kept
as JSON through the trace's codec, so what comes back equals what was emitted.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from baxiflow._durable import (
    DURABILITIES,
    Durability,
    LoggedCall,
    LoggedEvent,
    SavedRun,
    registry_changes,
    state_from_log,
)
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import StoreError
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo
from baxiflow.registry import Route
from baxiflow.store._log import RunLog
from baxiflow.trace import Trace
from baxiflow.trace._jsonable import MARKERS, from_jsonable, to_jsonable

__all__ = ["LEASE_SECONDS", "SCHEMA_VERSION", "SQLStore", "SQLiteStore", "table_columns"]

SCHEMA_VERSION = 1
"""Version of the tables' layout; a store written by a newer baxiflow is refused."""

LEASE_SECONDS = 30.0
"""How long a running process holds its run without renewing (it renews at each commit)."""

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

_TABLES = (
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


_REPR_MARKER = '"__repr__"'
"""In encoded data, the mark of a value the codec could keep only as its repr."""


_INSERT_EVENT = (
    "INSERT INTO baxiflow_events (run_id, seq, parent_seq, depth, name, handler, position,"
    " error, elapsed, data, metadata, reused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
_UPSERT_CALL = (
    "INSERT INTO baxiflow_calls (run_id, trigger_seq, position, handler, started, finished,"
    " status, error, emitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, trigger_seq, position) DO UPDATE SET handler = excluded.handler,"
    " started = excluded.started, finished = excluded.finished, status = excluded.status,"
    " error = excluded.error, emitted = excluded.emitted"
)
"""A call run again on resume takes the place of the one cut short."""


def table_columns() -> dict[str, set[str]]:
    """Each table's columns, as baxiflow creates them.

    >>> sorted(table_columns()["baxiflow_meta"])
    ['key', 'value']
    """
    tables = {}
    for statement in _TABLES:
        name, _, body = statement.removeprefix("CREATE TABLE IF NOT EXISTS ").partition(" (")
        # A column is a name followed by its type; "PRIMARY KEY (a, b)" names no new one.
        tables[name] = set(re.findall(r"(?:^|,)\s*(\w+) (?:TEXT|\{real\}|\{int\})", body))
    return tables


def _encode(value: object) -> str | None:
    if value is None:
        return None
    if value.__class__ is dict and _plain(value):
        return json.dumps(value)  # the common case, which the codec would give back unchanged
    return json.dumps(to_jsonable(value))


def _plain(mapping: dict[Any, Any]) -> bool:
    """Whether JSON holds ``mapping`` exactly as it is: string keys (none a codec marker),
    and values that are strings, booleans, ``None``, small integers or finite floats."""
    if len(mapping) == 1 and next(iter(mapping)) in MARKERS:
        return False
    for key, item in mapping.items():
        if key.__class__ is not str:
            return False
        kind = item.__class__
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if item.bit_length() > 64:
                return False
        elif kind is not float or not math.isfinite(item):
            return False
    return True


def _decode(text: str | None) -> Any:
    return None if text is None else from_jsonable(json.loads(text))


def unloggable(event: WorkflowEvent) -> str | None:
    """What in ``event`` the log could not give back exactly, or ``None``.

    The trace's codec decides: what it keeps only as a ``repr`` cannot come back.

    >>> unloggable(WorkflowEvent("ok", {"when": (2026, 12), 3: float("nan")}))
    >>> unloggable(WorkflowEvent("bad", {"when": {1, 2}}))
    "data['when'] is a set, which the log could keep only as its repr"
    """
    for part in ("data", "metadata"):
        found = _first_unloggable(getattr(event, part), part)
        if found is not None:
            return found
    return None


def _first_unloggable(value: object, path: str) -> str | None:
    if isinstance(value, list | tuple):
        pairs: Any = enumerate(value)
    elif isinstance(value, dict):
        for key in value:
            if _kept_as_repr(key):
                return f"a key of {path} is a {type(key).__name__}, which the log could keep only as its repr"
        pairs = value.items()
    elif _kept_as_repr(value):
        return f"{path} is a {type(value).__name__}, which the log could keep only as its repr"
    else:
        return None
    for key, item in pairs:
        if (found := _first_unloggable(item, f"{path}[{key!r}]")) is not None:
            return found
    return None


def _kept_as_repr(value: object) -> bool:
    encoded = to_jsonable(value)
    return isinstance(encoded, dict) and len(encoded) == 1 and "__repr__" in encoded


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

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._encoded: tuple[WorkflowEvent | None, str | None, str | None] = (None, None, None)
        self.rollbacks = 0
        """How many times the store dropped its uncommitted writes after an error."""
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

    def commit(self, *, renew: str | None = None) -> None:
        """Commit what was appended; with ``renew``, extend this process's lease on that run."""
        with self._lock:
            if renew is not None:
                self._execute(
                    "UPDATE baxiflow_runs SET lease_until = ? WHERE run_id = ? AND lease_owner = ?",
                    (time.time() + LEASE_SECONDS, renew, self.owner),
                )
            try:
                self._connection.commit()
            except Exception as exc:
                raise StoreError(f"the store at {self.where} could not commit: {exc}") from exc

    def close(self) -> None:
        """Close the connection (what was not committed is lost)."""
        with self._lock:
            self._connection.close()

    def _prepare(self) -> None:
        self._check_foreign()
        for table in _TABLES:
            self._execute(table.format(real=self.real, int=self.integer))
        found = self._rows("SELECT value FROM baxiflow_meta WHERE key = 'version'")
        if not found:
            self._execute(
                "INSERT INTO baxiflow_meta (key, value) VALUES ('version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(found[0][0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.where} has schema version {found[0][0]}, newer than this "
                f"baxiflow's {SCHEMA_VERSION}; upgrade baxiflow to use it"
            )
        self.commit()

    # Writing a run ---------------------------------------------------------------------

    def check_event(self, event: WorkflowEvent) -> str | None:
        """What in ``event`` this store could not give back exactly; ``None`` if all of it.

        The encoded data is kept for :meth:`event_row`, which logs the same event next.
        """
        data, metadata = _encode(event.data), _encode(event.metadata)
        if _REPR_MARKER in (data or "") or _REPR_MARKER in (metadata or ""):
            problem = unloggable(event)
            if problem is not None:
                return problem
        self._encoded = (event, data, metadata)
        return None

    def open_run(
        self,
        run_id: str,
        fingerprint: str,
        durability: Durability,
        *,
        workflow_name: str | None = None,
        parent: tuple[str, int] | None = None,
        reused: Sequence[LoggedEvent] = (),
    ) -> RunLog:
        """The log of a new run: nothing is written until the run starts."""
        _check_durability(durability)
        if self._rows("SELECT 1 FROM baxiflow_runs WHERE run_id = ?", (run_id,)):
            raise ValueError(f"run {run_id!r} is already in the store at {self.where}")

        def begin() -> None:
            now = time.time()
            parent_id, fork_seq = parent if parent is not None else (None, None)
            self._execute(
                "INSERT INTO baxiflow_runs (run_id, status, workflow_name, fingerprint, created,"
                " updated, parent_run_id, fork_seq, lease_owner, lease_until)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, workflow_name, fingerprint, now, now, parent_id, fork_seq, self.owner,
                 now + LEASE_SECONDS),
            )  # fmt: skip
            for event in reused:
                self._insert_event(run_id, event, elapsed=0.0, reused=True)

        return RunLog(self, run_id, durability, begin)

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
            self._take_lease(run_id, fingerprint, allow_changed)
            events = self.logged(run_id)
            calls = [
                LoggedCall(*row)
                for row in self._rows(
                    "SELECT trigger_seq, position, handler, status FROM baxiflow_calls"
                    " WHERE run_id = ?",
                    (run_id,),
                )
            ]
            self.commit()
        state, reruns = state_from_log(events, calls, route)

        def begin() -> None:
            self._execute(
                "UPDATE baxiflow_runs SET status = 'running', updated = ? WHERE run_id = ?",
                (time.time(), run_id),
            )

        return SavedRun(run_id, state, reruns, RunLog(self, run_id, durability, begin))

    def _take_lease(self, run_id: str, fingerprint: str, allow_changed: bool) -> None:
        rows = self._rows(
            "SELECT status, fingerprint, lease_owner, lease_until FROM baxiflow_runs"
            " WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            raise LookupError(f"no run {run_id!r} in the store at {self.where}")
        status, logged_fingerprint, owner, until = rows[0]
        if status in ("finished", "failed"):
            raise ValueError(f"run {run_id!r} is {status}; only an unfinished run can be resumed")
        if logged_fingerprint != fingerprint and not allow_changed:
            raise ValueError(
                f"the workflow's handlers changed since run {run_id!r} was logged "
                f"({registry_changes(logged_fingerprint, fingerprint)}); resume with "
                "allow_changed=True to run it on the handlers registered now"
            )
        if owner is not None and owner != self.owner:
            held = until is not None and until > time.time() and _process_alive(owner)
            if held and status == "running":
                raise ValueError(
                    f"run {run_id!r} is being run by another process ({owner}); "
                    "two processes cannot go on with one run"
                )
        # Only if nobody took the lease since it was read: of two processes, one wins.
        taken = self._execute(
            "UPDATE baxiflow_runs SET lease_owner = ?, lease_until = ?, status = 'running'"
            " WHERE run_id = ? AND COALESCE(lease_owner, '') = ?",
            (self.owner, time.time() + LEASE_SECONDS, run_id, owner or ""),
        )
        if taken.rowcount != 1:
            raise ValueError(
                f"run {run_id!r} was taken over by another process while this one resumed it"
            )

    def event_row(self, run_id: str, emitted: EmittedEvent) -> tuple[Any, ...]:
        """The log's row for ``emitted`` (its data encoded once, by :meth:`check_event`)."""
        event, call = emitted.event, emitted.call
        checked, data, metadata = self._encoded
        if checked is not event:
            data, metadata = _encode(event.data), _encode(event.metadata)
        return (run_id, emitted.seq, emitted.parent_seq, emitted.depth, event.name,
                emitted.handler_name, None if call is None else call.position, event.error,
                emitted.elapsed, data, metadata)  # fmt: skip

    @staticmethod
    def call_row(run_id: str, call: HandlerCall) -> tuple[Any, ...]:
        """The log's row for the ended ``call``."""
        return (run_id, call.trigger_seq, call.position, call.handler_name, call.started,
                call.finished, call.status, call.error, call.emitted)  # fmt: skip

    def write(
        self,
        events: list[tuple[Any, ...]],
        calls: list[tuple[Any, ...]],
        *,
        renew: str | None = None,
    ) -> None:
        """Append ``events`` and ``calls`` rows and commit them, renewing the lease on ``renew``."""
        with self._lock:
            try:
                cursor = self._connection.cursor()
                if events:
                    cursor.executemany(self._sql(_INSERT_EVENT), events)
                if calls:
                    cursor.executemany(self._sql(_UPSERT_CALL), calls)
            except Exception as exc:
                raise StoreError(f"the store at {self.where} failed: {exc}") from exc
            self.commit(renew=renew)

    def _insert_event(
        self, run_id: str, logged: LoggedEvent, *, elapsed: float, reused: bool
    ) -> None:
        event = logged.event
        self._execute(
            "INSERT INTO baxiflow_events (run_id, seq, parent_seq, depth, name, handler, position,"
            " error, elapsed, data, metadata, reused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, logged.seq, logged.parent_seq, logged.depth, event.name, logged.handler,
             logged.position, event.error, elapsed, _encode(event.data),
             _encode(event.metadata), int(reused)),
        )  # fmt: skip

    def end_run(self, run_id: str, status: str) -> None:
        self._execute(
            "UPDATE baxiflow_runs SET status = ?, updated = ?, lease_owner = NULL,"
            " lease_until = NULL WHERE run_id = ? AND lease_owner = ?",
            (status, time.time(), run_id, self.owner),
        )

    # Reading ---------------------------------------------------------------------------

    def logged(self, run_id: str) -> list[LoggedEvent]:
        """The events of run ``run_id``'s log, in order."""
        rows = self._rows(
            "SELECT seq, parent_seq, depth, name, handler, position, error, data, metadata"
            " FROM baxiflow_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            LoggedEvent(
                seq,
                parent_seq,
                depth,
                WorkflowEvent(name, _decode(data), _decode(metadata), error),
                handler,
                position,
            )
            for seq, parent_seq, depth, name, handler, position, error, data, metadata in rows
        ]

    def runs(self) -> list[dict[str, Any]]:
        """One row per run, oldest first (ready for ``pandas.DataFrame``)."""
        rows = self._rows(f"SELECT {', '.join(RUN_COLUMNS)} FROM baxiflow_runs ORDER BY created")
        return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Run ``run_id``'s log as rows: seq, parent_seq, depth, name, handler, error, data,
        metadata and whether the event was reused from the run it forks."""
        rows = self._rows(
            "SELECT seq, parent_seq, depth, name, handler, error, data, metadata, reused"
            " FROM baxiflow_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        columns = ("seq", "parent_seq", "depth", "name", "handler", "error", "data", "metadata")
        return [
            {**dict(zip(columns, row[:6], strict=False)), "data": _decode(row[6]),
             "metadata": _decode(row[7]), "reused": bool(row[8])}
            for row in rows
        ]  # fmt: skip

    def trace(self, run_id: str) -> Trace:
        """Run ``run_id`` as a :class:`~baxiflow.trace.Trace` (events and ended handler calls)."""
        rows = self._rows(
            "SELECT status, workflow_name, created, updated FROM baxiflow_runs WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            raise LookupError(f"no run {run_id!r} in the store at {self.where}")
        status, workflow_name, created, updated = rows[0]
        logged = self.logged(run_id)
        elapsed = dict(
            self._rows("SELECT seq, elapsed FROM baxiflow_events WHERE run_id = ?", (run_id,))
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
            "SELECT handler, position, trigger_seq, started, finished, status, error, emitted"
            " FROM baxiflow_calls WHERE run_id = ? AND status != 'running' ORDER BY started",
            (run_id,),
        )
        by_seq = {e.seq: e.event for e in logged}
        for handler, position, trigger_seq, started, finished, call_status, error, emitted in calls:
            trigger = by_seq.get(trigger_seq, first)
            call = HandlerCall(run, len, handler, position, trigger, trigger_seq, started,
                               finished, call_status, emitted, error)  # fmt: skip
            trace.handler_finished(call)
        run.status = {"finished": "ok", "failed": "error"}.get(status, "stopped")  # type: ignore[assignment]
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
            if not self._rows("SELECT 1 FROM baxiflow_runs WHERE run_id = ?", (run_id,)):
                raise LookupError(f"no run {run_id!r} in the store at {self.where}")
            for table in ("baxiflow_events", "baxiflow_calls", "baxiflow_runs"):
                self._execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            self.commit()

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


def _reopened(kind: type[SQLiteStore], path: Path) -> SQLiteStore:
    """Open a pickled SQLite store again; only where its file is (never a new, empty one)."""
    if not path.exists():
        raise StoreError(
            f"the SQLite store {path} is not on this machine (pickled, an SQLite store opens "
            "its file again and never makes a new one); processes on several machines "
            "share a PostgresStore"
        )
    return kind(path)
