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
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from enum import Enum
from typing import Any, Final, Literal, Self, TypeVar, cast

from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.observe import (
    EmittedEvent,
    HandlerCall,
    Observer,
    ObserverGroup,
    RunInfo,
    WorkflowObserver,
    as_observer,
)
from baxiflow.registry import EventHandler, HandlerRegistration, Registry

__all__ = ["DEFAULT_MAX_EVENTS", "WorkflowManager"]

DEFAULT_MAX_EVENTS: Final = 10_000
"""Default bound on the non-progress events of one run."""

_LINEAGE_KEPT = 32
"""Ancestor names kept per queued event: enough to name a cycle, bounded so memory stays flat."""

H = TypeVar("H", bound=Callable[..., AsyncIterator[WorkflowEvent]])


class _Unset(Enum):
    UNSET = "UNSET"


_UNSET: Final = _Unset.UNSET

# A queued event: (event, seq, depth, lineage of names, emitted while handling an error,
# its EmittedEvent when the run has observers). A tuple, because this is the hot path.
_Queued = tuple[WorkflowEvent, int, int, tuple[str, ...], bool, EmittedEvent | None]


def _check_limit(name: str, value: object, *, integer: bool) -> Any:
    if value is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        expected = "a positive int" if integer else "a positive number of seconds"
        raise ValueError(f"{name} must be {expected} or None (no limit), got {value!r}")
    return value


def _name_cycle(lineage: tuple[str, ...]) -> list[str]:
    """The repeating tail of ``lineage``: from the last name's previous occurrence to the end."""
    last = lineage[-1]
    for index in range(len(lineage) - 2, -1, -1):
        if lineage[index] == last:
            return list(lineage[index:])
    return []


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
        "deadline",
        "dispatchable",
        "group",
        "info",
        "max_events",
        "queue",
        "seq",
    )

    def __init__(
        self,
        info: RunInfo,
        group: ObserverGroup | None,
        max_events: int | None,
        deadline: float | None,
    ) -> None:
        self.info = info
        self.group = group
        self.max_events = max_events
        self.deadline = deadline
        self.queue: deque[_Queued] = deque()
        self.seq = -1
        self.dispatchable = 0
        self.clock_start = time.perf_counter()

    def emit(
        self,
        event: WorkflowEvent,
        parent: _Queued | None,
        call: HandlerCall | None,
        handler_name: str | None,
    ) -> tuple[str, ...] | None:
        """Number, count, observe and queue ``event``; return its lineage when it is over the limit."""
        self.seq += 1
        info = self.info
        info.events += 1
        name = event.name
        if name == ERROR:
            info.errors += 1
        if call is not None:
            call.emitted += 1
        depth = 0 if parent is None else parent[2] + 1
        emitted = None
        if self.group is not None:
            emitted = EmittedEvent(
                info,
                event,
                self.seq,
                None if parent is None else parent[1],
                depth,
                handler_name,
                call,
                time.perf_counter() - self.clock_start,
                time.time(),
            )
            self.group.notify("event_emitted", emitted)
        if name == PROGRESS:
            return None
        in_error = parent is not None and (parent[4] or parent[0].name == ERROR)
        lineage = (name,) if parent is None else (*parent[3][-_LINEAGE_KEPT + 1 :], name)
        if not (in_error and name == ERROR):
            self.queue.append((event, self.seq, depth, lineage, in_error, emitted))
        self.dispatchable += 1
        if self.max_events is not None and self.dispatchable > self.max_events:
            return lineage
        return None

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock_start


class WorkflowManager:
    """Registry of handlers and the engine that runs them.

    Args:
        max_events: Most non-progress events one run may emit (the initial event counts);
            past it the run ends with an error event naming the repeating chain of events.
            ``None`` for no limit.
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
        limit = self.max_events if max_events is _UNSET else max_events
        limit = _check_limit("max_events", limit, integer=True)
        run_timeout = self.timeout if timeout is _UNSET else timeout
        run_timeout = _check_limit("timeout", run_timeout, integer=False)
        call_timeout = self.handler_timeout if handler_timeout is _UNSET else handler_timeout
        call_timeout = _check_limit("handler_timeout", call_timeout, integer=False)
        all_observers = [*self._observers, *(as_observer(o) for o in observers)]
        group = ObserverGroup.of(all_observers) if all_observers else None

        info = RunInfo(uuid.uuid4().hex[:12], self, initial_event, time.time())
        loop = asyncio.get_running_loop()
        deadline = None if run_timeout is None else loop.time() + run_timeout
        timed = deadline is not None or call_timeout is not None
        run = _Run(info, group, limit, deadline)
        call: HandlerCall | None = None
        if group is not None:
            group.notify("run_started", info)
        try:
            run.emit(initial_event, None, None, None)
            yield initial_event
            queue = run.queue
            handlers_for = self._registry.handlers_for
            while queue:
                item = queue.popleft()
                trigger = item[0]
                for registration in handlers_for(trigger.name):
                    name = registration.name
                    if group is not None:
                        call = HandlerCall(
                            info,
                            registration.handler,
                            name,
                            registration.position,
                            item[5],  # type: ignore[arg-type]
                            run.elapsed(),
                        )
                        group.notify("handler_started", call)
                    failure: WorkflowEvent | None = None
                    try:
                        agen = cast(
                            AsyncGenerator[WorkflowEvent, None], registration.handler(trigger)
                        )
                        step = agen.__anext__
                    except Exception as exc:
                        failure = _handler_error(exc, "handler_error", name, trigger)
                    else:
                        budget = call_timeout
                        try:
                            while True:
                                try:
                                    if timed:
                                        event, budget = await _timed_step(
                                            step, run, budget, name, item, loop
                                        )
                                    else:
                                        event = await step()
                                except StopAsyncIteration:
                                    break
                                except _Stop:
                                    raise
                                except Exception as exc:
                                    failure = _handler_error(exc, "handler_error", name, trigger)
                                    break
                                if not isinstance(event, WorkflowEvent):
                                    failure = _invalid_event_error(event, name, trigger)
                                    break
                                over = run.emit(event, item, call, name)
                                yield event
                                if over is not None:
                                    raise _Stop(
                                        _max_events_error(run, over, name, trigger),
                                        "max_events",
                                        item,
                                    )
                        finally:
                            try:
                                await agen.aclose()
                            except Exception as exc:
                                # Only reached when the handler's own cleanup raises.
                                if failure is None:
                                    failure = _handler_error(exc, "handler_error", name, trigger)
                    if failure is not None:
                        if call is not None:
                            call.error = failure.error
                            _finish(call, run, "error")
                        over = run.emit(failure, item, None, name)
                        yield failure
                        if over is not None:
                            raise _Stop(
                                _max_events_error(run, over, name, trigger), "max_events", item
                            )
                    if call is not None:
                        if call.status == "running":
                            _finish(call, run, "ok")
                        call = None
        except _Stop as stop:
            info.status = stop.status
            if call is not None and call.status == "running":
                _finish(call, run, "timeout" if stop.status == "timeout" else "cancelled")
            run.emit(stop.event, stop.parent, None, stop.event.data["handler"])  # type: ignore[index]
            yield stop.event
        except GeneratorExit:
            info.status = "stopped"
            raise
        except BaseException:
            info.status = "cancelled"
            raise
        else:
            info.status = "error" if info.errors else "ok"
        finally:
            if call is not None and call.status == "running":
                _finish(call, run, "cancelled")
            info.duration = run.elapsed()
            if group is not None:
                group.notify("run_finished", info)


async def _timed_step(
    step: Callable[[], Awaitable[WorkflowEvent]],
    run: _Run,
    budget: float | None,
    name: str,
    item: _Queued,
    loop: asyncio.AbstractEventLoop,
) -> tuple[WorkflowEvent, float | None]:
    """One step of a handler under the run deadline and what is left of the handler's budget."""
    now = loop.time()
    handler_deadline = None if budget is None else now + budget
    run_first = run.deadline is not None and (
        handler_deadline is None or run.deadline <= handler_deadline
    )
    deadline = run.deadline if run_first else handler_deadline
    assert deadline is not None
    if deadline <= now:
        raise _timeout_stop(run, run_first, name, item)
    try:
        async with asyncio.timeout_at(deadline) as scope:
            event = await step()
    except TimeoutError:
        if scope.expired():
            raise _timeout_stop(run, run_first, name, item) from None
        raise
    if budget is not None:
        budget -= loop.time() - now
    return event, budget


def _timeout_stop(run: _Run, run_first: bool, name: str, item: _Queued) -> _Stop:
    trigger = item[0]
    if run_first:
        reason = "timeout"
        message = (
            f"run timed out after {run.elapsed():.3g} s while handler {name!r} "
            f"was handling {trigger.name!r}"
        )
    else:
        reason = "handler_timeout"
        message = f"handler {name!r} timed out while handling {trigger.name!r}"
    data = {"reason": reason, "handler": name, "event": trigger.name}
    return _Stop(WorkflowEvent(ERROR, data, trigger.metadata, message), "timeout", item)


def _handler_error(
    exc: BaseException, reason: str, name: str, trigger: WorkflowEvent
) -> WorkflowEvent:
    data = {"reason": reason, "type": type(exc).__name__, "handler": name, "event": trigger.name}
    message = str(exc) or type(exc).__name__
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


def _max_events_error(
    run: _Run, lineage: tuple[str, ...], name: str, trigger: WorkflowEvent
) -> WorkflowEvent:
    cycle = _name_cycle(lineage)
    if cycle:
        chain = f"repeating chain: {' -> '.join(cycle)}"
    else:
        chain = f"no repeating chain; handler {name!r} kept emitting ({' -> '.join(lineage)})"
    message = f"max_events ({run.max_events}) exceeded; {chain}"
    data = {
        "reason": "max_events",
        "limit": run.max_events,
        "cycle": cycle,
        "handler": name,
        "event": trigger.name,
    }
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


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
