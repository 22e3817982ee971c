"""What a batch returns: one outcome row and one :class:`RunResult` per input, and a summary.

>>> result = BatchResult(results=[], records=[], trace=Trace(), stopped=None, wall=0.0)
>>> result
<BatchResult: 0 runs, 0 ok, 0 failed>
>>> print(result.summary())
Batch: 0 runs
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from baxiflow._text import format_duration, plural
from baxiflow.event import WorkflowEvent
from baxiflow.observe import RunInfo
from baxiflow.runner import RunResult
from baxiflow.trace import Trace
from baxiflow.trace._frames import ColumnKind, typed_frame

__all__ = ["OUTCOME_COLUMNS", "BatchResult", "Keep", "failed_result", "percentile"]

OUTCOME_COLUMNS: Final = ("index", "run_id", "status", "final", "error", "events", "duration")
"""The columns of :attr:`BatchResult.records`, in order."""

_OUTCOME_KINDS: Final[dict[str, ColumnKind]] = {
    "index": "int",
    "run_id": "text",
    "status": "category",
    "final": "text",
    "error": "text",
    "events": "int",
    "duration": "seconds",
}

Keep: TypeAlias = Literal["all", "summary"]
"""What a batch keeps of each run: everything, or only its outcome row and final event."""

FAILURES_SHOWN: Final = 5
"""Failed runs listed in a summary; the rest are counted."""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when there are none).

    >>> percentile([3.0, 1.0, 2.0, 4.0], 0.5), percentile([3.0, 1.0, 2.0, 4.0], 0.95)
    (2.0, 4.0)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def failed_result(event: WorkflowEvent | None, message: str, error_type: str) -> RunResult:
    """A run that never ran (a bad input, a lost worker) as a failed :class:`RunResult`.

    Its events are the input (when it is an event) and an error event saying why; its
    status is ``"error"``, so it is counted and listed like any failed run.

    >>> failed_result(None, "input 3 is a str, not a WorkflowEvent", "TypeError").final.error
    'input 3 is a str, not a WorkflowEvent'
    """
    error = WorkflowEvent.failure(message, data={"type": error_type})
    events = [error] if event is None else [event, error]
    info = RunInfo(
        run_id="",
        initial_event=events[0],
        started_at=0.0,
        status="error",
        events=len(events),
        errors=1,
        duration=0.0,
    )
    return RunResult(Trace(), events, info)


@dataclass(slots=True, eq=False, repr=False)
class BatchResult:
    """The outcome of :func:`~baxiflow.run_many`: every input's run, in input order.

    Attributes:
        results: One :class:`~baxiflow.RunResult` per input that was started, in input
            order. With ``keep="summary"`` each holds only its final event: ``.final``
            and ``.status`` work, ``.events`` is ``[final]`` and ``.trace`` is empty.
        records: One outcome row per result (the columns of :data:`OUTCOME_COLUMNS`):
            ``index``, ``run_id``, ``status``, ``final`` (the final event's name),
            ``error`` (the last error message), ``events``, ``duration`` (seconds).
        trace: One :class:`~baxiflow.trace.Trace` holding every run; its ``runs`` rows
            carry an ``input_index``. Empty with ``keep="summary"``.
        stopped: ``None`` when the batch went through every input, else why it stopped.
        wall: Seconds from the call to the end of the batch.
    """

    results: list[RunResult]
    records: list[dict[str, Any]]
    trace: Trace
    stopped: str | None
    wall: float
    keep: Keep = "all"

    @property
    def ok(self) -> bool:
        """True when every run ended without an error event and the batch was not stopped."""
        return self.stopped is None and all(row["status"] == "ok" for row in self.records)

    @property
    def failed(self) -> list[tuple[int, RunResult]]:
        """``(index, result)`` of every run that did not end ``"ok"``, in input order."""
        return [
            (row["index"], result)
            for row, result in zip(self.records, self.results, strict=True)
            if row["status"] != "ok"
        ]

    @property
    def throughput(self) -> float | None:
        """Runs per second of wall time."""
        return len(self.records) / self.wall if self.wall > 0 else None

    def to_pandas(self) -> Any:
        """The outcome rows as a pandas DataFrame, one row per input, indexed by ``index``.

        ``status`` is a ``category``, ``events`` an ``Int64``, ``duration`` float seconds,
        the rest ``string``; a missing value is ``<NA>``.

        Raises:
            MissingDependencyError: pandas is not installed (an ``ImportError``).
        """
        frame = typed_frame(self.records, _OUTCOME_KINDS, feature="BatchResult.to_pandas")
        return frame.set_index("index", drop=False).rename_axis(None)

    def _counts(self) -> Counter[str]:
        return Counter(row["status"] for row in self.records)

    def summary(self) -> str:
        """Counts, failures, then times (p50 and p95 duration, wall time, throughput)."""
        runs = len(self.records)
        if not runs and self.stopped is None:
            return "Batch: 0 runs"
        statuses = self._counts()
        failed = runs - statuses["ok"]
        lines = [f"Batch: {plural(runs, 'run')}, {statuses['ok']} ok, {failed} failed"]
        if failed:
            lines.append("  status: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
        if self.stopped is not None:
            lines.append(f"  stopped: {self.stopped}")
        failures = self.failed
        if failures:
            lines.append("failures:")
            for index, result in failures[:FAILURES_SHOWN]:
                lines.append(f"  input {index}: {_failure_text(result)}")
            if len(failures) > FAILURES_SHOWN:
                lines.append(f"  ... and {len(failures) - FAILURES_SHOWN} more")
        lines.append(f"time: {self._times()}")
        return "\n".join(lines)

    def _times(self) -> str:
        durations = [row["duration"] for row in self.records if row["duration"] is not None]
        rate = self.throughput
        return (
            f"p50 {format_duration(percentile(durations, 0.5))}, "
            f"p95 {format_duration(percentile(durations, 0.95))}, "
            f"wall {format_duration(self.wall)}, "
            f"{'-' if rate is None else f'{rate:.1f}'} runs/s"
        )

    def __repr__(self) -> str:
        statuses = self._counts()
        runs = len(self.records)
        stopped = f", stopped: {self.stopped}" if self.stopped is not None else ""
        return (
            f"<BatchResult: {plural(runs, 'run')}, {statuses['ok']} ok, "
            f"{runs - statuses['ok']} failed{stopped}>"
        )

    def _repr_html_(self) -> str:
        statuses = self._counts()
        runs = len(self.records)
        failed = runs - statuses["ok"]
        red = ' style="color:#c62828;font-weight:bold"' if failed else ""
        parts = [
            "<div class='baxiflow-batch'>",
            f"<b>Batch</b>: {plural(runs, 'run')}, {statuses['ok']} ok, "
            f"<span{red}>{failed} failed</span>",
        ]
        if self.stopped is not None:
            parts.append(f"<br><b>stopped</b>: {html.escape(self.stopped)}")
        failures = self.failed
        if failures:
            parts.append("<table><tr><th>input</th><th>status</th><th>error</th></tr>")
            for index, result in failures[:FAILURES_SHOWN]:
                parts.append(
                    f"<tr><td>{index}</td><td>{html.escape(result.status)}</td>"
                    f"<td>{html.escape(_failure_text(result))}</td></tr>"
                )
            parts.append("</table>")
            if len(failures) > FAILURES_SHOWN:
                parts.append(f"... and {len(failures) - FAILURES_SHOWN} more<br>")
        parts.append(f"<br><i>time</i>: {html.escape(self._times())}</div>")
        return "".join(parts)


def _failure_text(result: RunResult) -> str:
    errors = [event for event in result.events if event.is_error]
    if not errors:
        return result.status
    last = errors[-1]
    kind = (last.data or {}).get("type")
    return f"{kind}: {last.error}" if kind else str(last.error)
