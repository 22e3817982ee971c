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

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from enum import Enum
from typing import Final, Self, TypeVar

from baxiflow._checks import check_limit
from baxiflow._engine import Engine
from baxiflow.event import WorkflowEvent
from baxiflow.observe import Observer, WorkflowObserver, as_observer
from baxiflow.registry import EventHandler, HandlerRegistration, Registry, check_handled_name

__all__ = ["DEFAULT_MAX_EVENTS", "WorkflowManager"]

DEFAULT_MAX_EVENTS: Final = 10_000
"""Default bound on the non-progress events of one run."""

H = TypeVar("H", bound=Callable[..., AsyncIterator[WorkflowEvent]])


class _Unset(Enum):
    UNSET = "UNSET"


_UNSET: Final = _Unset.UNSET


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
        name: The workflow's name, for observers and exporters (``RunInfo.workflow_name``);
            ``None`` to let them use the initial event's name.

    Each of ``max_events``, ``timeout`` and ``handler_timeout`` can be overridden for one
    run in :meth:`process`. A guard that trips ends the run with a final ``"error"`` event
    whose ``data["reason"]`` is ``"max_events"``, ``"timeout"`` or ``"handler_timeout"``.
    A handler that keeps ignoring its cancellation is left to go on in a task of its own
    (with a :class:`~baxiflow.exceptions.HandlerWarning`), so the run still ends.
    """

    __slots__ = ("_observers", "_registry", "handler_timeout", "max_events", "name", "timeout")

    def __init__(
        self,
        *,
        max_events: int | None = DEFAULT_MAX_EVENTS,
        timeout: float | None = None,
        handler_timeout: float | None = None,
        observers: Iterable[Observer] = (),
        name: str | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str or None, got {name!r}")
        self.name = name
        self._registry = Registry()
        self.max_events: int | None = check_limit("max_events", max_events, integer=True)
        self.timeout: float | None = check_limit("timeout", timeout, integer=False)
        self.handler_timeout: float | None = check_limit(
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
            EventNameError: ``event_name`` is not a non-empty string, or is ``"progress"``,
                whose events are never dispatched (a ``ValueError``).

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

        check_handled_name(event_name)  # now, so a mistake shows where it was made

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

    def process(
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

        Returns:
            An async generator of every event of the run, in emission order. Nothing runs
            until you iterate it.

        Raises:
            TypeError: ``initial_event`` is not a :class:`WorkflowEvent` (raised by the call
                itself, before any iteration).
            ValueError: A guard setting is not a positive number or ``None``.
        """
        if not isinstance(initial_event, WorkflowEvent):
            raise TypeError(
                f"process() takes a WorkflowEvent to start from, got {type(initial_event).__name__}"
            )
        limit = (
            self.max_events
            if max_events is _UNSET
            else check_limit("max_events", max_events, integer=True)
        )
        run_timeout = (
            self.timeout if timeout is _UNSET else check_limit("timeout", timeout, integer=False)
        )
        call_timeout = (
            self.handler_timeout
            if handler_timeout is _UNSET
            else check_limit("handler_timeout", handler_timeout, integer=False)
        )
        all_observers = (
            [*self._observers, *map(as_observer, observers)] if observers else self._observers
        )
        # Positional: this runs once per run, and keyword arguments cost more to pass.
        engine = Engine(
            self._registry.route,
            initial_event,
            limit,
            run_timeout,
            call_timeout,
            all_observers,
            None,
            self.name,
        )
        return engine.stream()
