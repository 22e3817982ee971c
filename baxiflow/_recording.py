"""The compact form in which the run loop hands events and handler calls to a recorder.

A recorder keeps one entry per event and one per handler call, for as long as it lives.
Going through :meth:`WorkflowObserver.event_emitted` would cost it an :class:`EmittedEvent`
and a Python-level call per event, and keeping those objects (each holding the event and the
handler call) would give the garbage collector two more objects to scan per event, on every
full collection. So an observer may offer *sinks* instead, through a method
``_recording_sinks()`` returning ``(event_sink, call_sink)``, either of which may be
``None``. The run loop then calls ``event_sink`` with :data:`EventFields` in place of the
observer's ``event_emitted``, and ``call_sink`` with :data:`CallFields` in place of its
``handler_finished``: plain tuples of final values, made fresh for each call, so that a
sink may be a C-level method such as ``list.extend``. ``Trace`` is the one recorder; sinks
are internal to baxiflow, and a failing sink is reported like a failing observer.

>>> from baxiflow.event import WorkflowEvent
>>> from baxiflow.observe import EmittedEvent, RunInfo
>>> run = RunInfo("r-1", WorkflowEvent("start"), 1000.0)
>>> emitted = EmittedEvent(WorkflowEvent("done", {"x": 1}), 1, 0, 1, "greet", 0.5, run, None)
>>> event_fields(emitted)
('r-1', 1, 0, 1, 'done', 'greet', None, 0.5, 1000.0, {'x': 1}, None)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from baxiflow.observe import EmittedEvent, HandlerCall

__all__ = [
    "CALL_WIDTH",
    "EVENT_WIDTH",
    "CallFields",
    "EventFields",
    "Sinks",
    "call_fields",
    "event_fields",
]

EventFields: TypeAlias = tuple[
    str,  # run_id
    int,  # seq
    int | None,  # parent_seq
    int,  # depth
    str,  # event name
    str | None,  # handler_name
    str | None,  # the event's error
    float,  # elapsed
    float,  # the run's started_at
    Any,  # the event's data
    Any,  # the event's metadata
]
"""One event, as :func:`event_fields` makes it (the run loop builds the same tuple inline)."""

EVENT_WIDTH = 11
"""Length of :data:`EventFields`."""

CallFields: TypeAlias = tuple[
    str,  # run_id
    str,  # handler_name
    int,  # position
    str,  # name of the event it handled
    int,  # trigger_seq
    float,  # started
    float | None,  # finished
    int,  # emitted
    str,  # status
    str | None,  # error
]
"""One ended handler call, as :func:`call_fields` makes it."""

CALL_WIDTH = 10
"""Length of :data:`CallFields`."""

Sinks: TypeAlias = tuple[
    Callable[[EventFields], object] | None, Callable[[CallFields], object] | None
]


def event_fields(emitted: EmittedEvent) -> EventFields:
    """What a recorder keeps of ``emitted``."""
    event = emitted.event
    run = emitted.run
    return (
        run.run_id,
        emitted.seq,
        emitted.parent_seq,
        emitted.depth,
        event.name,
        emitted.handler_name,
        event.error,
        emitted.elapsed,
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
    )
