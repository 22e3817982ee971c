"""Handler calls of guarded runs: driven so that one that will not stop can be left behind.

A run with a timeout drives each handler through :class:`GuardedHandler`. The handler still
runs in the run's own task and context, but through a small trampoline that hands on to the
task whatever the handler waits for, and hands back to the handler whatever the task is
woken with, cancellations included, as the task itself would (a plain delegation, like
``await``, except that it can stop delegating). When time is up the watchdog
cancels the task every :data:`~baxiflow._deadline.RECANCEL_AFTER` seconds. A handler that
keeps ignoring those cancellations for :data:`~baxiflow._deadline.GIVE_UP_AFTER` seconds is
moved, as it is, to a task of its own, where it goes on; a :class:`~baxiflow.HandlerWarning`
says so, and the run ends with its timeout error event as usual. Runs without a timeout do not
pay for any of this.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager(handler_timeout=0.05)
>>> @workflow.on("start")
... async def slow(event):
...     await asyncio.sleep(1)
...     yield event
>>> async def main():
...     return [e.data["reason"] async for e in workflow.process(WorkflowEvent("start")) if e.error]
>>> asyncio.run(main())
['handler_timeout']
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any, TypeVar

import baxiflow._deadline as deadline
from baxiflow._deadline import Watchdog
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import HandlerWarning, warn_from_caller

__all__ = ["GuardedHandler", "guard_handler"]

T = TypeVar("T")

_left_behind: set[asyncio.Task[None]] = set()
"""Handlers going on in tasks of their own; kept here so that they are not collected."""


class GuardedHandler(Generator[Any, None, WorkflowEvent]):
    """A handler's async generator whose steps are awaited through the handler itself.

    ``await`` would hand every exception the task is woken with on to the handler; a step
    of this one (``__anext__`` or ``aclose``) asks :meth:`give_up` first, and raises the
    exception itself once it gives the handler up. Otherwise it only delegates.

    Args:
        agen: The handler's generator.
        watchdog: The run's watchdog: it says when to give up on the handler.
        name: The handler's name, for the warning.
    """

    __slots__ = ("_agen", "_name", "_step", "_watchdog", "left_behind")

    def __init__(
        self, agen: AsyncGenerator[WorkflowEvent, None], watchdog: Watchdog, name: str
    ) -> None:
        self._agen = agen
        self._watchdog = watchdog
        self._name = name
        self._step: Coroutine[Any, Any, Any] = _NO_STEP
        self.left_behind = False
        """True once the handler goes on in a task of its own: it is no longer the run's."""

    def __aiter__(self) -> GuardedHandler:
        return self

    def __anext__(self) -> GuardedHandler:
        self._step = self._agen.__anext__()
        return self

    async def aclose(self) -> None:
        """Close the handler so its ``finally`` runs, unless it was left behind."""
        if not self.left_behind:
            self._step = self._agen.aclose()
            await self

    def __await__(self) -> GuardedHandler:
        return self

    def __next__(self) -> Any:
        return self._step.send(None)

    def send(self, value: None) -> Any:
        return self._step.send(value)

    def throw(
        self, error: BaseException | type[BaseException], value: object = None, _: object = None
    ) -> Any:
        if not isinstance(error, BaseException):
            error = error() if value is None else error(value)
        if self._watchdog.past_grace():
            self._leave_behind(error)
            raise error
        return self._step.throw(error)

    def close(self) -> None:
        self._step.close()

    def _leave_behind(self, error: BaseException) -> None:
        """Let the handler go on in a task of its own, thrown ``error`` first."""
        self.left_behind = True
        task = asyncio.get_running_loop().create_task(_go_on(self._step, error))
        _left_behind.add(task)
        task.add_done_callback(_left_behind.discard)
        warn_from_caller(
            f"handler {self._name!r} ignored its cancellation for {deadline.GIVE_UP_AFTER:g} s "
            "after its time ran out; the run ended without it, and it goes on in a task of its own",
            HandlerWarning,
        )


def guard_handler(
    handler: Callable[[WorkflowEvent], Any], watchdog: Watchdog, name: str
) -> Callable[[WorkflowEvent], GuardedHandler]:
    """``handler``, whose generators are driven as :class:`GuardedHandler` s."""

    def guarded(event: WorkflowEvent) -> GuardedHandler:
        return GuardedHandler(handler(event), watchdog, name)

    return guarded


async def _go_on(step: Coroutine[Any, Any, Any], error: BaseException) -> None:
    """Where a handler left behind goes on, from ``error``: its result or failure is nobody's."""
    # If this task is cancelled in turn (at shutdown, say), the handler is dropped as it is:
    # it has shown that it would not stop, and nothing may wait for it.
    with contextlib.suppress(Exception):
        awaited = step.throw(error)
        while True:
            await _Wait(awaited)
            awaited = step.send(None)


class _Wait:
    """Waits, in this task, for what a step yielded: a future, or a bare yield."""

    __slots__ = ("awaited",)

    def __init__(self, awaited: object) -> None:
        self.awaited = awaited

    def __await__(self) -> Generator[Any, None, None]:
        yield self.awaited


async def _no_step() -> None:
    """Stands for the step of a handler that has not been asked for one yet."""


_NO_STEP: Coroutine[Any, Any, None] = _no_step()
_NO_STEP.close()
