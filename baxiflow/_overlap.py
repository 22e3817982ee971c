"""Handler calls that overlap in one run (``concurrency`` above 1): slots, order, hand-over.

The run loop (:mod:`baxiflow._engine`) stays the one place where events are numbered,
shown, dispatched and yielded. This module only says which call may start, and carries what
calls running in tasks of their own produce back to the loop, one event at a time: a call's
task waits until the loop has yielded its event and the caller asked for the next one, as a
call run by the loop itself would.

>>> slots = Slots(2)
>>> slots.free, slots.tasks
(2, {})
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any, Final, TypeAlias

from baxiflow._deadline import Watchdog
from baxiflow._routing import Lineage, Queued, RouteOf
from baxiflow.event import WorkflowEvent
from baxiflow.observe import HandlerCall
from baxiflow.registry import HandlerRegistration, Route

__all__ = ["ENDED", "EVENT", "FAILED", "RAISED", "START", "CallContext", "Slots", "Work"]

START: Final = 0
"""A call that may start now."""
EVENT: Final = 1
"""A call in a task yielded an event; it waits until the caller asks for the next one."""
FAILED: Final = 2
"""A call in a task failed; the value is its error event."""
ENDED: Final = 3
"""A call in a task ended."""
RAISED: Final = 4
"""Something that ends the run came out of a call's task (a guard's stop)."""


class CallContext:
    """One handler call of an overlapping run: what it handles, and where it stands."""

    __slots__ = (
        "_attempt",
        "_call",
        "_guard",
        "depth",
        "dispatch",
        "following",
        "go",
        "item",
        "lineage",
        "registration",
        "source",
        "task",
        "trigger",
        "trigger_seq",
    )

    def __init__(
        self,
        registration: HandlerRegistration,
        following: tuple[HandlerRegistration, ...],
        item: Queued,
        lineage: Lineage | None,
        depth: int,
        dispatch: RouteOf,
    ) -> None:
        self.registration = registration
        self.following = following
        self.item = item
        self.trigger: WorkflowEvent = item[0]
        self.trigger_seq: int = item[3]
        self.lineage = lineage
        self.depth = depth
        self.dispatch = dispatch
        self._call: HandlerCall | None = None
        self._guard: Watchdog | None = None
        self._attempt = 1
        self.source: AsyncGenerator[WorkflowEvent, None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.go: asyncio.Future[None] | None = None

    def then(self, registration: HandlerRegistration) -> CallContext:
        """The call of the next handler in this event's sequence."""
        following = self.following[1:]
        return CallContext(
            registration, following, self.item, self.lineage, self.depth, self.dispatch
        )


Work: TypeAlias = tuple[int, CallContext, Any]
"""What :meth:`Slots.next` hands the loop: ``(kind, call, value)``."""


class Slots:
    """The calls of one overlapping run: waiting for a slot, running in tasks, and their output.

    Args:
        concurrency: Most calls running at once.
    """

    __slots__ = ("_busy", "_dropped", "_wakeup", "free", "outcomes", "ready", "tasks")

    def __init__(self, concurrency: int) -> None:
        self.free = concurrency
        self.ready: deque[CallContext] = deque()
        self.outcomes: deque[Work] = deque()
        self.tasks: dict[asyncio.Task[None], CallContext] = {}
        self._busy: dict[int, int] = {}
        self._wakeup: asyncio.Future[None] | None = None  # the loop waits on it for outcomes
        self._dropped: list[asyncio.Task[None]] = []

    def add(
        self, route: Route, item: Queued, lineage: Lineage | None, depth: int, dispatch: RouteOf
    ) -> None:
        """The calls of the event ``item`` is, in order: the first of its sequential handlers
        (the others follow it one by one) and each handler registered with ``sequential=False``."""
        registrations = route if isinstance(route, tuple) else (route,)
        chain = tuple(r for r in registrations if r.sequential)
        for registration in registrations:
            if not registration.sequential:
                self.ready.append(CallContext(registration, (), item, lineage, depth, dispatch))
            elif registration is chain[0]:
                self.ready.append(
                    CallContext(registration, chain[1:], item, lineage, depth, dispatch)
                )

    async def next(self, queued: bool) -> Work | None:
        """What the loop does next: an output of a running call, else (once ``queued`` events
        are all dispatched) the first waiting call that may start, in dispatch order; waits
        while calls run and none of that is there. ``None``: dispatch, or nothing is left."""
        while True:
            if self.outcomes:
                return self.outcomes.popleft()
            if queued:
                return None
            if (context := self._startable()) is not None:
                return (START, context, None)
            if not self.tasks:
                return None
            await self._wait()

    def _startable(self) -> CallContext | None:
        """The first waiting call a slot is free for, below its handler's own limit."""
        if not self.free:
            return None
        for index, context in enumerate(self.ready):
            key, limit = id(context.registration), context.registration.concurrency
            if limit is None or self._busy.get(key, 0) < limit:
                del self.ready[index]
                self.free -= 1
                self._busy[key] = self._busy.get(key, 0) + 1
                return context
        return None

    def finished(self, context: CallContext) -> None:
        """``context`` ended: its slot is free, and the next handler of its event may start."""
        if context.task is not None:
            self.tasks.pop(context.task, None)
        self.free += 1
        self._busy[id(context.registration)] -= 1
        if context.following:
            self.ready.appendleft(context.then(context.following[0]))

    def put(self, work: Work) -> None:
        """A call's task hands the loop ``work``."""
        self.outcomes.append(work)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def hand(self, context: CallContext, event: WorkflowEvent) -> None:
        """From a call's task: hand ``event`` to the loop, and wait until the caller asks for
        the next event (see :meth:`release`)."""
        context.go = asyncio.get_running_loop().create_future()
        self.put((EVENT, context, event))
        await context.go

    @staticmethod
    def release(context: CallContext) -> None:
        """The caller asked for the next event: the call whose event it was goes on."""
        if context.go is not None and not context.go.done():
            context.go.set_result(None)

    def drop(self, context: CallContext) -> None:
        """The loop refused what ``context`` handed over: cancel the call, end it here."""
        if context.task is not None and self.tasks.pop(context.task, None) is not None:
            context.task.cancel()
            self._dropped.append(context.task)
            context.task = None
            self.finished(context)

    async def _wait(self) -> None:
        """Wait until a running call hands the loop something."""
        while not self.outcomes:
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    async def close(self) -> list[CallContext]:
        """Cancel every running call and wait for each to close; the calls that were running."""
        running = list(self.tasks.values())
        tasks = [*self.tasks, *self._dropped]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.tasks.clear()
        self._dropped.clear()
        return running
