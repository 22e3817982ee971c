"""The run loop for runs nobody observes and no timeout guards: the hot path of ``process()``.

It follows exactly the rules of the observed loop (:mod:`baxiflow._observed_run`), which the
tests check by running every workflow both ways, but keeps all its state in local variables
of one frame and skips what only observers need (sequence numbers, depths, handler calls).

>>> import asyncio
>>> from baxiflow.event import WorkflowEvent
>>> from baxiflow.registry import Registry
>>> async def ping(event):
...     yield WorkflowEvent("pong")
>>> registry = Registry()
>>> _ = registry.add("ping", ping)
>>> async def main():
...     return [e.name async for e in plain_stream(WorkflowEvent("ping"), registry.route, 10)]
>>> asyncio.run(main())
['ping', 'pong']
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import AsyncGenerator

from baxiflow._routing import (
    LINEAGE_WINDOW,
    Lineage,
    PlainQueued,
    RouteOf,
    Stop,
    close,
    descend,
    handler_error,
    invalid_event_error,
    max_events_error,
)
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.registry import HandlerRegistration, Route

__all__ = ["plain_stream"]


async def plain_stream(
    initial: WorkflowEvent, route: RouteOf, max_events: int | None
) -> AsyncGenerator[WorkflowEvent, None]:
    """Run from ``initial``, dispatching with ``route``; see ``WorkflowManager.process``."""
    limit = sys.maxsize if max_events is None else max_events
    queue: deque[PlainQueued] = deque()
    # The next event to handle while the queue is empty, kept in three locals: most handler
    # steps pass on exactly one event, and locals are cheaper than a round trip through the
    # queue. The queue holds what comes after it, so the order stays first in, first out.
    next_event: WorkflowEvent | None = None
    next_route: Route = ()
    next_parent: Lineage | None = None
    count = 0
    name = initial.name
    if name != PROGRESS:
        count = 1
        if (found := route(name)) is not None:
            next_event, next_route = initial, found
    yield initial
    # The handlers still to run of an event with several, the next one last.
    rest: list[HandlerRegistration] = []
    try:
        while True:
            if rest:
                registration = rest.pop()
                handler = registration.handler
            else:
                if next_event is not None:
                    trigger, found, parent = next_event, next_route, next_parent
                    next_event = None
                elif queue:
                    trigger, found, parent = queue.popleft()
                else:
                    break
                # descend(), inlined: this runs once per handled event.
                length = 1 if parent is None else parent[2] + 1
                lineage = (
                    (trigger.name, parent, length)
                    if length <= LINEAGE_WINDOW
                    else descend(parent, trigger.name)
                )
                try:
                    handler = found.handler  # type: ignore[union-attr]
                except AttributeError:
                    # A tuple of several handlers. (With one, the common case, finding out
                    # this way is cheaper than a type check.)
                    rest = list(reversed(found))  # type: ignore[arg-type]
                    continue
                registration = found  # type: ignore[assignment]
            failure: WorkflowEvent | None = None
            try:
                # register() checked it is an async generator function.
                agen: AsyncGenerator[WorkflowEvent, None] = handler(trigger)  # type: ignore[assignment]
            except Exception as exc:
                failure = handler_error(exc, "handler_error", registration.name, trigger)
            else:
                # True while the consumer holds control: what is thrown in at the
                # `yield` is the consumer's, never the handler's failure.
                yielded = False
                try:
                    async for event in agen:
                        if event.__class__ is not WorkflowEvent and not isinstance(
                            event, WorkflowEvent
                        ):
                            failure = invalid_event_error(event, registration.name, trigger)
                            await close(agen)
                            break
                        name = event.name
                        if name != PROGRESS:
                            count += 1
                            # An error raised while handling an error is not dispatched.
                            if (found := route(name)) is not None and (
                                name != ERROR or trigger.name != ERROR
                            ):
                                if next_event is None and not queue:
                                    next_event, next_route, next_parent = event, found, lineage
                                else:
                                    queue.append((event, found, lineage))
                        yielded = True
                        yield event
                        yielded = False
                        if count > limit:
                            raise _max_events_stop(
                                limit,
                                (trigger, registration, parent),
                                event,
                                (next_event, next_route, next_parent),
                                queue,
                            )
                except Stop:
                    await close(agen)
                    raise
                except Exception as exc:
                    if yielded:
                        await close(agen)
                        raise
                    failure = handler_error(exc, "handler_error", registration.name, trigger)
                except BaseException:
                    # The caller stopped or the task was interrupted while the handler
                    # was suspended: close it now so its `finally` runs.
                    await close(agen)
                    raise
            if failure is not None:
                count += 1
                if (found := route(ERROR)) is not None and trigger.name != ERROR:
                    if next_event is None and not queue:
                        next_event, next_route, next_parent = failure, found, lineage
                    else:
                        queue.append((failure, found, lineage))
                yield failure
                if count > limit:
                    raise _max_events_stop(
                        limit,
                        (trigger, registration, parent),
                        failure,
                        (next_event, next_route, next_parent),
                        queue,
                    )
    except Stop as stop:
        yield stop.event


def _max_events_stop(
    limit: int,
    handled: tuple[WorkflowEvent, HandlerRegistration, Lineage | None],
    last: WorkflowEvent,
    following: tuple[WorkflowEvent | None, Route, Lineage | None],
    queue: deque[PlainQueued],
) -> Stop:
    """The stop of a run whose ``last`` event went past ``limit``; ``following`` is the slot."""
    waiting = list(queue)
    if following[0] is not None:
        waiting.insert(0, following)  # type: ignore[arg-type]
    return Stop(max_events_error(limit, handled, last, handled[1].name, waiting), "max_events")
