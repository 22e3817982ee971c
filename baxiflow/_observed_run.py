"""The run loop for runs with observers or timeout guards.

Besides routing events (by the rules in :mod:`baxiflow._routing`) it numbers them, tells the
observers about the run, each handler call and each event, and keeps the watchdog of the
timeout guards informed of when a handler works and when the consumer holds control.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> async def ping(event):
...     yield WorkflowEvent("pong")
>>> workflow = WorkflowManager().register("ping", ping)
>>> seen = []
>>> async def main():
...     route = workflow._registry.route
...     stream = observed_stream(workflow, route, WorkflowEvent("ping"), 10, None, None, [seen.append])
...     return [event.name async for event in stream]
>>> asyncio.run(main()), [(e.seq, e.parent_seq, e.handler_name) for e in seen]
(['ping', 'pong'], [(0, None, None), (1, 0, 'ping')])
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

from baxiflow._deadline import Expiry, Watchdog
from baxiflow._routing import (
    LINEAGE_WINDOW,
    Lineage,
    ObservedQueued,
    RouteOf,
    Stop,
    close,
    descend,
    handler_error,
    invalid_event_error,
    max_events_error,
)
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.exceptions import ObserverWarning
from baxiflow.observe import (
    EmittedEvent,
    HandlerCall,
    HandlerStatus,
    Observer,
    ObserverGroup,
    RunInfo,
    RunStatus,
    as_observer,
)
from baxiflow.registry import Route

if TYPE_CHECKING:
    from baxiflow.manager import WorkflowManager

__all__ = ["observed_stream"]


class _Run:
    """The mutable state of one run; local to one ``process`` call, so runs stay isolated.

    Its queue holds one ``(event, registration, parent_lineage, seq, depth)`` per handler
    step. The loop keeps the counters in local variables while handlers run, and stores
    them here around calls to :meth:`emit`.
    """

    __slots__ = (
        "clock_start",
        "count",
        "errors",
        "group",
        "info",
        "limit",
        "noticing",
        "queue",
        "route",
        "seq",
    )

    def __init__(
        self, info: RunInfo, group: ObserverGroup, max_events: int | None, route: RouteOf
    ) -> None:
        self.info = info
        self.group = group
        self.route = route
        self.limit = sys.maxsize if max_events is None else max_events
        self.queue: deque[ObservedQueued] = deque()
        self.seq = -1
        self.count = 0
        self.errors = 0
        self.noticing = bool(group.listeners("event_emitted") or group.event_sinks)
        self.clock_start = time.perf_counter()

    def emit(
        self,
        event: WorkflowEvent,
        parent: ObservedQueued | None,
        call: HandlerCall | None,
        handler_name: str | None,
        lineage: Lineage | None,
    ) -> bool:
        """Number, observe and queue ``event``; True when it takes the run over max_events.

        The loop inlines this for the events handlers yield; this serves the others.
        """
        self.seq = seq = self.seq + 1
        name = event.name
        info = self.info
        info.events = seq + 1
        if name == ERROR:
            self.errors = info.errors = self.errors + 1
        if call is not None:
            call.emitted += 1
        depth = 0 if parent is None else parent[4] + 1
        if self.noticing:
            elapsed = time.perf_counter() - self.clock_start
            parent_seq = None if parent is None else parent[3]
            self.group.emitted(
                _new_emitted(
                    EmittedEvent,
                    (event, seq, parent_seq, depth, handler_name, elapsed, info, call),
                )
            )
        if name == PROGRESS:
            return False
        self.count = count = self.count + 1
        # An error raised while handling an error is not dispatched.
        if (route := self.route(name)) is not None and (
            parent is None or name != ERROR or parent[0].name != ERROR
        ):
            self.enqueue(event, route, seq, depth, lineage)
        return count > self.limit

    def enqueue(
        self, event: WorkflowEvent, route: Route, seq: int, depth: int, lineage: Lineage | None
    ) -> None:
        """Queue one step per handler of ``event``, whose parent has ``lineage``."""
        if isinstance(route, tuple):
            self.queue.extend([(event, each, lineage, seq, depth) for each in route])
        else:
            self.queue.append((event, route, lineage, seq, depth))

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock_start


async def observed_stream(
    manager: WorkflowManager,
    route: RouteOf,
    initial_event: WorkflowEvent,
    max_events: int | None,
    run_timeout: float | None,
    call_timeout: float | None,
    observers: Sequence[Observer],
) -> AsyncGenerator[WorkflowEvent, None]:
    """Run ``manager`` (whose handlers ``route`` gives) from ``initial_event``.

    ``observers`` watch the run, and the guards given are on.
    See ``WorkflowManager.process`` for what a run does; this is its general form. Handler
    calls are tracked only when there are observers to see them.
    """
    group = ObserverGroup(map(as_observer, observers))
    info = RunInfo(_new_run_id(), manager, initial_event, time.time())
    watchdog = None
    if run_timeout is not None or call_timeout is not None:
        loop = asyncio.get_running_loop()
        deadline = None if run_timeout is None else loop.time() + run_timeout
        watchdog = Watchdog(loop, deadline, call_timeout)
    run = _Run(info, group, max_events, route)
    call: HandlerCall | None = None
    status: RunStatus = "running"
    on_start = group.listeners("handler_started")
    on_finish = group.listeners("handler_finished")
    on_event = group.listeners("event_emitted")
    event_sinks, call_sinks = group.event_sinks, group.call_sinks
    noticing = run.noticing
    # Handler calls are made only for observers that can see them.
    observing = bool(on_event or on_start or on_finish or call_sinks)
    run_id, started_at = info.run_id, info.started_at
    perf_counter = time.perf_counter
    clock_start = run.clock_start
    limit = run.limit
    item: ObservedQueued | None = None
    seq, count, errors = -1, 0, 0
    group.notify("run_started", info)
    try:
        run.emit(initial_event, None, None, None, None)
        seq, count, errors = run.seq, run.count, run.errors
        yield initial_event
        queue = run.queue
        while queue:
            item = queue.popleft()
            trigger, registration, parent, trigger_seq, trigger_depth = item
            # descend(), inlined: this runs once per handler step.
            length = 1 if parent is None else parent[2] + 1
            lineage = (
                (trigger.name, parent, length)
                if length <= LINEAGE_WINDOW
                else descend(parent, trigger.name)
            )
            depth = trigger_depth + 1
            name = registration.name
            if observing:
                # HandlerCall(info, handler, name, position, trigger, trigger_seq, started),
                # spelled out: setting the slots of a bare instance costs half of calling
                # the class, and this runs once per handler step.
                call = _bare_call(HandlerCall)
                call.run = info
                call.handler = registration.handler
                call.handler_name = name
                call.position = registration.position
                call.trigger = trigger
                call.trigger_seq = trigger_seq
                call.started = perf_counter() - clock_start
                call.finished = None
                call.status = "running"
                call.emitted = 0
                call.error = None
                if on_start:
                    group.notify("handler_started", call)
            failure: WorkflowEvent | None = None
            if watchdog is not None and (expired := watchdog.start()):
                raise _timeout_stop(run, expired, name, item, started=False)
            try:
                # register() checked it is an async generator function.
                agen: AsyncGenerator[WorkflowEvent, None] = registration.handler(trigger)  # type: ignore[assignment]
            except Exception as exc:
                failure = handler_error(exc, "handler_error", name, trigger)
            else:
                # True while the consumer holds control: what is thrown in at the
                # `yield` is the consumer's, never the handler's failure.
                yielded = False
                try:
                    async for event in agen:
                        if watchdog is not None and (expired := watchdog.pause()):
                            raise _timeout_stop(run, expired, name, item)
                        if event.__class__ is not WorkflowEvent and not isinstance(
                            event, WorkflowEvent
                        ):
                            failure = invalid_event_error(event, name, trigger)
                            await close(agen, watchdog)
                            if watchdog is not None and watchdog.expired is not None:
                                # Its cleanup ran out of time.
                                raise _timeout_stop(run, watchdog.expired, name, item)
                            break
                        # run.emit(event, item, call, name), inlined: this runs per event.
                        seq += 1
                        info.events = seq + 1
                        emitted_name = event.name
                        if emitted_name == ERROR:
                            errors += 1
                            info.errors = errors
                        if call is not None:
                            call.emitted += 1
                        if noticing:
                            elapsed = perf_counter() - clock_start
                            if event_sinks:
                                # event_fields(emitted), inlined.
                                fields = (
                                    run_id,
                                    seq,
                                    trigger_seq,
                                    depth,
                                    emitted_name,
                                    name,
                                    event.error,
                                    elapsed,
                                    started_at,
                                    event.data,
                                    event.metadata,
                                )
                                for observer, event_sink in event_sinks:
                                    try:
                                        event_sink(fields)
                                    except Exception as exc:
                                        group.report(observer, "event_emitted", exc)
                            if on_event:
                                emitted = _new_emitted(
                                    EmittedEvent,
                                    (
                                        event,
                                        seq,
                                        trigger_seq,
                                        depth,
                                        name,
                                        elapsed,
                                        info,
                                        call,
                                    ),
                                )
                                # group.notify("event_emitted", emitted), inlined.
                                for observer, method in on_event:
                                    try:
                                        method(emitted)
                                    except Exception as exc:
                                        group.report(observer, "event_emitted", exc)
                        over = False
                        if emitted_name != PROGRESS:
                            count += 1
                            over = count > limit
                            if (found := route(emitted_name)) is not None and (
                                emitted_name != ERROR or trigger.name != ERROR
                            ):
                                if isinstance(found, tuple):
                                    run.enqueue(event, found, seq, depth, lineage)
                                else:
                                    queue.append((event, found, lineage, seq, depth))
                        yielded = True
                        yield event
                        yielded = False
                        if over:
                            raise Stop(
                                max_events_error(run.limit, item, event, name, queue),
                                "max_events",
                            )
                        if watchdog is not None and (expired := watchdog.resume()):
                            raise _timeout_stop(run, expired, name, item)
                except (Stop, ObserverWarning):
                    # A guard stopped the run, or an observer's warning is an error here
                    # (warnings filter): the handler is not to blame.
                    await close(agen, watchdog)
                    raise
                except Exception as exc:
                    if yielded:
                        await close(agen, watchdog)
                        raise
                    failure = handler_error(exc, "handler_error", name, trigger)
                except asyncio.CancelledError:
                    # The watchdog's own cancellation, or one from elsewhere, which wins.
                    timed_out = watchdog is not None and watchdog.expired is not None
                    await close(agen, watchdog)
                    if timed_out and watchdog and (expired := watchdog.claim_cancellation()):
                        raise _timeout_stop(run, expired, name, item) from None
                    raise
                except BaseException:
                    # The caller stopped or the task was interrupted while the handler
                    # was suspended: close it now so its `finally` runs.
                    await close(agen, watchdog)
                    raise
                if watchdog is not None and (expired := watchdog.pause()):
                    raise _timeout_stop(run, expired, name, item)
            if failure is not None:
                if call is not None:
                    call.error = failure.error
                    _finish(call, run, "error")
                run.seq, run.count, run.errors = seq, count, errors
                over = run.emit(failure, item, None, name, lineage)
                seq, count, errors = run.seq, run.count, run.errors
                yield failure
                if over:
                    raise Stop(
                        max_events_error(run.limit, item, failure, name, queue),
                        "max_events",
                    )
            if call is not None:
                if call.status == "running":
                    # _finish(call, run, "ok"), inlined: this runs once per handler step.
                    call.status = "ok"
                    call.finished = finished = perf_counter() - clock_start
                    if call_sinks:
                        # call_fields(call), inlined.
                        done = (
                            run_id,
                            name,
                            call.position,
                            trigger.name,
                            trigger_seq,
                            call.started,
                            finished,
                            call.emitted,
                            "ok",
                            None,
                        )
                        for observer, call_sink in call_sinks:
                            try:
                                call_sink(done)
                            except Exception as exc:
                                group.report(observer, "handler_finished", exc)
                    if on_finish:
                        group.notify("handler_finished", call)
                call = None
    except Stop as stop:
        status = stop.status
        if call is not None and call.status == "running":
            call.error = stop.event.error
            _finish(call, run, "timeout" if stop.status == "timeout" else "cancelled")
        run.seq, run.count, run.errors = seq, count, errors
        handler_name = stop.event.data["handler"]  # type: ignore[index]
        run.emit(stop.event, item, None, handler_name, None)
        seq, errors = run.seq, run.errors
        yield stop.event
    except GeneratorExit:
        status = "stopped"
        raise
    except BaseException:
        status = "cancelled"
        raise
    else:
        status = "error" if errors else "ok"
    finally:
        if watchdog is not None:
            watchdog.close()
        if call is not None and call.status == "running":
            _finish(call, run, "cancelled")
        info.status = status
        info.events = seq + 1
        info.errors = errors
        info.duration = run.elapsed()
        group.notify("run_finished", info)


def _timeout_stop(
    run: _Run, expired: Expiry, name: str, item: ObservedQueued, *, started: bool = True
) -> Stop:
    """The run's final event for a guard; ``started=False`` when the handler never began."""
    trigger: WorkflowEvent = item[0]
    if expired == "timeout":
        when = (
            "while handler {!r} was handling" if started else "before handler {!r} could start on"
        )
        message = f"run timed out after {run.elapsed():.3g} s {when.format(name)} {trigger.name!r}"
    else:
        message = f"handler {name!r} timed out while handling {trigger.name!r}"
    data = {"reason": expired, "handler": name, "event": trigger.name}
    return Stop(WorkflowEvent(ERROR, data, trigger.metadata, message), "timeout")


def _finish(call: HandlerCall, run: _Run, status: HandlerStatus) -> None:
    call.status = status
    call.finished = run.elapsed()
    run.group.finished(call)


_bare_call = object.__new__

_new_emitted = tuple.__new__
"""Makes an :class:`EmittedEvent` from a tuple of its fields without a Python-level call."""

_RUN_PREFIX = os.urandom(3).hex()
_run_numbers = itertools.count(1)


def _new_run_id() -> str:
    """A run id unique in this process and unlikely to clash across processes; cheap to make."""
    return f"{_RUN_PREFIX}-{next(_run_numbers)}"
