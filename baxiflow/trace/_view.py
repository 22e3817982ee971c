"""Summaries of a Trace for people: counts, errors and times, as text or HTML.

>>> from baxiflow.trace import Trace
>>> print(render_text(summarize(Trace())))
Trace: no runs recorded
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from baxiflow._text import format_duration, plural
from baxiflow.trace._stats import HandlerStats, handler_stats

if TYPE_CHECKING:
    from baxiflow.trace import Trace

__all__ = ["TraceSummary", "render_html", "render_text", "summarize"]

ERRORS_SHOWN: Final = 20
"""Error rows listed in a summary; the rest are counted."""

_STATUSES: Final = ("ok", "error", "timeout", "cancelled")
"""The span statuses a summary counts per handler; ``retried`` (attempts that failed and were
followed by another) is added when a handler has some."""


def _statuses(summary: TraceSummary) -> tuple[str, ...]:
    if any(s.retried for s in summary.handlers.values()):
        return (*_STATUSES, "retried")
    return _STATUSES


@dataclass(slots=True)
class ErrorLine:
    """One error event, located by run number (1 = first run of the trace) and seq."""

    run: int
    seq: int
    handler: str | None
    error_type: str | None
    message: str | None


@dataclass(slots=True)
class TraceSummary:
    """What the text and HTML forms show, computed once from the rows."""

    runs: int
    run_statuses: Counter[str]
    run_seconds: float
    events: Counter[str]
    handlers: dict[str, HandlerStats]
    errors: list[ErrorLine]
    error_count: int
    dropped_records: int
    dropped_spans: int


def summarize(trace: Trace) -> TraceSummary:
    """Count the rows of ``trace``: per run status, per event name, per handler."""
    run_numbers: dict[str, int] = {}
    for row in trace.runs:
        run_numbers.setdefault(row["run_id"], len(run_numbers) + 1)
    events: Counter[str] = Counter()
    errors: list[ErrorLine] = []
    error_count = 0
    for row in trace.records:
        events[row["event"]] += 1
        if row["kind"] == "error":
            error_count += 1
            if len(errors) < ERRORS_SHOWN:
                run = run_numbers.setdefault(row["run_id"], len(run_numbers) + 1)
                errors.append(
                    ErrorLine(run, row["seq"], row["handler"], row["error_type"], row["error"])
                )
    handlers = handler_stats(trace.spans, key=lambda span: span["handler"])
    return TraceSummary(
        runs=len(trace.runs),
        run_statuses=Counter(row["status"] for row in trace.runs),
        run_seconds=sum(row["duration"] or 0.0 for row in trace.runs),
        events=events,
        handlers=handlers,
        errors=errors,
        error_count=error_count,
        dropped_records=trace.dropped_records,
        dropped_spans=trace.dropped_spans,
    )


def _headline(summary: TraceSummary) -> str:
    if not summary.runs and not summary.events:
        return "Trace: no runs recorded"
    statuses = ", ".join(f"{n} {status}" for status, n in summary.run_statuses.items())
    calls = sum(stats.calls for stats in summary.handlers.values())
    parts = [
        f"{plural(summary.runs, 'run')}" + (f" ({statuses})" if statuses else ""),
        plural(summary.events.total(), "event"),
        plural(calls, "handler call"),
        plural(summary.error_count, "error"),
    ]
    line = "Trace: " + ", ".join(parts)
    if summary.dropped_records or summary.dropped_spans:
        line += (
            f" (dropped the oldest {plural(summary.dropped_records, 'event')} "
            f"and {plural(summary.dropped_spans, 'handler call')})"
        )
    return line


def _error_text(error: ErrorLine) -> str:
    where = f"run {error.run}, seq {error.seq}"
    if error.handler is not None:
        where += f", handler {error.handler!r}"
    kind = f" ({error.error_type})" if error.error_type else ""
    return f"{where}{kind}: {error.message}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header, *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  " + "  ".join([first, *rest]).rstrip())
    return lines


def render_text(summary: TraceSummary) -> str:
    """The terminal form: deterministic counts first, then a ``time:`` section."""
    lines = [_headline(summary)]
    if not summary.runs and not summary.events:
        return lines[0]
    if summary.events:
        lines.append("events:")
        lines += _table(["event", "count"], [[name, n] for name, n in summary.events.items()])
    if summary.handlers:
        lines.append("handlers:")
        statuses = _statuses(summary)
        lines += _table(
            ["handler", "calls", *statuses, "emitted"],
            [
                [name, s.calls, *(s.statuses[status] for status in statuses), s.emitted]
                for name, s in summary.handlers.items()
            ],
        )
    if summary.errors:
        lines.append("errors:")
        lines += [f"  {_error_text(error)}" for error in summary.errors]
        if summary.error_count > len(summary.errors):
            lines.append(f"  ... and {summary.error_count - len(summary.errors)} more")
    lines.append("time:")
    rows = [["runs", format_duration(summary.run_seconds)]]
    rows += [[name, format_duration(s.seconds)] for name, s in summary.handlers.items()]
    lines += _table(["", "total"], rows)[1:]
    return "\n".join(lines)


_ERROR_STYLE: Final = "background:#fdecea;color:#b00020"


def render_html(summary: TraceSummary) -> str:
    """The notebook form: the headline and tables, error rows highlighted."""
    e = html.escape
    parts = [f"<div class='baxiflow-trace'><p><strong>{e(_headline(summary))}</strong></p>"]
    if summary.events:
        rows = "".join(
            f"<tr{_error_row(name == 'error')}><td>{e(name)}</td><td>{n}</td></tr>"
            for name, n in summary.events.items()
        )
        parts.append(f"<table><tr><th>event</th><th>count</th></tr>{rows}</table>")
    if summary.handlers:
        statuses = _statuses(summary)
        head = "".join(
            f"<th>{h}</th>"
            for h in ("handler", "calls", *statuses, "emitted", "total time", "mean time")
        )
        rows = "".join(
            f"<tr{_error_row(bool(s.failures))}>"
            f"<td>{e(name)}</td><td>{s.calls}</td>"
            + "".join(f"<td>{s.statuses[status]}</td>" for status in statuses)
            + f"<td>{s.emitted}</td><td>{format_duration(s.seconds)}</td>"
            f"<td>{format_duration(s.mean_duration)}</td></tr>"
            for name, s in summary.handlers.items()
        )
        parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    if summary.errors:
        items = "".join(
            f"<li style='{_ERROR_STYLE}'>{e(_error_text(error))}</li>" for error in summary.errors
        )
        more = summary.error_count - len(summary.errors)
        if more:
            items += f"<li>... and {more} more</li>"
        parts.append(f"<p>errors:</p><ul>{items}</ul>")
    if summary.runs:
        parts.append(f"<p>total run time: {format_duration(summary.run_seconds)}</p>")
    parts.append("</div>")
    return "".join(parts)


def _error_row(is_error: bool) -> str:
    return f" style='{_ERROR_STYLE}'" if is_error else ""
