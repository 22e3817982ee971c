"""Observers: callbacks that see every event of a run, with its context.

An observer is either a plain callable, which receives each :class:`EmittedEvent`,
or a :class:`WorkflowObserver` subclass, which also hears about runs and handler calls.
Observers only read: the manager never waits for them and an observer that raises is
reported once as an :class:`~baxiflow.exceptions.ObserverWarning`, never breaking the run.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> async def hello(event):
...     yield WorkflowEvent("done")
>>> seen = []
>>> workflow = WorkflowManager().register("start", hello)
>>> async def main():
...     async for _ in workflow.process(WorkflowEvent("start"), observers=[seen.append]):
...         pass
>>> asyncio.run(main())
>>> [(e.seq, e.event.name, e.handler_name, e.parent_seq) for e in seen]
[(0, 'start', None, None), (1, 'done', 'hello', 0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

from baxiflow._recording import CallFields, EventFields, call_fields, event_fields
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import ObserverWarning, warn_from_caller

__all__ = [
    "EmittedEvent",
    "HandlerCall",
    "HandlerStatus",
    "Observer",
    "RunInfo",
    "RunStatus",
    "WorkflowObserver",
]

RunStatus: TypeAlias = Literal[
    "running", "ok", "error", "max_events", "timeout", "stopped", "cancelled"
]
"""How a run ended.

``ok``: no error event; ``error``: it ended on its own with error events along the way;
``max_events`` / ``timeout``: a guard ended it (its final event says why);
``stopped``: the caller stopped iterating early; ``cancelled``: the task was cancelled
or interrupted.
"""

HandlerStatus: TypeAlias = Literal["running", "ok", "error", "timeout", "cancelled"]
"""How one handler call ended. ``cancelled`` covers an early stop of the whole run."""


@dataclass(slots=True, eq=False)
class RunInfo:
    """One run of :meth:`WorkflowManager.process`, as observers see it.

    Attributes:
        run_id: Unique id of the run.
        initial_event: The event the run started from.
        started_at: Wall-clock start, seconds since the epoch.
        status: ``"running"`` until the run ends, then a :data:`RunStatus`.
        events: Events emitted so far, the initial one and progress events included.
        errors: Error events emitted so far.
        duration: Seconds from start to end; ``None`` while running.
    """

    run_id: str
    initial_event: WorkflowEvent
    started_at: float
    status: RunStatus = "running"
    events: int = 0
    errors: int = 0
    duration: float | None = None


@dataclass(slots=True, eq=False)
class HandlerCall:
    """One invocation of a handler on one event.

    Attributes:
        run: The run it belongs to.
        handler: The handler callable.
        handler_name: Its qualified name.
        position: Its place among the handlers of ``trigger``'s event (0 first).
        trigger: The event it handles.
        trigger_seq: That event's ``seq`` in the run.
        started: Seconds since the run started.
        finished: Seconds since the run started when it ended; ``None`` while running.
        status: ``"running"``, then a :data:`HandlerStatus`.
        emitted: Events it yielded (for a failed call, the error event is not counted).
        error: The message when it raised or timed out.
    """

    run: RunInfo
    handler: Callable[..., Any]
    handler_name: str
    position: int
    trigger: WorkflowEvent
    trigger_seq: int
    started: float
    finished: float | None = None
    status: HandlerStatus = "running"
    emitted: int = 0
    error: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds the call lasted, or ``None`` while it runs."""
        return None if self.finished is None else self.finished - self.started


class EmittedEvent(NamedTuple):
    """An event together with where it came from.

    A named tuple: read-only, and cheap for the manager to make once per event.

    Attributes:
        event: The event itself.
        seq: Its number in the run; the initial event is 0.
        parent_seq: ``seq`` of the event whose handler emitted it; ``None`` for the initial event.
        depth: Causal depth: 0 for the initial event, parent's depth + 1 otherwise.
        handler_name: Qualified name of the handler that emitted it (or that failed,
            for an error event the manager made); ``None`` for the initial event and
            for guard errors raised between handlers.
        elapsed: Seconds since the run started (monotonic clock).
        run: The run it belongs to.
        call: The handler call that emitted it, when there is one.
    """

    event: WorkflowEvent
    seq: int
    parent_seq: int | None
    depth: int
    handler_name: str | None
    elapsed: float
    run: RunInfo
    call: HandlerCall | None

    @property
    def timestamp(self) -> float:
        """Wall-clock time, seconds since the epoch: the run's start plus :attr:`elapsed`."""
        return self.run.started_at + self.elapsed


class WorkflowObserver:
    """Base class for observers that want more than events; override what you need.

    >>> class CountCalls(WorkflowObserver):
    ...     def __init__(self):
    ...         self.calls = 0
    ...     def handler_finished(self, call):
    ...         self.calls += 1
    """

    def run_started(self, run: RunInfo) -> None:
        """Called once, before the initial event is emitted."""

    def event_emitted(self, emitted: EmittedEvent) -> None:
        """Called for every event, before the caller of ``process`` receives it."""

    def handler_started(self, call: HandlerCall) -> None:
        """Called when a handler is about to run."""

    def handler_finished(self, call: HandlerCall) -> None:
        """Called when a handler has ended, however it ended."""

    def run_finished(self, run: RunInfo) -> None:
        """Called once when the run ends, however it ended; ``run.status`` says how."""


Observer: TypeAlias = WorkflowObserver | Callable[[EmittedEvent], object]
"""What ``observers=`` accepts: a :class:`WorkflowObserver` or a callable taking an event."""


class _CallableObserver(WorkflowObserver):
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[EmittedEvent], object]) -> None:
        self.callback = callback

    def event_emitted(self, emitted: EmittedEvent) -> None:
        self.callback(emitted)


def as_observer(observer: Observer) -> WorkflowObserver:
    """Return ``observer`` as a :class:`WorkflowObserver`, wrapping a plain callable."""
    if isinstance(observer, WorkflowObserver):
        return observer
    if isinstance(observer, type) and issubclass(observer, WorkflowObserver):
        raise TypeError(
            f"observer {observer.__name__} is a class; pass an instance: {observer.__name__}()"
        )
    if callable(observer):
        return _CallableObserver(observer)
    raise TypeError(
        f"observer {observer!r} is neither a WorkflowObserver nor a callable taking an EmittedEvent"
    )


def _listener(observer: WorkflowObserver, hook: str) -> Callable[[Any], object]:
    """What to call for ``hook``: a plain callable's own self, without its wrapper's frame."""
    if hook == "event_emitted" and isinstance(observer, _CallableObserver):
        return observer.callback
    method: Callable[[Any], object] = getattr(observer, hook)
    return method


_HOOKS = ("run_started", "event_emitted", "handler_started", "handler_finished", "run_finished")


class ObserverGroup:
    """The observers of one run; calls each safely and warns once per failing observer.

    Each hook keeps only the observers that override it, so an observer pays nothing for the
    hooks it does not use. A recorder's sinks (see :mod:`baxiflow._recording`) take the
    place of its ``event_emitted`` and ``handler_finished``.
    """

    __slots__ = ("_hooks", "_warned", "call_sinks", "event_sinks", "observers", "tracks_calls")

    def __init__(self, observers: Iterable[WorkflowObserver]) -> None:
        self.observers = tuple(observers)
        self._warned: set[int] = set()
        event_sinks: list[tuple[WorkflowObserver, Callable[[EventFields], object]]] = []
        call_sinks: list[tuple[WorkflowObserver, Callable[[CallFields], object]]] = []
        sunk: dict[str, set[int]] = {"event_emitted": set(), "handler_finished": set()}
        for observer in self.observers:
            # Looked up on the class, so an observer answering every attribute offers none.
            offer = getattr(type(observer), "_recording_sinks", None)
            if offer is None:
                continue
            event_sink, call_sink = offer(observer)
            if event_sink is not None:
                event_sinks.append((observer, event_sink))
                sunk["event_emitted"].add(id(observer))
            if call_sink is not None:
                call_sinks.append((observer, call_sink))
                sunk["handler_finished"].add(id(observer))
        self.event_sinks = tuple(event_sinks)
        self.call_sinks = tuple(call_sinks)
        self.tracks_calls = False
        self._hooks: dict[str, tuple[tuple[WorkflowObserver, Callable[[Any], object]], ...]] = {
            hook: tuple(
                (observer, _listener(observer, hook))
                for observer in self.observers
                if getattr(type(observer), hook) is not getattr(WorkflowObserver, hook)
                and id(observer) not in sunk.get(hook, ())
            )
            for hook in _HOOKS
        }
        # Handler calls are made only for observers that can see them.
        self.tracks_calls = bool(
            self.event_sinks
            or self.call_sinks
            or any(self._hooks[hook] for hook in _HOOKS if hook.startswith(("handler", "event")))
        )

    def listeners(self, hook: str) -> tuple[tuple[WorkflowObserver, Callable[[Any], object]], ...]:
        """``(observer, bound method)`` for each observer that overrides ``hook``."""
        return self._hooks[hook]

    def notify(self, hook: str, argument: object) -> None:
        for observer, method in self._hooks[hook]:
            try:
                method(argument)
            except Exception as exc:
                self.report(observer, hook, exc)

    def emitted(self, emitted: EmittedEvent) -> None:
        """Tell every observer of events, sinks included, about ``emitted``."""
        if self.event_sinks:
            self._sink(self.event_sinks, "event_emitted", event_fields(emitted))
        self.notify("event_emitted", emitted)

    def finished(self, call: HandlerCall) -> None:
        """Tell every observer of handler calls, sinks included, that ``call`` ended."""
        if self.call_sinks:
            self._sink(self.call_sinks, "handler_finished", call_fields(call))
        self.notify("handler_finished", call)

    def _sink(
        self,
        sinks: tuple[tuple[WorkflowObserver, Callable[[Any], object]], ...],
        hook: str,
        fields: tuple[Any, ...],
    ) -> None:
        for observer, sink in sinks:
            try:
                sink(fields)
            except Exception as exc:
                self.report(observer, hook, exc)

    def report(self, observer: WorkflowObserver, method: str, exc: Exception) -> None:
        """Warn, once per observer and run, that ``observer`` raised ``exc`` in ``method``."""
        if id(observer) in self._warned:
            return
        self._warned.add(id(observer))
        target = observer.callback if isinstance(observer, _CallableObserver) else observer
        warn_from_caller(
            f"observer {target!r} raised in {method}: {type(exc).__name__}: {exc}; "
            "the run goes on (further errors of this observer in this run are not reported)",
            ObserverWarning,
        )
