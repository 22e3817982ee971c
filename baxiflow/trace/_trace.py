"""Record runs as DataFrame-ready rows: one row per event, one per handler call.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> from baxiflow.trace import record
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent.progress("greet", "Saying hello")
...     yield WorkflowEvent("done", data={"text": "Hello"})
>>> trace = asyncio.run(record(workflow, WorkflowEvent("start")))
>>> [(r["seq"], r["event"], r["kind"], r["handler"], r["parent_seq"]) for r in trace.records]
[(0, 'start', 'event', None, None), (1, 'progress', 'progress', 'greet', 0), (2, 'done', 'event', 'greet', 0)]
>>> [(s["handler"], s["event"], s["emitted"], s["status"]) for s in trace.spans]
[('greet', 'start', 2, 'ok')]

Schema of :attr:`Trace.records` (every row has every column; ``None`` when it does not apply):

============  ===============  ===========================================================
column        type             meaning
============  ===============  ===========================================================
run_id        str              id of the run (one Trace may record several runs)
seq           int              number of the event in its run; the initial event is 0
parent_seq    int | None       ``seq`` of the event whose handler emitted this one
depth         int              causal depth: 0 for the initial event, parent's + 1
event         str              event name
kind          str              ``"event"``, ``"progress"`` or ``"error"``
handler       str | None       qualified name of the emitting (or failing) handler
step          str | None       progress events: ``data["step"]``
description   str | None       progress events: ``data["description"]``
current       float | None     progress events: ``data["current"]``
total         float | None     progress events: ``data["total"]``
error         str | None       the event's ``error`` message
error_type    str | None       error events: ``data["type"]``, the exception's type name
traceback     str | None       error events of a failed handler: ``data["traceback"]``, the
                               traceback text down to the failing line
elapsed       float            seconds since the run started (monotonic clock)
timestamp     float            wall-clock time, seconds since the epoch
data          dict | None      the event's ``data`` (the same object, not a copy)
metadata      dict | None      the event's ``metadata`` (the same object, not a copy)
============  ===============  ===========================================================

Schema of :attr:`Trace.spans`, one row per handler call, in the order calls end:

============  ===============  ===========================================================
column        type             meaning
============  ===============  ===========================================================
run_id        str              id of the run
handler       str              qualified name of the handler
position      int              its place among the handlers of the event (0 runs first)
event         str              name of the event it handled
event_seq     int              ``seq`` of that event
start         float            seconds since the run started when the call began
end           float            seconds since the run started when the call ended
duration      float            ``end - start``, in seconds
emitted       int              events it yielded (a failure's error event not counted)
status        str              ``"ok"``, ``"error"``, ``"timeout"``, ``"cancelled"``, or
                               ``"retried"`` for an attempt that failed and was followed
                               by another (the final failure is ``"error"``)
error         str | None       the message when it raised or timed out
attempt       int              which attempt of a retried call (1 for the first); each
                               attempt is a span of its own
============  ===============  ===========================================================

Calls of a run with ``concurrency`` above 1 may overlap: their spans' ``start`` and ``end``
interleave, and each event's ``parent_seq`` still names the event its call handled.

:attr:`Trace.runs` has one row per run: ``run_id``, ``event`` (the initial event's name),
``started_at`` (wall clock), ``status`` (a :data:`~baxiflow.observe.RunStatus`), ``events``,
``errors`` and ``duration`` (``None`` while it runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final, NamedTuple

from baxiflow._checks import check_limit
from baxiflow._recording import CALL_WIDTH, EVENT_WIDTH, Recorder, Sinks
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.exceptions import TraceFormatError
from baxiflow.manager import WorkflowManager
from baxiflow.observe import Observer, RunInfo
from baxiflow.trace._frames import ColumnKind, typed_frame
from baxiflow.trace._jsonable import from_jsonable, to_jsonable

__all__ = [
    "RECORD_COLUMNS",
    "RUN_COLUMNS",
    "SPAN_COLUMNS",
    "Trace",
    "TraceFrames",
    "flatten_records",
    "record",
]

RECORD_COLUMNS: Final = (
    "run_id",
    "seq",
    "parent_seq",
    "depth",
    "event",
    "kind",
    "handler",
    "step",
    "description",
    "current",
    "total",
    "error",
    "error_type",
    "traceback",
    "elapsed",
    "timestamp",
    "data",
    "metadata",
)
"""Columns of :attr:`Trace.records`, in order."""

_RECORD_KINDS: Final[dict[str, ColumnKind]] = {
    "run_id": "text",
    "seq": "int",
    "parent_seq": "int",
    "depth": "int",
    "event": "text",
    "kind": "category",
    "handler": "text",
    "step": "text",
    "description": "text",
    "current": "amount",
    "total": "amount",
    "error": "text",
    "error_type": "text",
    "traceback": "text",
    "elapsed": "seconds",
    "timestamp": "time",
    "data": "object",
    "metadata": "object",
}

SPAN_COLUMNS: Final = (
    "run_id",
    "handler",
    "position",
    "event",
    "event_seq",
    "start",
    "end",
    "duration",
    "emitted",
    "status",
    "error",
    "attempt",
)
"""Columns of :attr:`Trace.spans`, in order."""

_SPAN_KINDS: Final[dict[str, ColumnKind]] = {
    "run_id": "text",
    "handler": "text",
    "position": "int",
    "event": "text",
    "event_seq": "int",
    "start": "seconds",
    "end": "seconds",
    "duration": "seconds",
    "emitted": "int",
    "status": "category",
    "error": "text",
    "attempt": "int",
}

RUN_COLUMNS: Final = ("run_id", "event", "started_at", "status", "events", "errors", "duration")
"""Columns of :attr:`Trace.runs`, in order."""

_FORMAT: Final = "baxiflow-trace"
_VERSION: Final = 3
_READS: Final = (1, 2, 3)
"""Versions :meth:`Trace.from_jsonl` reads: version 1 had no ``traceback`` column in its
records, versions 1 and 2 no ``attempt`` column in their spans."""
_ADDED_COLUMNS: Final[dict[str, dict[str, Any]]] = {
    "record": {"traceback": None},
    "span": {"attempt": 1},
}
"""Columns later versions added, with the value a row of an older file gets: no traceback
kept, and a span that is its call's first (and only) attempt, as every call was then."""
_OLDER_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    section: tuple(c for c in columns if c not in _ADDED_COLUMNS[section])
    for section, columns in (("record", RECORD_COLUMNS), ("span", SPAN_COLUMNS))
}
_SECTIONS: Final = {"run": RUN_COLUMNS, "record": RECORD_COLUMNS, "span": SPAN_COLUMNS}


class TraceFrames(NamedTuple):
    """The two DataFrames of :meth:`Trace.to_pandas`: unpack it or use the names."""

    events: Any
    """One row per event (:data:`RECORD_COLUMNS`)."""
    spans: Any
    """One row per handler call (:data:`SPAN_COLUMNS`)."""


def _record_values(fields: Sequence[Any]) -> tuple[Any, ...]:
    """The :data:`RECORD_COLUMNS` of one event."""
    run_id, seq, parent_seq, depth, name, handler, error, elapsed, started_at, data, metadata = (
        fields
    )
    step = description = current = total = error_type = traceback = None
    if name == PROGRESS:
        kind = "progress"
        if isinstance(data, dict):
            step = data.get("step")
            description = data.get("description")
            current = data.get("current")
            total = data.get("total")
    elif name == ERROR:
        kind = "error"
        if isinstance(data, dict):
            error_type = data.get("type")
            text = data.get("traceback")
            traceback = text if text is None or type(text) is str else str(text)
    else:
        kind = "event"
    return (
        run_id,
        seq,
        parent_seq,
        depth,
        name,
        kind,
        handler,
        step,
        description,
        current,
        total,
        error,
        error_type,
        traceback,
        elapsed,
        started_at + elapsed,
        data,
        metadata,
    )


def _span_values(fields: Sequence[Any]) -> tuple[Any, ...]:
    """The :data:`SPAN_COLUMNS` of one handler call."""
    run_id, handler, position, event, event_seq, start, end, emitted, status, error, attempt = (
        fields
    )
    duration = None if end is None else end - start
    return (
        run_id,
        handler,
        position,
        event,
        event_seq,
        start,
        end,
        duration,
        emitted,
        status,
        error,
        attempt,
    )


class _Rows:
    """One table: the run loop's compact fields wait as they are, and become rows when read.

    Building a 17-key dict per event would slow the run being recorded, so the table keeps
    the :data:`~baxiflow._recording.EventFields` (or ``CallFields``) it is handed, which
    hold final values, and builds rows at the reader's pace. It keeps them flat, ``width``
    list items per entry, so a long recording adds no object per entry for the garbage
    collector to scan again and again. Past the bound, the oldest rows are cut in batches
    so adding stays O(1). ``pending`` stays the same list object for the table's life:
    the run loop extends it directly.

    A run may record in another thread while someone reads. Only the reader's calls
    (reading, the public ``cut``) change ``rows``, the list the reader is handed, so a run
    never shifts it under a reader going through it. Adding only appends to ``pending``;
    past the bound it drops the oldest waiting entries, which the newest ``limit`` entries,
    all waiting, make obsolete. Reading and cutting hold ``lock``.
    """

    __slots__ = (
        "columns",
        "cut_at",
        "dropped",
        "limit",
        "lock",
        "pending",
        "row_type",
        "rows",
        "values",
        "width",
    )

    def __init__(
        self,
        columns: tuple[str, ...],
        width: int,
        limit: int | None,
        values: Callable[[Sequence[Any]], tuple[Any, ...]],
    ) -> None:
        self.columns = columns
        self.width = width
        self.values = values
        self.limit = limit
        self.cut_at = None if limit is None else (limit + max(1, limit // 4)) * width
        self.rows: list[dict[str, Any]] = []
        self.pending: list[Any] = []
        self.dropped = 0
        self.lock = threading.Lock()
        # CPython lets the __dict__s of one class's instances share a single key table
        # when their keys come in the same order, which halves the memory of a row; the
        # rows stay plain dicts in every respect.
        self.row_type = type("_Row", (), {})

    def add(self, fields: tuple[Any, ...]) -> None:
        pending = self.pending
        pending.extend(fields)
        if self.cut_at is not None and len(pending) >= self.cut_at:
            self._cut_waiting()

    def _cut_waiting(self) -> None:
        """Drop the waiting entries older than the newest ``limit``; never touches ``rows``."""
        assert self.limit is not None
        with self.lock:
            excess = len(self.pending) // self.width - self.limit
            if excess > 0:
                self.dropped += excess
                del self.pending[: excess * self.width]

    def sink(self) -> Callable[[Any], object]:
        """The fastest callable that adds one entry's fields, respecting the bound."""
        return self.pending.extend if self.limit is None else self.add

    def make(self, values: Iterable[Any]) -> dict[str, Any]:
        row: dict[str, Any] = self.row_type().__dict__
        row.update(zip(self.columns, values, strict=True))
        return row

    def cut(self) -> None:
        with self.lock:
            self._cut()

    def _cut(self) -> None:
        if self.limit is None:
            return
        waiting = len(self.pending) // self.width
        excess = len(self.rows) + waiting - self.limit
        if excess <= 0:
            return
        self.dropped += excess
        from_rows = min(excess, len(self.rows))
        del self.rows[:from_rows]
        del self.pending[: (excess - from_rows) * self.width]

    def state(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """Copies of the built rows and of the fields still waiting, within the bound."""
        with self.lock:
            self._cut()
            return list(self.rows), list(self.pending)

    def extend(self, rows: list[dict[str, Any]], pending: list[Any], dropped: int) -> None:
        """Add another table's rows and waiting fields after this one's, building none of
        the waiting ones (unless rows come after them)."""
        if rows:
            self.read().extend(rows)
        with self.lock:
            self.pending.extend(pending)
            self.dropped += dropped
            self._cut()

    def read(self) -> list[dict[str, Any]]:
        with self.lock:
            self._cut()
            pending, width, values = self.pending, self.width, self.values
            # Only what is there now: a run in another thread may be adding more meanwhile.
            ready = len(pending)
            if ready:
                self.rows.extend(
                    [self.make(values(pending[i : i + width])) for i in range(0, ready, width)]
                )
                del pending[:ready]
            return self.rows


class Trace(Recorder):
    """An observer that records every event and handler call of the runs it watches.

    Attach it to one run with ``workflow.process(event, observers=[trace])``, to every run
    of a manager with ``workflow.observe(trace)``, or run a workflow to its end with
    :func:`record`. Recording only reads what the manager reports, so it never changes
    what a run does. It hears of each event and ended handler call in its place among the
    run's observers, like any observer. See the module docstring for the
    schema of :attr:`records`, :attr:`spans` and :attr:`runs`.

    Args:
        max_records: Keep only the newest ``max_records`` event rows, and as many span rows;
            :attr:`dropped_records` and :attr:`dropped_spans` count what was dropped.
            ``None`` keeps everything.

    >>> import asyncio
    >>> from baxiflow import WorkflowEvent, WorkflowManager
    >>> async def count(event):
    ...     for i in range(5):
    ...         yield WorkflowEvent("tick", data={"i": i})
    >>> trace = Trace(max_records=2)
    >>> async def main():
    ...     workflow = WorkflowManager().register("start", count)
    ...     async for _ in workflow.process(WorkflowEvent("start"), observers=[trace]):
    ...         pass
    >>> asyncio.run(main())
    >>> [r["data"] for r in trace.records], trace.dropped_records
    ([{'i': 3}, {'i': 4}], 4)
    """

    def __init__(self, max_records: int | None = None) -> None:
        self.max_records: Final[int | None] = check_limit("max_records", max_records, integer=True)
        self._records = _Rows(RECORD_COLUMNS, EVENT_WIDTH, self.max_records, _record_values)
        self._spans = _Rows(SPAN_COLUMNS, CALL_WIDTH, self.max_records, _span_values)
        self._runs: list[dict[str, Any]] = []
        self._open_runs: dict[str, dict[str, Any]] = {}

    # Rows ---------------------------------------------------------------------------

    @property
    def records(self) -> list[dict[str, Any]]:
        """One row per event, oldest first: a plain list, ready for ``pandas.DataFrame``.

        It is the same list each time, brought up to date when you read this property;
        read it again to see the rows of a run still going on.
        """
        return self._records.read()

    @property
    def spans(self) -> list[dict[str, Any]]:
        """One row per handler call, in the order the calls ended (same list each time)."""
        return self._spans.read()

    @property
    def runs(self) -> list[dict[str, Any]]:
        """One row per run, in the order the runs started; never bounded."""
        return self._runs

    @property
    def dropped_records(self) -> int:
        """Event rows dropped to respect ``max_records``."""
        self._records.cut()
        return self._records.dropped

    @property
    def dropped_spans(self) -> int:
        """Span rows dropped to respect ``max_records``."""
        self._spans.cut()
        return self._spans.dropped

    # Observer -----------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        """Add the run's row to :attr:`runs`."""
        row = {
            "run_id": run.run_id,
            "event": run.initial_event.name,
            "started_at": run.started_at,
            "status": run.status,
            "events": run.events,
            "errors": run.errors,
            "duration": run.duration,
        }
        self._runs.append(row)
        self._open_runs[run.run_id] = row

    def recording_sinks(self) -> Sinks:
        """Where the run loop, and :meth:`event_emitted` and :meth:`handler_finished`, add rows.

        Rows are built when they are read (see :mod:`baxiflow._recording`).
        """
        return self._records.sink(), self._spans.sink()

    def run_finished(self, run: RunInfo) -> None:
        """Complete the run's row in :attr:`runs`."""
        row = self._open_runs.pop(run.run_id, None)
        if row is not None:
            row.update(
                status=run.status, events=run.events, errors=run.errors, duration=run.duration
            )

    # Pickling -----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """What ``pickle`` and ``copy`` keep: the rows, the bound and the dropped counts,
        and any attribute a subclass adds. Rows not built yet travel as the compact fields
        they are built from, and are built when read.

        >>> import pickle
        >>> pickle.loads(pickle.dumps(Trace(max_records=5))).max_records
        5
        """
        state = {k: v for k, v in vars(self).items() if k not in _TRACE_ATTRIBUTES}
        records, record_fields = self._records.state()
        spans, span_fields = self._spans.state()
        state["_trace"] = {
            "max_records": self.max_records,
            "records": records,
            "record_fields": record_fields,
            "spans": spans,
            "span_fields": span_fields,
            "runs": self._runs,
            "open_runs": self._open_runs,
            "dropped": (self._records.dropped, self._spans.dropped),
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        trace = state.pop("_trace")
        Trace.__init__(self, trace["max_records"])
        dropped_records, dropped_spans = trace["dropped"]
        self._records.extend(trace["records"], trace.get("record_fields", []), dropped_records)
        self._spans.extend(trace["spans"], trace.get("span_fields", []), dropped_spans)
        self._runs.extend(trace["runs"])
        self._open_runs.update(trace["open_runs"])
        vars(self).update(state)

    def extend(self, other: Trace) -> None:
        """Add every run, event row and handler call of ``other`` after this trace's own.

        Rows ``other`` has not built yet are built when this trace's are read, so
        gathering many traces into one (a batch's chunks from Dask workers) stays cheap.

        >>> import asyncio
        >>> from baxiflow import WorkflowEvent, WorkflowManager
        >>> async def done(event):
        ...     yield WorkflowEvent("done")
        >>> workflow = WorkflowManager().register("start", done)
        >>> first, second = Trace(), Trace()
        >>> _ = asyncio.run(record(workflow, WorkflowEvent("start"), trace=first))
        >>> _ = asyncio.run(record(workflow, WorkflowEvent("start"), trace=second))
        >>> first.extend(second)
        >>> len(first.runs), [row["event"] for row in first.records]
        (2, ['start', 'done', 'start', 'done'])
        """
        for mine, theirs in ((self._records, other._records), (self._spans, other._spans)):
            rows, pending = theirs.state()
            mine.extend(rows, pending, theirs.dropped)
        self._runs.extend(other._runs)
        self._open_runs.update(other._open_runs)

    # DataFrames ---------------------------------------------------------------------

    def to_pandas(self, *, flatten: bool = False) -> TraceFrames:
        """Both tables as pandas DataFrames: ``events, spans = trace.to_pandas()``.

        Args:
            flatten: Turn each top-level key of ``data`` and ``metadata`` into its own
                column (``data.<key>``, ``metadata.<key>``) instead of one dict column;
                see :func:`flatten_records`.

        Raises:
            MissingDependencyError: pandas is not installed (an ``ImportError``).

        Text columns are ``string``, ``kind`` and ``status`` ``category``, numbers ``Int64``
        (``current``/``total`` ``Float64`` when one is a fraction), times in seconds
        ``float64`` and ``timestamp`` UTC ``datetime64``; every missing value is ``<NA>``.

        >>> events, spans = Trace().to_pandas()
        >>> list(events.columns) == list(RECORD_COLUMNS), len(spans), str(events.parent_seq.dtype)
        (True, 0, 'Int64')
        """
        records = self.records
        kinds = _RECORD_KINDS
        if flatten:
            records = flatten_records(records)
            kinds = {name: kind for name, kind in kinds.items() if name not in _NESTED}
        return TraceFrames(
            typed_frame(records, kinds, feature=_FEATURE),
            typed_frame(self.spans, _SPAN_KINDS, feature=_FEATURE),
        )

    # Files --------------------------------------------------------------------------

    def to_jsonl(self, target: str | bytes | os.PathLike[str] | IO[str]) -> None:
        """Write the trace as JSON Lines to a path or an open text file.

        The first line is a header (format, version, bound, dropped counts); then one line
        per run (``{"run": {...}}``), event (``{"record": {...}}``) and handler call
        (``{"span": {...}}``). Only ASCII is written.

        :meth:`from_jsonl` gives back equal rows of the same types: besides what JSON
        holds, tuples, dicts with non-string keys, NaN or infinite floats and integers of
        thousands of digits come back exactly, through one-key marker objects
        (``{"__tuple__": [...]}``, ``{"__dict__": [[key, value], ...]}``,
        ``{"__float__": "nan"}``, ``{"__int__": "0x..."}``). Any other value (a set, a
        datetime, a numpy number, your own class) is saved as ``{"__repr__": "..."}`` and
        read back as a :class:`ReprValue`, a ``str`` holding its repr: never an error,
        never a silent change of type.

        >>> import io
        >>> trace = Trace()
        >>> trace.to_jsonl(buffer := io.StringIO())
        >>> buffer.getvalue()
        '{"format": "baxiflow-trace", "version": 3, "max_records": null, "dropped_records": 0, "dropped_spans": 0}\\n'
        """
        # Every line is made before the file is opened: a row that cannot be written
        # leaves an existing file as it was.
        lines = list(self._jsonl_lines())
        with _opened(target, "w") as stream:
            for line in lines:
                stream.write(line)
                stream.write("\n")

    def _jsonl_lines(self) -> Iterator[str]:
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "max_records": self.max_records,
            "dropped_records": self.dropped_records,
            "dropped_spans": self.dropped_spans,
        }
        yield json.dumps(header)
        for section, rows in (("run", self.runs), ("record", self.records), ("span", self.spans)):
            for number, row in enumerate(rows):
                try:
                    yield json.dumps({section: to_jsonable(row)}, allow_nan=False)
                except RecursionError:
                    raise TraceFormatError(
                        f"{section} {number} of the trace holds data nested too deeply for "
                        f"JSON (Python's json module stops near {sys.getrecursionlimit()} "
                        "levels); nothing was written"
                    ) from None

    @classmethod
    def from_jsonl(cls, source: str | bytes | os.PathLike[str] | IO[str]) -> Trace:
        """Read a trace written by :meth:`to_jsonl`; equal rows, in the same order.

        Raises:
            TraceFormatError: The file is not a trace file; the message names the line
                (a ``ValueError``).

        >>> import io
        >>> Trace.from_jsonl(io.StringIO('{"format": "baxiflow-trace", "version": 1}\\n{"span": 3}\\n'))
        Traceback (most recent call last):
        ...
        baxiflow.exceptions.TraceFormatError: <stream> line 2: a span row must have the columns ['run_id', 'handler', 'position', 'event', 'event_seq', 'start', 'end', 'duration', 'emitted', 'status', 'error', 'attempt'], got 3
        """
        if isinstance(source, str | bytes | os.PathLike):
            # Bytes, decoded line by line, so a line that is not UTF-8 can be named.
            with open(source, "rb") as binary:
                return cls._read(binary, os.fsdecode(source))
        with _opened(source, "r") as stream:
            return cls._read(stream, str(getattr(source, "name", "<stream>")))

    @classmethod
    def _read(cls, lines: Iterable[str | bytes], where: str) -> Trace:
        trace: Trace | None = None
        number = 0
        for number, line in _numbered(lines, where):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(f"{where} line {number}: not valid JSON ({exc})") from None
            except RecursionError:
                raise TraceFormatError(
                    f"{where} line {number}: nested too deeply for Python's json module"
                ) from None
            try:
                if trace is None:
                    trace = cls._from_header(parsed)
                else:
                    trace._add_line(parsed)
            except ValueError as exc:
                raise TraceFormatError(f"{where} line {number}: {exc}") from None
        if trace is None:
            raise TraceFormatError(f"{where} line {number + 1}: empty file, expected a header")
        return trace

    @classmethod
    def _from_header(cls, header: object) -> Trace:
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError(f"not a baxiflow trace header: {header!r:.120}")
        if header.get("version") not in _READS:
            raise ValueError(
                f"trace format version {header.get('version')!r} is not supported "
                f"(this baxiflow reads versions {', '.join(map(str, _READS))})"
            )
        trace = cls(max_records=header.get("max_records"))
        dropped = header.get("dropped_records", 0), header.get("dropped_spans", 0)
        if not all(type(n) is int and n >= 0 for n in dropped):
            raise ValueError(f"dropped counts must be non-negative ints, got {dropped!r}")
        trace._records.dropped, trace._spans.dropped = dropped
        return trace

    def _add_line(self, parsed: object) -> None:
        if not (isinstance(parsed, dict) and len(parsed) == 1 and next(iter(parsed)) in _SECTIONS):
            raise ValueError(
                "expected an object with one key among "
                f"{', '.join(map(repr, _SECTIONS))}, got {parsed!r:.120}"
            )
        ((section, raw),) = parsed.items()
        row = from_jsonable(raw)
        columns = _SECTIONS[section]
        if section == "run" and isinstance(row, dict) and tuple(row)[-1:] == (_BATCH_COLUMN,):
            columns = (*columns, _BATCH_COLUMN)
        if isinstance(row, dict) and tuple(row) == _OLDER_COLUMNS.get(section):
            added = _ADDED_COLUMNS[section]
            row = {column: row[column] if column in row else added[column] for column in columns}
        if not isinstance(row, dict) or tuple(row) != columns:
            got = list(row) if isinstance(row, dict) else row
            raise ValueError(
                f"a {section} row must have the columns {list(columns)}, got {got!r:.200}"
            )
        if section == "run":
            self._runs.append(row)
        else:
            table = self._records if section == "record" else self._spans
            table.rows.append(table.make(row.values()))

    # Display ------------------------------------------------------------------------

    def summary(self) -> str:
        """A text summary: counts per event and handler, errors, then times.

        Times come last, in their own ``time:`` section, formatted like ``840 µs``,
        ``12.3 ms`` or ``1.25 s``; everything above it is deterministic for a deterministic
        workflow, so notebook tests can mask times with the regex ``\\d+(\\.\\d+)? [µm]?s``.
        """
        from baxiflow.trace._view import render_text, summarize

        return render_text(summarize(self))

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from baxiflow.trace._view import render_html, summarize

        return render_html(summarize(self))


_TRACE_ATTRIBUTES: Final = frozenset({"max_records", "_records", "_spans", "_runs", "_open_runs"})
"""The attributes ``Trace.__init__`` sets; pickling keeps them in its own form."""

_NESTED: Final = ("data", "metadata")
_FEATURE: Final = "Trace.to_pandas"

_BATCH_COLUMN: Final = "input_index"
"""A run row's last column when the run was one input of a batch (``baxiflow.run_many``)."""


def flatten_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy ``records`` with each top-level key of ``data`` and ``metadata`` as a column.

    Only dicts are spread (one level: nested dicts stay dicts); a row whose ``data``
    or ``metadata`` is neither a dict nor ``None`` keeps it under its own column, so
    nothing is lost. A key that is not a string is named by its repr in brackets
    (``data[3]``), so it never shares a column with a string key (``data.3``).

    >>> rows = [{"seq": 0, "data": {"x": 1, "y": {"z": 2}, 3: "int", "3": "str"}, "metadata": None}]
    >>> flatten_records(rows)
    [{'seq': 0, 'data.x': 1, 'data.y': {'z': 2}, 'data[3]': 'int', 'data.3': 'str'}]
    """
    flat = []
    for row in records:
        out = {k: v for k, v in row.items() if k not in _NESTED}
        for column in _NESTED:
            value = row.get(column)
            if isinstance(value, dict):
                for key, item in value.items():
                    name = f"{column}.{key}" if type(key) is str else f"{column}[{key!r}]"
                    out[name] = item
            elif value is not None:
                out[column] = value
        flat.append(out)
    return flat


def _numbered(lines: Iterable[str | bytes], where: str) -> Iterator[tuple[int, str]]:
    """``(number, text)`` for each line, 1 first; a line that is not UTF-8 is a format error."""
    number = 0
    iterator = iter(lines)
    while True:
        number += 1
        try:
            line = next(iterator, None)
            if line is None:
                return
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError as exc:
            raise TraceFormatError(
                f"{where} line {number}: not UTF-8 text ({exc.reason} at byte {exc.start} "
                f"of the line); a trace file is written by Trace.to_jsonl"
            ) from None
        yield number, text


@contextlib.contextmanager
def _opened(target: str | bytes | os.PathLike[str] | IO[str], mode: str) -> Iterator[IO[str]]:
    if isinstance(target, str | bytes | os.PathLike):
        with open(target, mode, encoding="ascii" if mode == "w" else "utf-8") as stream:
            yield stream
    else:
        # A stream the caller opened stays open: closing it is the caller's business.
        yield target


async def record(
    workflow: WorkflowManager,
    initial_event: WorkflowEvent,
    *,
    trace: Trace | None = None,
    observers: Iterable[Observer] = (),
    **process_kwargs: Any,
) -> Trace:
    """Run ``workflow`` from ``initial_event`` to its end and return what was recorded.

    This is :func:`baxiflow.run` with no progress view, returning only its trace.

    Args:
        workflow: The manager to run.
        initial_event: The event to start from.
        trace: A Trace to add this run to (so several runs share one); a new one if ``None``.
        observers: Other observers for this run.
        **process_kwargs: Passed to :meth:`WorkflowManager.process` (``max_events``,
            ``timeout``, ``handler_timeout``).

    >>> import asyncio
    >>> from baxiflow import WorkflowEvent, WorkflowManager
    >>> async def fail(event):
    ...     raise ValueError("no backend")
    ...     yield event
    >>> workflow = WorkflowManager().register("start", fail)
    >>> trace = asyncio.run(record(workflow, WorkflowEvent("start")))
    >>> trace = asyncio.run(record(workflow, WorkflowEvent("start"), trace=trace))
    >>> [(r["event"], r["error"], r["error_type"]) for r in trace.records if r["kind"] == "error"]
    [('error', 'no backend', 'ValueError'), ('error', 'no backend', 'ValueError')]
    >>> [run["status"] for run in trace.runs]
    ['error', 'error']
    """
    # The runner imports this wing for the Trace, so it is imported at call time.
    from baxiflow.runner import run

    result = await run(
        workflow, initial_event, view=False, observers=observers, trace=trace, **process_kwargs
    )
    return result.trace
