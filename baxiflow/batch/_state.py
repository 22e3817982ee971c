"""The live state of a batch, as its view shows it: counts, steps, recent failures.

>>> state = BatchState(total=3, clock=lambda: 2.0)
>>> state.run_started(); state.run_started(); state.step(None, "fetch")
>>> state.outcome({"index": 0, "status": "error", "error": "boom"})
>>> print(state.text(timed=False))
1/3 runs · 1 running · 0 ok · 1 failed
steps: fetch 1
failed: input 0: boom
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from baxiflow._text import format_duration

__all__ = ["FAILURES_LISTED", "BatchState"]

FAILURES_LISTED: Final = 3
"""The last few failures a live view lists."""


class BatchState:
    """Counts of a running batch: done out of total, running, ok, failed, runs per step.

    The batch calls :meth:`run_started`, :meth:`step` and :meth:`outcome`; a view reads
    the attributes and :meth:`text`. Plain counters, so a view stays cheap to feed.

    Args:
        total: Number of inputs, or ``None`` when the input has no length.
        clock: Monotonic clock in seconds (a fake one in tests).
    """

    def __init__(self, total: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.ok = 0
        self.failed = 0
        self.running = 0
        self.steps: Counter[str] = Counter()
        self.failures: deque[tuple[int, str]] = deque(maxlen=FAILURES_LISTED)
        self.stopped: str | None = None
        self.finished = False
        self._clock = clock
        self.started_at = clock()
        self.ended_at: float | None = None

    def run_started(self) -> None:
        self.running += 1

    def step(self, old: str | None, new: str | None) -> None:
        """A run moved from step ``old`` to step ``new`` (``None``: no step)."""
        steps = self.steps
        if old is not None:
            steps[old] -= 1
            if not steps[old]:
                del steps[old]
        if new is not None:
            steps[new] += 1

    def set_steps(self, steps: Mapping[str, int], running: int) -> None:
        """Replace the step counts and the running count (for runs on other machines)."""
        self.steps = Counter({name: n for name, n in steps.items() if n})
        self.running = running

    def outcome(self, row: Mapping[str, Any], *, ran: bool = True) -> None:
        """A run ended with outcome ``row``; ``ran=False`` for one that never started."""
        self.done += 1
        if ran:
            self.running -= 1
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
            self.failures.append((row["index"], row.get("error") or row["status"]))

    def finish(self, stopped: str | None) -> None:
        self.stopped = stopped
        self.finished = True
        self.running = 0
        self.steps.clear()
        self.ended_at = self._clock()

    @property
    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else self._clock()
        return max(end - self.started_at, 0.0)

    @property
    def rate(self) -> float | None:
        """Runs done per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 and self.done else None

    @property
    def left(self) -> float | None:
        """Seconds left at the current rate; ``None`` when unknown."""
        rate = self.rate
        if self.total is None or rate is None or self.finished:
            return None
        return max(self.total - self.done, 0) / rate

    def counts_text(self) -> str:
        total = "?" if self.total is None else str(self.total)
        return (
            f"{self.done}/{total} runs · {self.running} running · {self.ok} ok · "
            f"{self.failed} failed"
        )

    def timing_text(self) -> str:
        rate = self.rate
        text = f"{'-' if rate is None else f'{rate:.1f}'} runs/s · elapsed {format_duration(self.elapsed)}"
        left = self.left
        if left is not None:
            text += f" · left {format_duration(left)}"
        return text

    def steps_text(self) -> str:
        return " · ".join(f"{name} {n}" for name, n in self.steps.items())

    def text(self, *, timed: bool = True) -> str:
        """Every line of the view as plain text; ``timed=False`` leaves out rates and times."""
        head = self.counts_text()
        if timed:
            head += " · " + self.timing_text()
        lines = [head]
        if self.stopped is not None:
            lines.append(f"stopped: {self.stopped}")
        if self.steps:
            lines.append(f"steps: {self.steps_text()}")
        lines.extend(f"failed: input {index}: {error}" for index, error in self.failures)
        return "\n".join(lines)
