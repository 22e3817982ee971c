"""Route events to handlers and stream every event back to the caller as it is emitted.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent.progress("greet", "Saying hello")
...     yield WorkflowEvent("completed", data={"text": f"Hello, {event.data['name']}!"})
>>> async def main():
...     return [event.name async for event in workflow.process(WorkflowEvent("start", {"name": "Ada"}))]
>>> asyncio.run(main())
['start', 'progress', 'completed']
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar

from baxiflow._deadline import Expiry, Watchdog
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.observe import (
    EmittedEvent,
    HandlerCall,
    Observer,
    ObserverGroup,
    RunInfo,
    RunStatus,
    WorkflowObserver,
    as_observer,
)
from baxiflow.registry import EventHandler, HandlerRegistration, Registry

if TYPE_CHECKING:
    from baxiflow.validate import ValidationReport

__all__ = ["DEFAULT_MAX_EVENTS", "WorkflowManager"]

DEFAULT_MAX_EVENTS: Final = 10_000
"""Default bound on the non-progress events of one run."""

_LINEAGE_KEPT = 32
"""Ancestor names a queued event keeps at least (and at most twice as many): enough history to
name a cycle, while a long chain holds only a bounded window."""

H = TypeVar("H", bound=Callable[..., AsyncIterator[WorkflowEvent]])


class _Unset(Enum):
    UNSET = "UNSET"


_UNSET: Final = _Unset.UNSET

# A queued event: (event, seq, depth, names, count, whether it is an error event, its handlers).
# Its lineage, oldest ancestor first, is names[:count]. A chain of events shares one names list,
# each child appending its own name; a second child of one parent copies the prefix instead, so
# lineages cost O(1) per event. A tuple, because this is the hot path.
_Queued = tuple[WorkflowEvent, int, int, list[str], int, bool, tuple[HandlerRegistration, ...]]


def _lineage(item: _Queued) -> tuple[str, ...]:
    """Names from the oldest ancestor kept down to the event of ``item``."""
    return tuple(item[3][: item[4]])


def _check_limit(name: str, value: object, *, integer: bool) -> Any:
    if value is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        expected = "a positive int" if integer else "a positive number of seconds"
        raise ValueError(f"{name} must be {expected} or None (no limit), got {value!r}")
    return value


def _name_cycle(lineage: tuple[str, ...]) -> list[str]:
    """The latest repeat in ``lineage``, e.g. ``['search', 'research', 'search']``; [] if none.

    >>> _name_cycle(("start", "search", "research", "search", "error"))
    ['search', 'research', 'search']
    """
    last_seen: dict[str, int] = {}
    latest: tuple[int, int] | None = None
    for index, name in enumerate(lineage):
        if name in last_seen:
            latest = (last_seen[name], index)
        last_seen[name] = index
    return [] if latest is None else list(lineage[latest[0] : latest[1] + 1])


class _Stop(Exception):
    """Internal: a guard ended the run; carries the final error event."""

    def __init__(
        self, event: WorkflowEvent, status: Literal["max_events", "timeout"], parent: _Queued
    ) -> None:
        super().__init__(event.error)
        self.event = event
        self.status = status
        self.parent = parent


class _Run:
    """The mutable state of one run; local to one ``process`` call, so runs stay isolated."""

    __slots__ = (
        "clock_start",
        "dispatchable",
        "errors",
        "group",
        "info",
        "lookup",
        "max_events",
        "on_event",
        "queue",
        "seq",
    )

    def __init__(
        self,
        info: RunInfo | None,
        group: ObserverGroup | None,
        max_events: int | None,
        lookup: Callable[[str, tuple[()]], tuple[HandlerRegistration, ...]],
    ) -> None:
        self.info = info
        self.lookup = lookup
        self.group = group
        self.max_events = max_events
        self.queue: deque[_Queued] = deque()
        self.seq = -1
        self.dispatchable = 0
        self.errors = 0
        self.on_event = () if group is None else group.listeners("event_emitted")
        self.clock_start = time.perf_counter()

    def emit(
        self,
        event: WorkflowEvent,
        parent: _Queued | None,
        call: HandlerCall | None,
        handler_name: str | None,
    ) -> bool:
        """Number, observe and queue ``event``; True when it takes the run over max_events.

        This runs once per event, so it is kept lean: only events with handlers are queued,
        together with those handlers (the registry is read when an event is emitted).
        """
        self.seq = seq = self.seq + 1
        name = event.name
        if name == ERROR:
            self.errors += 1
        if self.group is not None:
            info: RunInfo = self.info  # type: ignore[assignment]
            info.events = seq + 1
            info.errors = self.errors
            if call is not None:
                call.emitted += 1
            if self.on_event:
                elapsed = time.perf_counter() - self.clock_start
                emitted = EmittedEvent(
                    info,
                    event,
                    seq,
                    None if parent is None else parent[1],
                    0 if parent is None else parent[2] + 1,
                    handler_name,
                    call,
                    elapsed,
                    # One clock read: the wall time follows from the start's wall time.
                    info.started_at + elapsed,
                )
                for observer, method in self.on_event:
                    try:
                        method(emitted)
                    except Exception as exc:
                        self.group.report(observer, "event_emitted", exc)
        if name == PROGRESS:
            return False
        self.dispatchable = count = self.dispatchable + 1
        is_error = name == ERROR
        if is_error and parent is not None and parent[5]:
            # An error raised while handling an error is yielded, never dispatched again.
            handlers: tuple[HandlerRegistration, ...] = ()
        else:
            handlers = self.lookup(name, ())
        if handlers:
            if parent is None:
                depth, names, kept = 0, [], 0
            else:
                depth, names, kept = parent[2] + 1, parent[3], parent[4]
                if len(names) != kept or kept >= 2 * _LINEAGE_KEPT:
                    # A sibling already extended the shared list, or the window is full.
                    names = names[max(0, kept - _LINEAGE_KEPT) : kept]
                    kept = len(names)
            names.append(name)
            self.queue.append((event, seq, depth, names, kept + 1, is_error, handlers))
        return self.max_events is not None and count > self.max_events

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock_start


class WorkflowManager:
    """Registry of handlers and the engine that runs them.

    Args:
        max_events: Bound on the non-progress events of one run (the initial event counts):
            the event that goes past it is still yielded, then the run ends with an error
            event naming the repeating chain of events. ``None`` for no limit.
        timeout: Most seconds one run may last; ``None`` for no limit.
        handler_timeout: Most seconds one handler call may spend working (time the caller
            spends between events does not count); ``None`` for no limit.
        observers: Observers that see every run of this manager (see :mod:`baxiflow.observe`).

    Each of ``max_events``, ``timeout`` and ``handler_timeout`` can be overridden for one
    run in :meth:`process`. A guard that trips ends the run with a final ``"error"`` event
    whose ``data["reason"]`` is ``"max_events"``, ``"timeout"`` or ``"handler_timeout"``.
    """

    __slots__ = ("_observers", "_registry", "handler_timeout", "max_events", "timeout")

    def __init__(
        self,
        *,
        max_events: int | None = DEFAULT_MAX_EVENTS,
        timeout: float | None = None,
        handler_timeout: float | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        self._registry = Registry()
        self.max_events: int | None = _check_limit("max_events", max_events, integer=True)
        self.timeout: float | None = _check_limit("timeout", timeout, integer=False)
        self.handler_timeout: float | None = _check_limit(
            "handler_timeout", handler_timeout, integer=False
        )
        self._observers: list[WorkflowObserver] = [as_observer(o) for o in observers]

    def __repr__(self) -> str:
        events = ", ".join(
            f"{name!r}: {len(self._registry.handlers_for(name))}"
            for name in self._registry.event_names()
        )
        return f"<WorkflowManager handlers={{{events}}}>"

    # Registration -----------------------------------------------------------------

    def register(
        self, event_name: str, handler: EventHandler, *, emits: Iterable[str] | None = None
    ) -> Self:
        """Add ``handler`` for ``event_name``; handlers of one event run in registration order.

        Args:
            event_name: The event the handler receives.
            handler: An async generator function taking a :class:`WorkflowEvent`.
            emits: Optional names of the events the handler may yield (documentation for
                diagrams and validation; not enforced at run time).

        Returns:
            The manager itself, so registrations chain.

        Raises:
            HandlerTypeError: ``handler`` is not an async generator function (a ``TypeError``).
            EventNameError: ``event_name`` is not a non-empty string (a ``ValueError``).

        >>> async def a(event):
        ...     yield event
        >>> WorkflowManager().register("one", a).register("two", a)
        <WorkflowManager handlers={'one': 1, 'two': 1}>
        """
        self._registry.add(event_name, handler, emits=emits)
        return self

    def on(self, event_name: str, *, emits: Iterable[str] | None = None) -> Callable[[H], H]:
        """Decorator form of :meth:`register`; returns the handler unchanged.

        >>> workflow = WorkflowManager()
        >>> @workflow.on("start", emits=["done"])
        ... async def start(event):
        ...     yield WorkflowEvent("done")
        >>> workflow.handlers_for("start") == (start,)
        True
        """

        def decorate(handler: H) -> H:
            self._registry.add(event_name, handler, emits=emits)
            return handler

        return decorate

    def observe(self, observer: Observer) -> Self:
        """Attach an observer to every future run of this manager; chainable."""
        self._observers.append(as_observer(observer))
        return self

    # Introspection ----------------------------------------------------------------

    @property
    def observers(self) -> tuple[WorkflowObserver, ...]:
        """The manager-wide observers, in the order they are called."""
        return tuple(self._observers)

    @property
    def event_names(self) -> list[str]:
        """Event names that have handlers, in order of first registration."""
        return self._registry.event_names()

    def handlers_for(self, event_name: str) -> tuple[EventHandler, ...]:
        """The handlers of ``event_name`` in the order they run."""
        return tuple(r.handler for r in self._registry.handlers_for(event_name))

    def registrations(self, event_name: str | None = None) -> tuple[HandlerRegistration, ...]:
        """Full registration records (name, position, declared ``emits``), for tools.

        With ``event_name``, only that event's handlers, in the order they run.
        """
        if event_name is not None:
            return self._registry.handlers_for(event_name)
        return tuple(self._registry.all())

    def validate(
        self,
        start: str = "start",
        *,
        unreachable: bool = True,
        terminal: bool = True,
        cycles: bool = True,
        infer: bool = True,
    ) -> ValidationReport:
        """Check the registry before running it; see :func:`baxiflow.validate.validate`.

        >>> async def ask(event):
        ...     yield WorkflowEvent("answered")
        >>> WorkflowManager().register("start", ask).validate().ok
        True
        """
        from baxiflow.validate import validate

        return validate(
            self, start, unreachable=unreachable, terminal=terminal, cycles=cycles, infer=infer
        )

    # Running ----------------------------------------------------------------------

    async def process(
        self,
        initial_event: WorkflowEvent,
        *,
        max_events: int | _Unset | None = _UNSET,
        timeout: float | _Unset | None = _UNSET,
        handler_timeout: float | _Unset | None = _UNSET,
        observers: Iterable[Observer] = (),
    ) -> AsyncGenerator[WorkflowEvent, None]:
        """Run the workflow from ``initial_event``, yielding every event as it is emitted.

        The initial event comes first. Events are dispatched first in, first out; the
        handlers of one event run one after another. Progress events are yielded only;
        error events are also dispatched to ``"error"`` handlers (an error raised while
        handling an error is yielded but not dispatched again). A handler that raises or
        yields a non-event produces an error event and the run goes on. The stream always
        ends: guards end it with a final error event.

        Stopping early (``break``, ``aclose()``, cancellation) closes the running
        handler's generator so its ``finally`` runs; wrap the call in
        ``contextlib.aclosing`` to make that happen at once rather than at garbage collection.

        Args:
            initial_event: The event to start from.
            max_events: Overrides the manager's ``max_events`` for this run.
            timeout: Overrides the manager's ``timeout`` for this run.
            handler_timeout: Overrides the manager's ``handler_timeout`` for this run.
            observers: Extra observers for this run only, after the manager's own.

        Yields:
            Every event of the run, in emission order.
        """
        if not isinstance(initial_event, WorkflowEvent):
            raise TypeError(
                f"process() takes a WorkflowEvent to start from, got {type(initial_event).__name__}"
            )
        limit = (
            self.max_events
            if max_events is _UNSET
            else _check_limit("max_events", max_events, integer=True)
        )
        run_timeout = (
            self.timeout if timeout is _UNSET else _check_limit("timeout", timeout, integer=False)
        )
        call_timeout = (
            self.handler_timeout
            if handler_timeout is _UNSET
            else _check_limit("handler_timeout", handler_timeout, integer=False)
        )
        all_observers = (
            [*self._observers, *map(as_observer, observers)] if observers else self._observers
        )
        group = ObserverGroup(all_observers) if all_observers else None

        # Only observers see the RunInfo: a run without them skips making one.
        info = None if group is None else RunInfo(_new_run_id(), self, initial_event, time.time())
        watchdog = None
        if run_timeout is not None or call_timeout is not None:
            loop = asyncio.get_running_loop()
            deadline = None if run_timeout is None else loop.time() + run_timeout
            watchdog = Watchdog(loop, deadline, call_timeout)
        run = _Run(info, group, limit, self._registry.lookup)
        call: HandlerCall | None = None
        status: RunStatus = "running"
        announce_start = False
        if group is not None:
            announce_start = bool(group.listeners("handler_started"))
            group.notify("run_started", info)
        try:
            run.emit(initial_event, None, None, None)
            yield initial_event
            queue = run.queue
            while queue:
                item = queue.popleft()
                trigger = item[0]
                for registration in item[6]:
                    name = registration.name
                    if group is not None:
                        call = HandlerCall(
                            info,  # type: ignore[arg-type]
                            registration.handler,
                            name,
                            registration.position,
                            trigger,
                            item[1],
                            time.perf_counter() - run.clock_start,
                        )
                        if announce_start:
                            group.notify("handler_started", call)
                    failure: WorkflowEvent | None = None
                    if watchdog is not None and (expired := watchdog.start()):
                        raise _timeout_stop(run, expired, name, item)
                    try:
                        # register() checked it is an async generator function.
                        agen: AsyncGenerator[WorkflowEvent, None] = registration.handler(trigger)  # type: ignore[assignment]
                    except Exception as exc:
                        failure = _handler_error(exc, "handler_error", name, trigger)
                    else:
                        # True while the consumer holds control: what is thrown in at the
                        # `yield` is the consumer's, never the handler's failure.
                        yielded = False
                        try:
                            async for event in agen:
                                if watchdog is not None and (expired := watchdog.pause()):
                                    raise _timeout_stop(run, expired, name, item)
                                if not isinstance(event, WorkflowEvent):
                                    failure = _invalid_event_error(event, name, trigger)
                                    await _close(agen)
                                    break
                                over = run.emit(event, item, call, name)
                                yielded = True
                                yield event
                                yielded = False
                                if over:
                                    raise _Stop(
                                        _max_events_error(run, item, event, name),
                                        "max_events",
                                        item,
                                    )
                                if watchdog is not None and (expired := watchdog.resume()):
                                    raise _timeout_stop(run, expired, name, item)
                        except _Stop:
                            await _close(agen, watchdog)
                            raise
                        except Exception as exc:
                            if yielded:
                                await _close(agen)
                                raise
                            failure = _handler_error(exc, "handler_error", name, trigger)
                        except asyncio.CancelledError:
                            await _close(agen, watchdog)
                            if watchdog is not None and (expired := watchdog.claim_cancellation()):
                                raise _timeout_stop(run, expired, name, item) from None
                            raise
                        except BaseException:
                            # The caller stopped or the task was interrupted while the handler
                            # was suspended: close it now so its `finally` runs.
                            await _close(agen)
                            raise
                        if watchdog is not None and (expired := watchdog.pause()):
                            raise _timeout_stop(run, expired, name, item)
                    if failure is not None:
                        if call is not None:
                            call.error = failure.error
                            _finish(call, run, "error")
                        over = run.emit(failure, item, None, name)
                        yield failure
                        if over:
                            raise _Stop(
                                _max_events_error(run, item, failure, name), "max_events", item
                            )
                    if call is not None:
                        if call.status == "running":
                            _finish(call, run, "ok")
                        call = None
        except _Stop as stop:
            status = stop.status
            if call is not None and call.status == "running":
                call.error = stop.event.error
                _finish(call, run, "timeout" if stop.status == "timeout" else "cancelled")
            run.emit(stop.event, stop.parent, None, stop.event.data["handler"])  # type: ignore[index]
            yield stop.event
        except GeneratorExit:
            status = "stopped"
            raise
        except BaseException:
            status = "cancelled"
            raise
        else:
            status = "error" if run.errors else "ok"
        finally:
            if watchdog is not None:
                watchdog.close()
            if call is not None and call.status == "running":
                _finish(call, run, "cancelled")
            if group is not None:
                assert info is not None
                info.status = status
                info.events = run.seq + 1
                info.errors = run.errors
                info.duration = run.elapsed()
                group.notify("run_finished", info)


def _timeout_stop(run: _Run, expired: Expiry, name: str, item: _Queued) -> _Stop:
    trigger = item[0]
    if expired == "timeout":
        message = (
            f"run timed out after {run.elapsed():.3g} s while handler {name!r} "
            f"was handling {trigger.name!r}"
        )
    else:
        message = f"handler {name!r} timed out while handling {trigger.name!r}"
    data = {"reason": expired, "handler": name, "event": trigger.name}
    return _Stop(WorkflowEvent(ERROR, data, trigger.metadata, message), "timeout", item)


def _handler_error(
    exc: BaseException, reason: str, name: str, trigger: WorkflowEvent
) -> WorkflowEvent:
    data = {"reason": reason, "type": type(exc).__name__, "handler": name, "event": trigger.name}
    message = str(exc) or type(exc).__name__
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


def _max_events_error(run: _Run, parent: _Queued, last: WorkflowEvent, name: str) -> WorkflowEvent:
    lineage = (*_lineage(parent), last.name)
    # The event that crossed the limit may sit on a branch that does not loop (a fan-out
    # beside the real cycle); the events still queued show the loop then.
    candidates = itertools.chain((lineage,), (_lineage(item) for item in run.queue))
    cycle = next((c for c in map(_name_cycle, candidates) if c), [])
    if cycle:
        chain = f"repeating chain: {' -> '.join(cycle)}"
    else:
        chain = f"no repeating chain; handler {name!r} kept emitting ({' -> '.join(lineage)})"
    trigger = parent[0]
    data = {
        "reason": "max_events",
        "limit": run.max_events,
        "cycle": cycle,
        "handler": name,
        "event": trigger.name,
    }
    message = f"max_events ({run.max_events}) exceeded; {chain}"
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


async def _close(
    agen: AsyncGenerator[WorkflowEvent, None], watchdog: Watchdog | None = None
) -> None:
    """Close a handler's generator so its ``finally`` runs.

    After a timeout its cleanup gets cancelled until it ends, so it cannot hang the run.
    """
    if watchdog is not None and watchdog.expired is not None:
        await watchdog.close_expired(agen)
        if watchdog.claim_cancellation() is None:
            # Cancelled from elsewhere too while closing: that cancellation wins.
            raise asyncio.CancelledError
        return
    # A handler whose cleanup raises while it is being stopped: the reason it is being
    # stopped is what propagates; its own cleanup error has nowhere to go.
    with contextlib.suppress(Exception):
        await agen.aclose()


_RUN_PREFIX = os.urandom(3).hex()
_run_numbers = itertools.count(1)


def _new_run_id() -> str:
    """A run id unique in this process and unlikely to clash across processes; cheap to make."""
    return f"{_RUN_PREFIX}-{next(_run_numbers)}"


def _invalid_event_error(value: object, name: str, trigger: WorkflowEvent) -> WorkflowEvent:
    problem = TypeError(
        f"handler {name!r} yielded {type(value).__name__} {value!r:.80}; "
        "handlers must yield WorkflowEvent objects"
    )
    return _handler_error(problem, "invalid_event", name, trigger)


def _finish(call: HandlerCall, run: _Run, status: Any) -> None:
    call.status = status
    call.finished = run.elapsed()
    group = run.group
    if group is not None:
        group.notify("handler_finished", call)
