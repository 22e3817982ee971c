"""The contract between the run loop and a recorder: an observer that keeps rows, not objects.

A recorder keeps one entry per event and one per handler call, for as long as it lives.
Hearing of them through :meth:`WorkflowObserver.event_emitted` would cost it an
:class:`EmittedEvent` and a Python-level call per event, and keeping those objects would
give the garbage collector more to scan on every full collection. So a :class:`Recorder`
offers *sinks* through :meth:`Recorder.recording_sinks`: callables that the run loop hands
:data:`EventFields` in place of calling ``event_emitted``, and :data:`CallFields` in place of
calling ``handler_finished``. Both are plain tuples of final values, made fresh for each
call, so a sink may be a C-level method such as ``list.extend``. A recorder hears events in
observer order like any other observer, and a failing sink is reported like a failing
observer. A subclass that overrides ``event_emitted`` or ``handler_finished`` is called
through that hook instead of the matching sink.

The column order is :data:`EVENT_COLUMNS` and :data:`CALL_COLUMNS`.

>>> from baxiflow.event import WorkflowEvent
>>> from baxiflow.observe import EmittedEvent, RunInfo
>>> run = RunInfo("r-1", WorkflowEvent("start"), 1000.0)
>>> emitted = EmittedEvent(WorkflowEvent("done", {"x": 1}), 1, 0, 1, "greet", 0.5, run, None)
>>> event_fields(*emitted)
('r-1', 1, 0, 1, 'done', 'greet', None, 0.5, 1000.0, {'x': 1}, None)
>>> dict(zip(EVENT_COLUMNS, event_fields(*emitted)))["handler_name"]
'greet'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from baxiflow.event import WorkflowEvent
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, WorkflowObserver

if TYPE_CHECKING:
    pass

__all__ = [
    "CALL_COLUMNS",
    "CALL_WIDTH",
    "EVENT_COLUMNS",
    "EVENT_WIDTH",
    "CallFields",
    "EventFields",
    "Recorder",
    "Sinks",
    "call_fields",
    "event_fields",
]

EVENT_COLUMNS: Final = (
    "run_id",
    "seq",
    "parent_seq",
    "depth",
    "name",
    "handler_name",
    "error",
    "elapsed",
    "started_at",
    "data",
    "metadata",
)
"""What :data:`EventFields` holds, in order: the event's place in its run, then the event."""

EVENT_WIDTH: Final = len(EVENT_COLUMNS)

CALL_COLUMNS: Final = (
    "run_id",
    "handler_name",
    "position",
    "event",
    "trigger_seq",
    "started",
    "finished",
    "emitted",
    "status",
    "error",
    "attempt",
)
"""What :data:`CallFields` holds, in order (``event`` is the name of the event handled)."""

CALL_WIDTH: Final = len(CALL_COLUMNS)

EventFields: TypeAlias = tuple[Any, ...]
"""One event as :func:`event_fields` makes it: :data:`EVENT_COLUMNS`, in order."""

CallFields: TypeAlias = tuple[Any, ...]
"""One ended handler call as :func:`call_fields` makes it: :data:`CALL_COLUMNS`, in order."""

Sinks: TypeAlias = tuple[
    Callable[[EventFields], object] | None, Callable[[CallFields], object] | None
]
"""``(event_sink, call_sink)``; ``None`` where the recorder hears through its hook instead."""


def event_fields(
    event: WorkflowEvent,
    seq: int,
    parent_seq: int | None,
    depth: int,
    handler_name: str | None,
    elapsed: float,
    run: RunInfo,
    call: HandlerCall | None = None,
) -> EventFields:
    """What a recorder keeps of an event; the arguments are an :class:`EmittedEvent`'s fields."""
    return (
        run.run_id,
        seq,
        parent_seq,
        depth,
        event.name,
        handler_name,
        event.error,
        elapsed,
        run.started_at,
        event.data,
        event.metadata,
    )


def call_fields(call: HandlerCall) -> CallFields:
    """What a recorder keeps of the ended ``call``."""
    return (
        call.run.run_id,
        call.handler_name,
        call.position,
        call.trigger.name,
        call.trigger_seq,
        call.started,
        call.finished,
        call.emitted,
        call.status,
        call.error,
        call.attempt,
    )


class Recorder(WorkflowObserver):
    """An observer that keeps its rows through sinks; see the module's docstring.

    Subclasses implement :meth:`recording_sinks`. Their ``event_emitted`` and
    ``handler_finished`` feed the same sinks, so rows added by hand equal rows recorded by
    the run loop.
    """

    def recording_sinks(self) -> Sinks:
        """The callables that take :data:`EventFields` and :data:`CallFields`."""
        raise NotImplementedError

    def event_emitted(self, emitted: EmittedEvent) -> None:
        """Record ``emitted`` through the event sink."""
        sink = self.recording_sinks()[0]
        if sink is not None:
            sink(event_fields(*emitted))

    def handler_finished(self, call: HandlerCall) -> None:
        """Record the ended ``call`` through the call sink."""
        sink = self.recording_sinks()[1]
        if sink is not None:
            sink(call_fields(call))
