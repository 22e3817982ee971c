"""Retries: a handler call that fails is run again, after a pause that grows.

>>> policy = Retry(attempts=3, backoff=0.5, on=ConnectionError)
>>> policy
Retry(attempts=3, backoff=0.5, on=(ConnectionError,))
>>> [policy.delay(n) for n in (1, 2)]
[0.5, 1.0]
>>> Retry(attempts=0)
Traceback (most recent call last):
...
ValueError: Retry(attempts=...) must be a positive int, got 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Backoff", "Retry"]

Backoff: TypeAlias = "float | Callable[[int], float]"
"""Seconds to wait before attempt ``n + 1``: a number ``b`` waits ``b * 2 ** (n - 1)``; a
callable takes ``n`` (the attempt that failed, from 1) and returns the seconds."""


class Retry:
    """How a failing handler call is retried: ``register(..., retry=Retry(...))``.

    Args:
        attempts: Most attempts in all, the first one included (1 means no retry).
        backoff: Seconds before the second attempt, doubling after each failure; or a
            callable taking the number of the attempt that failed and returning seconds.
        on: The exception types worth a retry (an attempt that raises anything else fails
            the call at once).

    Which failures are retried: an attempt that raised one of ``on`` before it yielded any
    event other than progress. Once a call has yielded an event that is dispatched, that
    event belongs to the run, so the call is not retried: its failure is final, and no
    event is ever yielded twice. Progress events of a failed attempt stay in the stream.
    A guard's stop (``timeout``, ``handler_timeout``, ``max_events``) is never retried.
    Each attempt has its own ``handler_timeout`` budget; the pauses between attempts are
    not handler work, so they do not count toward it, while they do count toward the run's
    ``timeout``.
    """

    __slots__ = ("attempts", "backoff", "on")

    def __init__(
        self,
        attempts: int = 3,
        backoff: Backoff = 0.1,
        on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"Retry(attempts=...) must be a positive int, got {attempts!r}")
        if not callable(backoff) and (
            isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not backoff >= 0
        ):
            raise TypeError(
                "Retry(backoff=...) must be a number of seconds (0 or more) or a callable "
                f"taking the failed attempt's number, got {backoff!r}"
            )
        kinds = on if isinstance(on, tuple) else (on,)
        if not kinds or not all(isinstance(k, type) and issubclass(k, Exception) for k in kinds):
            raise TypeError(
                "Retry(on=...) must be an exception type or a tuple of them (subclasses of "
                f"Exception), got {on!r}"
            )
        self.attempts = attempts
        self.backoff: Backoff = backoff
        self.on: tuple[type[BaseException], ...] = kinds

    def __repr__(self) -> str:
        on = "(" + ", ".join(k.__name__ for k in self.on) + ",)"
        return f"Retry(attempts={self.attempts}, backoff={self.backoff!r}, on={on})"

    def delay(self, failed: int) -> float:
        """Seconds to wait after attempt number ``failed`` (from 1) before the next one."""
        backoff = self.backoff
        if callable(backoff):
            return float(backoff(failed))
        return float(backoff) * 2.0 ** (failed - 1)

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt``, failing with ``error``, is followed by another."""
        return attempt < self.attempts and isinstance(error, self.on)
