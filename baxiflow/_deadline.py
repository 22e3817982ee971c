"""One timer that enforces a run deadline and each handler's budget of working time.

A handler's budget counts only the time it works: the clock stops while the consumer holds an
event. A per-step ``asyncio.timeout`` would cost a timer per event; this keeps a single timer
armed at the earliest moment something could expire, and re-arms it only when it fires early.
Once time is up it cancels the handler again every :data:`RECANCEL_AFTER` seconds until the
handler gives up, so a handler that swallows ``CancelledError`` cannot hang the run.

>>> import asyncio
>>> async def main():
...     watchdog = Watchdog(asyncio.get_running_loop(), run_deadline=None, budget=0.01)
...     watchdog.start()
...     try:
...         await asyncio.sleep(1)
...     except asyncio.CancelledError:
...         return watchdog.claim_cancellation()
...     finally:
...         watchdog.close()
>>> asyncio.run(main())
'handler_timeout'
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator
from typing import Literal, TypeAlias

__all__ = ["GIVE_UP_AFTER", "RECANCEL_AFTER", "Expiry", "Watchdog"]

Expiry: TypeAlias = Literal["timeout", "handler_timeout"]

RECANCEL_AFTER = 0.05
"""Seconds between cancellations of a handler whose time is up and that is still running."""

GIVE_UP_AFTER = 1.0
"""Seconds a handler may go on ignoring its cancellations, once its time is up, before the run
ends without it (see :mod:`baxiflow._guarded`)."""


class Watchdog:
    """Cancels the working task when the run deadline passes or a handler's budget runs out.

    Args:
        loop: The running loop; its clock is used throughout.
        run_deadline: Loop time at which the whole run must end, or ``None``.
        budget: Seconds of work each handler call may spend, or ``None``.
    """

    __slots__ = (
        "_budget",
        "_cancelled",
        "_cancelling",
        "_expired_at",
        "_handle",
        "_issued",
        "_loop",
        "_resumed_at",
        "_run_deadline",
        "_spent",
        "_task",
        "_time",
        "_working",
        "expired",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, run_deadline: float | None, budget: float | None
    ) -> None:
        self._loop = loop
        # asyncio's own loops read time.monotonic(); calling it directly spares a Python
        # frame per check, and this checks twice per event.
        stock = getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time
        self._time = time.monotonic if stock else loop.time
        # Infinity stands for "no limit": the per-event checks stay plain comparisons.
        self._run_deadline = math.inf if run_deadline is None else run_deadline
        self._budget = math.inf if budget is None else budget
        self._spent = 0.0
        self._resumed_at = 0.0
        self._working = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._issued = 0
        self._cancelled = False
        self._expired_at = 0.0
        self.expired: Expiry | None = None
        """What expired once the watchdog cancelled the task; ``None`` before."""

    def start(self) -> Expiry | None:
        """A handler call starts working; returns what has already expired, if anything."""
        self._spent = 0.0
        return self.resume()

    def resume(self) -> Expiry | None:
        """The handler works again after the consumer took an event; returns any expiry.

        The task iterating the run now is the one cancelled if time runs out before the
        next pause (as ``asyncio.timeout`` binds to the task that enters it): a consumer
        may take each event in a task of its own, as ``asyncio.wait_for`` does on 3.11.
        """
        # Like entering ``asyncio.timeout``: cancellations the task already has are not
        # this watchdog's (it has none out now: it cancels only while the handler works).
        self._task = task = asyncio.current_task(self._loop)
        self._cancelling = 0 if task is None else task.cancelling()
        now = self._time()
        # While paused only the run deadline moves on; the budget is checked at its pause.
        if now >= self._run_deadline:
            return self._expire("timeout")
        if self._spent >= self._budget:
            return self._expire("handler_timeout")
        self._resumed_at = now
        self._working = True
        if self._handle is None:
            self._arm(now)
        return None

    def pause(self) -> Expiry | None:
        """The handler yielded or ended: stop its clock.

        Returns an expiry the handler ignored by catching the ``CancelledError`` and going on.
        """
        if self._working:
            self._spent += self._time() - self._resumed_at
            self._working = False
        return None if self.expired is None else self.claim_cancellation()

    def claim_cancellation(self) -> Expiry | None:
        """After a ``CancelledError``: what expired, if this watchdog's cancel caused it.

        Withdraws the watchdog's cancel requests from the task, as ``asyncio.timeout`` does.
        ``None`` when the watchdog never cancelled the task, or when a cancellation from
        elsewhere came since the task was bound: that one propagates.
        """
        self._working = False
        if self.expired is None or self._task is None or not self._cancelled:
            return None
        for _ in range(self._issued):
            self._task.uncancel()
        self._issued = 0
        if self._task.cancelling() > self._cancelling:
            return None
        return self.expired

    async def close_expired(self, agen: AsyncGenerator[object, None]) -> bool:
        """Close the handler whose time ran out, cancelling its cleanup until it ends.

        Returns whether a ``CancelledError`` cut the cleanup short (this watchdog's or
        another's). Call :meth:`claim_cancellation` afterwards: it withdraws the
        cancellations issued here and tells whose it was.
        """
        self._working = True
        self._bind(asyncio.current_task(self._loop))
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(RECANCEL_AFTER, self._fire)
        try:
            await agen.aclose()
        except Exception:
            return False  # its cleanup raised: it is over
        except asyncio.CancelledError:
            # Cut short: by this watchdog, or by a cancellation from elsewhere that stays
            # counted on the task for the caller.
            return True
        finally:
            self.close()
        return False

    def close(self) -> None:
        """Cancel the pending timer; call when the run ends."""
        self._working = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _bind(self, task: asyncio.Task[object] | None) -> None:
        """Cancel ``task`` when time runs out; requests it already has are not this watchdog's."""
        if task is not self._task:
            self._task = task
            self._cancelling = 0 if task is None else task.cancelling()

    def _expire(self, expired: Expiry) -> Expiry:
        """Time is up: from now on the handler's cleanup is cut short (see close_expired)."""
        if self.expired is None:
            self.expired = expired
            self._expired_at = self._time()
        return self.expired

    def past_grace(self) -> bool:
        """Whether time ran out :data:`GIVE_UP_AFTER` seconds ago or more."""
        return self.expired is not None and self._time() - self._expired_at >= GIVE_UP_AFTER

    def _check(self, now: float) -> Expiry | None:
        if now >= self._run_deadline:
            return "timeout"
        spent = self._spent + (now - self._resumed_at if self._working else 0.0)
        if spent >= self._budget:
            return "handler_timeout"
        return None

    def _arm(self, now: float) -> None:
        budget_end = now + self._budget - self._spent - (now - self._resumed_at)
        when = min(self._run_deadline, budget_end)
        if when != math.inf:
            self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._working:
            # The consumer holds control: resume() checks and re-arms.
            return
        now = self._loop.time()
        assert self._task is not None
        if self.expired is None:
            expired = self._check(now)
            if expired is None:
                self._arm(now)
                return
            self._expire(expired)
        self._issued += 1
        self._cancelled = True
        self._task.cancel()
        # Until the handler stops working, cancel it again: it may have swallowed this one.
        self._handle = self._loop.call_at(now + RECANCEL_AFTER, self._fire)
