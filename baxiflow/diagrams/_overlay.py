"""Summarise recorded runs per handler and per edge, to overlay on a workflow diagram.

Reads any object with ``records`` and ``spans`` rows in the schema of
:class:`baxiflow.trace.Trace`:

>>> from types import SimpleNamespace
>>> from baxiflow.diagrams._flowgraph import FlowGraph, HandlerNode
>>> graph = FlowGraph((HandlerNode("start", 0, "greet", ("done",), "declared", True),))
>>> trace = SimpleNamespace(
...     records=[
...         {"run_id": "r1", "seq": 0, "parent_seq": None, "event": "start", "handler": None},
...         {"run_id": "r1", "seq": 1, "parent_seq": 0, "event": "done", "handler": "greet"},
...     ],
...     spans=[{"run_id": "r1", "handler": "greet", "position": 0, "event": "start",
...             "duration": 0.002, "status": "ok"}],
... )
>>> overlay = trace_overlay(trace, graph)
>>> stats = overlay.handlers[("start", 0)]
>>> stats.calls, stats.failures, stats.mean_duration, overlay.emitted
(1, 0, 0.002, {('start', 0, 'done'): 1})
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from baxiflow.diagrams._flowgraph import FlowGraph
from baxiflow.event import PROGRESS
from baxiflow.trace import HandlerStats, handler_stats

__all__ = ["TraceLike", "TraceOverlay", "trace_overlay"]


class TraceLike(Protocol):
    """What the overlay reads: one row per event and one row per handler call."""

    @property
    def records(self) -> Sequence[Mapping[str, Any]]:
        """Event rows (``run_id``, ``seq``, ``parent_seq``, ``event``, ``handler``, ...)."""
        ...

    @property
    def spans(self) -> Sequence[Mapping[str, Any]]:
        """Handler call rows (``handler``, ``position``, ``event``, ``duration``, ``status``, ...)."""
        ...


@dataclass(frozen=True, slots=True)
class TraceOverlay:
    """What the recorded runs did, keyed like :class:`~baxiflow.diagrams.FlowGraph`.

    Attributes:
        handlers: Stats per ``(event, position)`` of every handler that ran.
        emitted: Events emitted per ``(event, position, emitted event name)``; error
            events the manager made for a failing handler count as that handler's.
        events: How many times each event name was emitted (progress left out).
    """

    handlers: Mapping[tuple[str, int], HandlerStats]
    emitted: Mapping[tuple[str, int, str], int]
    events: Mapping[str, int]


def trace_overlay(trace: TraceLike, graph: FlowGraph) -> TraceOverlay:
    """Count calls, failures, durations and emitted events of ``trace`` per handler of ``graph``.

    Rows naming a handler that ``graph`` does not have (a trace of another workflow,
    or of handlers registered since) are left out of the per-handler figures.

    Overlapping calls (``concurrency`` above 1) count as any call: each span is one call
    (one attempt of a retried call) with its own duration. An event row names the handler
    that emitted it, not its place among its event's handlers, so for one handler
    registered twice on one event the place is worked out from when the calls started;
    only when those two calls overlap (``sequential=False``) may an event be counted on
    the one that started later.

    Raises:
        TypeError: ``trace`` has no ``records`` or no ``spans``.
    """
    records, spans = _rows(trace)
    positions: dict[tuple[str, str], list[int]] = defaultdict(list)
    names = {}
    for handler in graph.handlers:
        positions[(handler.event, handler.name)].append(handler.position)
        names[handler.key] = handler.name

    def position_of(event: str, name: object, position: object = None) -> int | None:
        if isinstance(position, int) and names.get((event, position)) == name:
            return position
        # No usable position: the handler's first place among the event's handlers.
        found = positions.get((event, name)) if isinstance(name, str) else None
        return found[0] if found else None

    def registration(span: Mapping[str, Any]) -> tuple[str, int] | None:
        event = span.get("event")
        if not isinstance(event, str):
            return None
        position = position_of(event, span.get("handler"), span.get("position"))
        return None if position is None else (event, position)

    handlers = dict(sorted(handler_stats(spans, key=registration).items()))

    # The calls of each handler on each event of each run, by start: a handler registered
    # twice for one event is called twice on it, and an event belongs to the later call
    # that started before it (the calls of one event's handlers follow one another unless
    # registered with sequential=False).
    calls_on: dict[tuple[object, object, object], list[tuple[float, object]]] = defaultdict(list)
    for span in spans:
        start = span.get("start")
        if isinstance(start, int | float):
            trigger = (span.get("run_id"), span.get("event_seq"), span.get("handler"))
            calls_on[trigger].append((float(start), span.get("position")))
    for starts in calls_on.values():
        starts.sort(key=lambda call: call[0])

    def emitting_position(record: Mapping[str, Any]) -> object:
        starts = calls_on.get(
            (record.get("run_id"), record.get("parent_seq"), record.get("handler"))
        )
        if not starts:
            return None
        elapsed = record.get("elapsed")
        if not isinstance(elapsed, int | float):
            return starts[0][1]
        # None when no recorded call started before it (its span was cut by max_records).
        return next((position for start, position in reversed(starts) if start <= elapsed), None)

    event_of = {(r.get("run_id"), r.get("seq")): r.get("event") for r in records}
    emitted: Counter[tuple[str, int, str]] = Counter()
    events: Counter[str] = Counter()
    for record in records:
        name = record.get("event")
        if not isinstance(name, str) or name == PROGRESS:
            continue
        events[name] += 1
        parent = event_of.get((record.get("run_id"), record.get("parent_seq")))
        if not isinstance(parent, str):
            continue
        position = position_of(parent, record.get("handler"), emitting_position(record))
        if position is not None:
            emitted[(parent, position, name)] += 1

    return TraceOverlay(handlers, dict(sorted(emitted.items())), dict(sorted(events.items())))


def _rows(
    trace: TraceLike,
) -> tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]:
    records = getattr(trace, "records", None)
    spans = getattr(trace, "spans", None)
    if records is None or spans is None:
        raise TypeError(
            "trace must have `records` and `spans` rows, like a baxiflow.trace.Trace; "
            f"got {type(trace).__name__}"
        )
    return records, spans
