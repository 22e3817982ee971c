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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

from baxiflow.event import WorkflowEvent

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
    "running",
    "waiting",
    "ok",
    "error",
    "max_events",
    "timeout",
    "log_failed",
    "stopped",
    "cancelled",
]
"""Where a run stands, and how it ended.

``running``, or ``waiting`` while its queue is empty and it waits for answers to its
requests for input (or other events from outside), until it ends.

``ok``: no error event; ``error``: it ended on its own with error events along the way;
``max_events`` / ``timeout``: a guard ended it (its final event says why);
``log_failed``: its durable log could not be written (see :mod:`baxiflow.store`);
``stopped``: the caller stopped iterating early; ``cancelled``: the task was cancelled
or interrupted; ``waiting``: it was stopped or cancelled while it waited for answers (a
durable run goes on with ``workflow.resume(run_id, store, answers=[...])``).
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
        workflow_name: ``WorkflowManager(name=...)``, or ``None`` when the manager has none.
        status: ``"running"`` (``"waiting"`` while it waits for answers) until the run
            ends, then a :data:`RunStatus`.
        events: Events emitted so far, the initial one and progress events included.
        errors: Error events emitted so far.
        duration: Seconds from start to end; ``None`` while running.
    """

    run_id: str
    initial_event: WorkflowEvent
    started_at: float
    workflow_name: str | None = None
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
        attempt: Which attempt of a retried call this is (1 for the first, and for a call
            never retried); each attempt is a call of its own.
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
    attempt: int = 1

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

    def run_idle(self, run: RunInfo, ending: bool) -> None:
        """Called when the run's queue is empty: it ends now (``ending``), or it waits for
        events from outside (``run.status`` is ``"waiting"``: answers to its requests for
        input). An exporter or a durable log can commit here, while the run can still
        report a failure with its final event."""

    def run_finished(self, run: RunInfo) -> None:
        """Called once when the run ends, however it ended; ``run.status`` says how."""


Observer: TypeAlias = WorkflowObserver | Callable[[EmittedEvent], object]
"""What ``observers=`` accepts: a :class:`WorkflowObserver` or a callable taking an event."""


class _CallableObserver(WorkflowObserver):
    """A plain callable observer, as :func:`as_observer` wraps it."""

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
