"""Which handlers serve which event: validation, naming and the ordered registry.

>>> from baxiflow.registry import Registry
>>> async def greet(event):
...     yield event
>>> registry = Registry()
>>> registration = registry.add("start", greet, emits=["greeted"])
>>> [(r.event_name, r.name, r.position, r.emits) for r in registry.all()]
[('start', 'greet', 0, ('greeted',))]
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard

from baxiflow.event import PROGRESS, WorkflowEvent, check_event_name
from baxiflow.exceptions import EventNameError, HandlerTypeError
from baxiflow.retry import Retry

__all__ = ["EventHandler", "HandlerRegistration", "Registry", "check_handler", "handler_name"]

EventHandler: TypeAlias = Callable[[WorkflowEvent], AsyncIterator[WorkflowEvent]]
"""An async generator function taking the event it handles and yielding events."""


def handler_name(handler: Callable[..., Any]) -> str:
    """A readable, qualified name for ``handler``.

    Functions and methods give their ``__qualname__``; partials name the function they wrap;
    other callable objects give their class's qualified name.

    >>> async def search(event):
    ...     yield event
    >>> handler_name(search)
    'search'
    >>> handler_name(functools.partial(search))
    'search'
    """
    while isinstance(handler, functools.partial):
        handler = handler.func
    name = getattr(handler, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(handler).__qualname__


def _is_async_generator_callable(handler: object) -> TypeGuard[EventHandler]:
    if inspect.isasyncgenfunction(handler):
        return True
    return (
        callable(handler)
        and not inspect.isroutine(handler)
        and inspect.isasyncgenfunction(type(handler).__call__)
    )


def _check_takes_the_event(handler: Callable[..., Any]) -> None:
    """Raise unless ``handler`` can be called with the event as its one positional argument."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # not introspectable: the run will tell
    try:
        signature.bind(None)
    except TypeError:
        raise HandlerTypeError(
            f"handler {handler_name(handler)!r} must take the event as its one positional "
            f"argument; its signature is {signature}"
        ) from None


def check_handler(handler: object) -> EventHandler:
    """Return ``handler`` if it is an async generator function, else raise a ``TypeError``.

    Objects whose ``__call__`` is an async generator function are accepted too.

    >>> async def plain(event):
    ...     return event
    >>> check_handler(plain)
    Traceback (most recent call last):
    ...
    baxiflow.exceptions.HandlerTypeError: handler 'plain' is a coroutine function; expected an async generator function (an `async def` that uses `yield`)
    """
    if _is_async_generator_callable(handler):
        _check_takes_the_event(handler)
        return handler
    if inspect.iscoroutinefunction(handler):
        kind = "a coroutine function"
    elif inspect.isgeneratorfunction(handler):
        kind = "a sync generator function"
    elif callable(handler):
        kind = "a callable that is not an async generator function"
    else:
        kind = f"not callable (a {type(handler).__name__})"
    name = handler_name(handler) if callable(handler) else repr(handler)
    raise HandlerTypeError(
        f"handler {name!r} is {kind}; expected an async generator function "
        "(an `async def` that uses `yield`)"
    )


@dataclass(frozen=True, slots=True)
class HandlerRegistration:
    """One handler registered for one event name.

    Attributes:
        event_name: The event it handles.
        handler: The handler.
        name: Its qualified name.
        position: Its place in the sequence of that event's handlers (0 runs first).
        emits: Event names it declared it emits, or ``None`` when it declared nothing.
        concurrency: Most calls of it running at once in a run; ``None`` for no own limit.
        sequential: Whether its calls wait for the handlers registered before it on the
            same event to end (they always do at ``concurrency=1``).
        retry: How a failing call of it is retried; ``None`` for the manager's default.
    """

    event_name: str
    handler: EventHandler
    name: str
    position: int
    emits: tuple[str, ...] | None = None
    concurrency: int | None = None
    sequential: bool = True
    retry: Retry | None = None


Route: TypeAlias = HandlerRegistration | tuple[HandlerRegistration, ...]
"""Where an event goes: its one registration, or a tuple of two or more in order."""


def check_handled_name(event_name: object) -> str:
    """Return ``event_name`` if handlers may be registered for it, else raise ``EventNameError``.

    >>> check_handled_name("progress")
    Traceback (most recent call last):
    ...
    baxiflow.exceptions.EventNameError: progress events are never dispatched to handlers, so a handler registered for "progress" would never run; to act on progress, pass an observer: process(event, observers=[callback])
    """
    if callable(event_name):
        raise EventNameError(
            f"expected an event name, got the callable {event_name!r}; "
            'write @workflow.on("name"), with the event name in parentheses'
        )
    name = check_event_name(event_name)
    if name == PROGRESS:
        raise EventNameError(
            "progress events are never dispatched to handlers, so a handler registered for "
            '"progress" would never run; to act on progress, pass an observer: '
            "process(event, observers=[callback])"
        )
    return name


def _check_call_options(name: str, concurrency: object, sequential: object, retry: object) -> None:
    """Raise for a per-handler option that is not what :meth:`Registry.add` takes."""
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ValueError(
            f"handler {name!r}: concurrency must be a positive int (most calls at once) or "
            f"None, got {concurrency!r}"
        )
    if not isinstance(sequential, bool):
        raise TypeError(f"handler {name!r}: sequential must be True or False, got {sequential!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(
            f"handler {name!r}: retry must be a baxiflow.Retry, e.g. Retry(attempts=3), "
            f"or None, got {retry!r}"
        )


class Registry:
    """Handlers per event name, in registration order."""

    __slots__ = ("_by_event", "_routes", "retrying", "route")

    def __init__(self) -> None:
        self._by_event: dict[str, tuple[HandlerRegistration, ...]] = {}
        self._routes: dict[str, Route] = {}
        self.retrying = False
        """Whether some registration has a retry policy of its own."""
        self.route: Callable[[str], Route | None] = self._routes.get
        """``route(event_name)``: the event's :data:`Route`, ``None`` without handlers.

        The form the run loop uses: most events have one handler, which it runs without
        iterating a tuple.
        """

    def __getstate__(self) -> tuple[Any, ...]:
        """What ``pickle`` and ``copy`` keep; :attr:`route` is made again from it."""
        return self._by_event, self._routes, self.retrying

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._by_event, self._routes, self.retrying = state
        self.route = self._routes.get

    def add(
        self,
        event_name: str,
        handler: object,
        *,
        emits: Iterable[str] | None = None,
        concurrency: int | None = None,
        sequential: bool = True,
        retry: Retry | None = None,
    ) -> HandlerRegistration:
        """Validate and append ``handler`` to the handlers of ``event_name``."""
        check_handled_name(event_name)
        checked = check_handler(handler)
        _check_call_options(handler_name(checked), concurrency, sequential, retry)
        declared = None
        if emits is not None:
            if isinstance(emits, str):
                raise TypeError(
                    f"emits must be a list of event names, got the string {emits!r}; "
                    f"write emits=[{emits!r}]"
                )
            declared = tuple(check_event_name(name) for name in emits)
        current = self._by_event.get(event_name, ())
        registration = HandlerRegistration(
            event_name, checked, handler_name(checked), len(current), declared,
            concurrency, sequential, retry,
        )  # fmt: skip
        self.retrying = self.retrying or retry is not None
        # A new tuple each time: runs iterating the old one are never disturbed.
        registrations = self._by_event[event_name] = (*current, registration)
        self._routes[event_name] = registrations if current else registration
        return registration

    def handlers_for(self, event_name: str) -> tuple[HandlerRegistration, ...]:
        """The registrations for ``event_name`` in the order they run (empty if none)."""
        return self._by_event.get(event_name, ())

    def event_names(self) -> list[str]:
        """Event names with at least one handler, in order of first registration."""
        return list(self._by_event)

    def all(self) -> Iterator[HandlerRegistration]:
        """Every registration, grouped by event in order of first registration."""
        for registrations in self._by_event.values():
            yield from registrations
