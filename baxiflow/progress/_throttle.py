"""Say when a progress display is due for a redraw: a cheap counter first, then the clock.

>>> now = [0.0]
>>> throttle = Throttle(0.1, clock=lambda: now[0])
>>> throttle.due(), throttle.due()  # the first call always draws; the clock has not moved
(True, False)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

__all__ = ["DEFAULT_INTERVAL", "Throttle", "check_interval"]

DEFAULT_INTERVAL: Final = 0.1
"""Seconds between two redraws of one run at most; tqdm's ``mininterval`` for notebooks."""

_MAX_STRIDE: Final = 256
"""Most events between two clock reads, so a run that slows down is not left stale for long."""

_CLOCK_READS_PER_INTERVAL: Final = 4


def check_interval(interval: object) -> float:
    """Return ``interval`` if it is a number of seconds >= 0, else raise ``ValueError``.

    >>> check_interval(-1)
    Traceback (most recent call last):
    ...
    ValueError: interval must be a number of seconds >= 0, got -1
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
    return interval


class Throttle:
    """Say when a redraw is due: at most once per ``interval`` seconds, reading the clock rarely.

    Like tqdm's ``miniters`` and ``mininterval``, :meth:`due` checks a counter first and
    reads the clock only every few calls; the stride adapts to the call rate so the clock
    is read about four times per interval, and at least every 256 calls.

    Args:
        interval: Least seconds between two redraws; 0 redraws on every call.
        clock: Monotonic clock in seconds (a fake one in tests).

    >>> now = [0.0]
    >>> throttle = Throttle(0.1, clock=lambda: now[0])
    >>> throttle.due()  # the first call always draws
    True
    >>> now[0] = 0.05
    >>> throttle.due()
    False
    >>> now[0] = 0.15
    >>> throttle.due()
    True
    """

    __slots__ = (
        "_checked_at",
        "_checked_count",
        "_clock",
        "_count",
        "_last",
        "_next_check",
        "_stride",
        "clock_reads",
        "interval",
    )

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = check_interval(interval)
        self._clock = clock
        self._count = 0
        self._next_check = 0
        self._stride = 1
        self._last = -math.inf
        self._checked_at: float | None = None
        self._checked_count = 0
        self.clock_reads = 0

    @property
    def calls(self) -> int:
        """How many times :meth:`due` was called."""
        return self._count

    def due(self) -> bool:
        """Count one change; True when it should be drawn now."""
        self._count = count = self._count + 1
        if count < self._next_check:
            return False
        now = self._clock()
        self.clock_reads += 1
        checked_at = self._checked_at
        if checked_at is not None:
            spent = now - checked_at
            if spent > 0:
                stride = int((count - self._checked_count) * self.interval / spent)
                stride //= _CLOCK_READS_PER_INTERVAL
            else:
                stride = self._stride * 2
            self._stride = min(max(stride, 1), _MAX_STRIDE)
        self._checked_at = now
        self._checked_count = count
        self._next_check = count + self._stride
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def drawn(self) -> None:
        """Record a redraw made without :meth:`due` (a timer, the final state)."""
        self._last = self._clock()
