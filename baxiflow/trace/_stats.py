"""Per-handler figures from span rows: calls, outcomes, events emitted, time spent.

The trace summary groups spans by handler name, the diagram overlay by registration.

>>> spans = [
...     {"handler": "fetch", "status": "ok", "emitted": 2, "duration": 0.25},
...     {"handler": "fetch", "status": "timeout", "emitted": 0, "duration": 0.75},
... ]
>>> stats = handler_stats(spans, key=lambda span: span["handler"])["fetch"]
>>> stats.calls, stats.failures, stats.emitted, stats.mean_duration
(2, 1, 2, 0.5)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

__all__ = ["HandlerStats", "handler_stats"]

FAILED: Final = frozenset({"error", "timeout"})
"""Span statuses that count as failures: the handler raised or ran out of time. An attempt
that was retried (``retried``) is not one: its call went on."""

K = TypeVar("K")


@dataclass(slots=True)
class HandlerStats:
    """Calls of one handler across recorded runs.

    Attributes:
        calls: How many times it ran.
        statuses: Calls per span status (``ok``, ``error``, ``timeout``, ``cancelled``,
            ``retried``).
        emitted: Events its calls yielded.
        seconds: Total seconds of the calls that have a duration.
        timed: How many calls have a duration.
    """

    calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    emitted: int = 0
    seconds: float = 0.0
    timed: int = 0

    @property
    def retried(self) -> int:
        """Attempts that failed and were followed by another."""
        return self.statuses["retried"]

    @property
    def failures(self) -> int:
        """Calls that raised or timed out."""
        return sum(self.statuses[status] for status in FAILED)

    @property
    def mean_duration(self) -> float | None:
        """Mean seconds per call, ``None`` when no call has a duration."""
        return self.seconds / self.timed if self.timed else None

    def add(self, span: Mapping[str, Any]) -> None:
        """Count one span row; a missing or non-numeric field counts as nothing."""
        self.calls += 1
        self.statuses[str(span.get("status"))] += 1
        emitted = span.get("emitted")
        if isinstance(emitted, int) and not isinstance(emitted, bool):
            self.emitted += emitted
        duration = span.get("duration")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            self.seconds += duration
            self.timed += 1


def handler_stats(
    spans: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], K | None]
) -> dict[K, HandlerStats]:
    """Aggregate ``spans`` per ``key(span)``, in order of first appearance; ``None`` skips a span."""
    stats: dict[K, HandlerStats] = {}
    for span in spans:
        group = key(span)
        if group is None:
            continue
        entry = stats.get(group)
        if entry is None:
            entry = stats[group] = HandlerStats()
        entry.add(span)
    return stats
