"""The routing rules of the run loop: queued events, lineages, and the events a run makes.

A queued event is a tuple ``(event, route, parent_lineage, seq, depth)``: the event, where it
goes (its registration or registrations, read from the registry when it was emitted), the
lineage of the event whose handler emitted it, and the event's number and causal depth.

Lineages exist to name the repeating chain when ``max_events`` trips. An event's lineage is
the pair ``(name, parent)``: its name, linked to its parent's lineage. The run loop makes it
when the event is handled, not when it is emitted, so it costs one small tuple per handler
step. Every :data:`LINEAGE_WINDOW` generations it cuts the chain (:func:`cut`), keeping the
newest :data:`LINEAGE_KEPT` names in a list, so a long chain holds a bounded window of names.

>>> chain = ("search", ("research", ("search", None)))
>>> names_of(chain)
('search', 'research', 'search')
>>> cut(chain)
('search', ['search', 'research'])
>>> name_cycle(("start", "search", "research", "search"))
['search', 'research', 'search']
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

from baxiflow._deadline import Expiry, Watchdog
from baxiflow.event import ERROR, TracebackText, WorkflowEvent
from baxiflow.observe import RunStatus
from baxiflow.registry import Route

__all__ = [
    "LINEAGE_KEPT",
    "LINEAGE_MASK",
    "LINEAGE_WINDOW",
    "STOP_STATUS",
    "Lineage",
    "Queued",
    "RouteOf",
    "Stop",
    "close",
    "cut",
    "ended_status",
    "handler_error",
    "invalid_event_error",
    "lineage_of",
    "log_error",
    "max_events_error",
    "name_cycle",
    "names_of",
    "stop_status",
    "timeout_error",
]

RouteOf: TypeAlias = Callable[[str], Route | None]
"""``Registry.route``: an event name's :data:`~baxiflow.registry.Route`, if it has handlers."""
Lineage: TypeAlias = "tuple[str, Lineage | list[str] | None]"
"""``(name, parent)``: an event's name and its parent's lineage (or, after a :func:`cut`, the
names kept of its ancestors, oldest first, as a list)."""

Queued: TypeAlias = "tuple[WorkflowEvent, Route, Lineage | None, int, int]"
"""An event waiting for dispatch: ``(event, route, parent_lineage, seq, depth)``."""

LINEAGE_KEPT = 32
"""Names a lineage keeps at least: enough history to name a cycle."""

LINEAGE_WINDOW = 512
"""Every how many generations the run loop cuts a chain of lineages (:func:`cut`); a power of
two, so the loop finds those generations with a mask (:data:`LINEAGE_MASK`)."""

LINEAGE_MASK = LINEAGE_WINDOW - 1
"""``depth & LINEAGE_MASK`` is 0 every :data:`LINEAGE_WINDOW` generations: cheaper, for the
run loop, than the remainder of a division."""


def cut(lineage: Lineage) -> Lineage:
    """``lineage`` with only its newest :data:`LINEAGE_KEPT` ancestors' names, as a list."""
    return (lineage[0], list(names_of(lineage[1], newest=LINEAGE_KEPT)))


def lineage_of(names: Iterable[str]) -> Lineage | None:
    """The lineage of a chain of event ``names``, oldest first; ``None`` for no names.

    >>> names_of(lineage_of(["start", "search", "search"]))
    ('start', 'search', 'search')
    """
    kept = list(names)
    return cut((kept[-1], kept[:-1])) if kept else None


def names_of(lineage: Lineage | list[str] | None, *, newest: int | None = None) -> tuple[str, ...]:
    """The names of ``lineage``, oldest ancestor kept first, down to the event itself.

    With ``newest``, only that many of the latest names (the walk stops there).
    """
    wanted = -1 if newest is None else newest
    newest_first: list[str] = []
    node: Lineage | list[str] | None = lineage
    while isinstance(node, tuple) and len(newest_first) != wanted:
        newest_first.append(node[0])
        node = node[1]
    older: list[str] = []
    if isinstance(node, list):
        older = node if newest is None else node[max(0, len(node) - newest + len(newest_first)) :]
    return (*older, *reversed(newest_first))


def name_cycle(names: tuple[str, ...]) -> list[str]:
    """The latest repeat in ``names``, e.g. ``['search', 'research', 'search']``; [] if none.

    >>> name_cycle(("start", "search", "research", "search", "error"))
    ['search', 'research', 'search']
    """
    last_seen: dict[str, int] = {}
    latest: tuple[int, int] | None = None
    for index, name in enumerate(names):
        if name in last_seen:
            latest = (last_seen[name], index)
        last_seen[name] = index
    return [] if latest is None else list(names[latest[0] : latest[1] + 1])


STOP_STATUS: Final[Mapping[object, Literal["max_events", "timeout", "log_failed"]]] = (
    MappingProxyType(
        {
            "max_events": "max_events",
            "timeout": "timeout",
            "handler_timeout": "timeout",
            "log_failed": "log_failed",
        }
    )
)
"""The status of a run that a stop ended, by the ``reason`` in its final error event's data."""


class Stop(Exception):
    """A guard ended the run, or its durable log failed; carries the final error event.

    Its :attr:`status` is read from the event's ``reason`` (:data:`STOP_STATUS`), so a
    reader of the run's events tells its end the same way (:func:`stop_status`).
    """

    def __init__(self, event: WorkflowEvent) -> None:
        super().__init__(event.error)
        self.event = event
        assert event.data is not None, "a stop's event says why the run stopped"
        self.status = STOP_STATUS[event.data["reason"]]


def stop_status(final: WorkflowEvent) -> RunStatus | None:
    """How a stop ended the run whose last event is ``final``; ``None`` when none did.

    >>> stop_status(WorkflowEvent(ERROR, {"reason": "handler_timeout"}, None, "too slow"))
    'timeout'
    >>> stop_status(WorkflowEvent("done")) is None
    True
    """
    data = final.data
    if final.name != ERROR or not isinstance(data, dict):
        return None
    return STOP_STATUS.get(data.get("reason"))


def ended_status(errors: int, stopped: RunStatus | None = None) -> RunStatus:
    """How a run that was neither cancelled nor closed early ended.

    >>> ended_status(0), ended_status(2), ended_status(1, "max_events")
    ('ok', 'error', 'max_events')
    """
    if stopped is not None:
        return stopped
    return "error" if errors else "ok"


def handler_error(
    exc: BaseException, reason: str, name: str, trigger: WorkflowEvent, *, attempts: int = 1
) -> WorkflowEvent:
    """The error event for handler ``name`` failing with ``exc`` while handling ``trigger``.

    ``data["traceback"]`` is the traceback from the handler's frame down, as text that
    holds ``exc`` itself while the run is in memory (a :class:`~baxiflow.event.TracebackText`;
    copies and saved traces keep only the text). A call retried ``attempts`` times says so
    in its message and in ``data["attempts"]``.
    """
    data: dict[str, object] = {
        "reason": reason,
        "type": type(exc).__name__,
        "handler": name,
        "event": trigger.name,
        "traceback": TracebackText.of(exc),
    }
    message = str(exc) or type(exc).__name__
    if attempts > 1:
        data["attempts"] = attempts
        message = f"{message} (failed all {attempts} attempts)"
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


def invalid_event_error(value: object, name: str, trigger: WorkflowEvent) -> WorkflowEvent:
    """The error event for handler ``name`` yielding ``value``, which is not an event."""
    problem = TypeError(
        f"handler {name!r} yielded {type(value).__name__} {value!r:.80}; "
        "handlers must yield WorkflowEvent objects"
    )
    return handler_error(problem, "invalid_event", name, trigger)


def max_events_error(
    limit: int,
    parent: Queued | None,
    last: WorkflowEvent,
    name: str | None,
    queue: Iterable[Queued],
) -> WorkflowEvent:
    """The final error event when ``last``, emitted by handler ``name``, passed ``limit``.

    ``parent`` is the queued event being handled (``None`` when ``last`` came from outside
    the run) and ``queue`` what is still queued.
    """
    trigger = last if parent is None else parent[0]
    above = () if parent is None else (*names_of(parent[2]), trigger.name)
    lineage = (*above, last.name)
    # The event that crossed the limit may sit on a branch that does not loop (a fan-out
    # beside the real cycle); the events still queued show the loop then.
    candidates = itertools.chain((lineage,), ((*names_of(item[2]), item[0].name) for item in queue))
    cycle = next((c for c in map(name_cycle, candidates) if c), [])
    if cycle:
        chain = f"repeating chain: {' -> '.join(cycle)}"
    elif name is None:
        chain = f"no repeating chain; events kept arriving ({' -> '.join(lineage)})"
    else:
        chain = f"no repeating chain; handler {name!r} kept emitting ({' -> '.join(lineage)})"
    data = {
        "reason": "max_events",
        "limit": limit,
        "cycle": cycle,
        "handler": name,
        "event": trigger.name,
    }
    message = f"max_events ({limit}) exceeded; {chain}"
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


def log_error(problem: Exception) -> WorkflowEvent:
    """The final error event of a durable run whose log could not be written."""
    message = f"the run's log could not be written, so the run stopped: {problem}"
    data = {"reason": "log_failed", "type": type(problem).__name__}
    return WorkflowEvent(ERROR, data, None, message)


def timeout_error(
    expired: Expiry, elapsed: float, name: str, trigger: WorkflowEvent, *, started: bool
) -> WorkflowEvent:
    """The final error event when a guard expired while handler ``name`` handled ``trigger``.

    ``elapsed`` is the run's age in seconds; ``started=False`` when the handler never began.
    """
    if expired == "timeout":
        when = (
            "while handler {!r} was handling" if started else "before handler {!r} could start on"
        )
        message = f"run timed out after {elapsed:.3g} s {when.format(name)} {trigger.name!r}"
    else:
        message = f"handler {name!r} timed out while handling {trigger.name!r}"
    data = {"reason": expired, "handler": name, "event": trigger.name}
    return WorkflowEvent(ERROR, data, trigger.metadata, message)


async def close(
    agen: AsyncGenerator[WorkflowEvent, None], watchdog: Watchdog | None = None
) -> None:
    """Close a handler's generator so its ``finally`` runs.

    With guards on, the cleanup counts as the handler's working time; once time is up it
    gets cancelled until it ends, so it cannot hang the run. ``watchdog.expired`` tells
    afterwards whether time ran out.
    """
    if watchdog is not None:
        if watchdog.expired is None and watchdog.resume() is None:
            try:
                await _close_quietly(agen)
            except asyncio.CancelledError:
                if watchdog.claim_cancellation() is None:
                    raise  # cancelled from elsewhere
            else:
                watchdog.pause()
                return
        cut_short = await watchdog.close_expired(agen)
        if watchdog.claim_cancellation() is None and cut_short:
            # Cancelled from elsewhere while closing: that cancellation wins.
            raise asyncio.CancelledError
        return
    await _close_quietly(agen)


async def _close_quietly(agen: AsyncGenerator[WorkflowEvent, None]) -> None:
    # A handler whose cleanup raises while it is being stopped: the reason it is being
    # stopped is what propagates; its own cleanup error has nowhere to go.
    with contextlib.suppress(Exception):
        await agen.aclose()
