"""Durable runs in the core: what a store must offer, and a run's state read back from its log.

A durable run's log is its event stream: every emitted event and every handler call's start
and end, appended in order. The queue at any point follows from the log: the events emitted
whose dispatch has not finished.

A call is known in the log by the event it handled (its ``seq``), its handler's qualified
name, and which registration of that handler for that event it is (its *occurrence*: 0,
or 1 for the second when the same handler is registered twice). Not by its position among
the event's handlers: a run resumed on a changed registry (``allow_changed=True``) matches
each logged call to the registration it was, wherever that registration stands now, and a
handler that was not there runs as new. :func:`state_from_log` derives it, for a run to go on with
(``WorkflowManager.resume``) or for a fork of it from any event (``WorkflowManager.replay``).
The stores themselves (SQLite, PostgreSQL) live in :mod:`baxiflow.store`; the core knows
them only through :class:`RunStore`.

>>> from baxiflow.event import WorkflowEvent
>>> from baxiflow.registry import Registry
>>> async def step(event):
...     yield WorkflowEvent("done")
>>> registry = Registry()
>>> _ = registry.add("start", step)
>>> log = [LoggedEvent(0, None, 0, WorkflowEvent("start"))]
>>> state, reruns = state_from_log(log, [], registry.route)
>>> [(p.event.name, p.seq) for p in state.pending], state.seq, reruns
([('start', 0)], 0, {})
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from baxiflow._asking import Requests
from baxiflow._engine import Pending, RunState
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.observe import WorkflowObserver
from baxiflow.registry import HandlerRegistration, Route

__all__ = [
    "DURABILITIES",
    "Durability",
    "DurableLog",
    "LoggedCall",
    "LoggedEvent",
    "RunStore",
    "SavedRun",
    "fingerprint",
    "fork_state",
    "occurrences",
    "registry_changes",
    "state_from_log",
]

Durability: TypeAlias = Literal["sync", "batched", "exit"]
"""When a durable run commits its log: at every event, at least every 100 ms and at the end
(the default), or only when the run ends."""

DURABILITIES: tuple[Durability, ...] = ("sync", "batched", "exit")


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event as a run's log holds it.

    Attributes:
        seq: Its number in the run.
        parent_seq: The number of the event whose handler emitted it; ``None`` for a root.
        depth: Its causal depth.
        event: The event, read back.
        handler: The handler that emitted it (or failed, for an error event it made).
        position: That handler's place among the handlers of its trigger; ``None`` for a
            root or an event a guard made.
        occurrence: Which registration of ``handler`` for the trigger's event made it (see
            the module's docstring); ``None`` where ``position`` is.
    """

    seq: int
    parent_seq: int | None
    depth: int
    event: WorkflowEvent
    handler: str | None = None
    position: int | None = None
    occurrence: int | None = None


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One handler call as a run's log holds it: started, and maybe ended.

    Attributes:
        trigger_seq: The event it handled.
        position: The handler's place among that event's handlers when it ran.
        handler: The handler's qualified name.
        status: ``"running"`` if the log holds no end, else how it ended (a call that ended
            ``"cancelled"`` was cut short and runs again on resume; ``"retried"`` is an
            attempt that failed and was to be followed by another).
        occurrence: Which registration of ``handler`` for that event it was (0 for the first).
        attempt: Which attempt of the call this row is (1 for the first); the log holds a
            row for each attempt that ended.
        emitted: Events the attempt yielded.
    """

    trigger_seq: int
    position: int
    handler: str
    status: str
    occurrence: int = 0
    attempt: int = 1
    emitted: int = 0


@dataclass(frozen=True, slots=True)
class SavedRun:
    """A run read back from a store, ready to go on with.

    Attributes:
        run_id: Its id.
        state: Where it stands (see :func:`state_from_log`).
        reruns: For each call that started and never ended, ``(trigger_seq, position)``:
            how many events of its unfinished attempt the log already holds, and how many
            attempts the log holds as retried (see :func:`state_from_log`).
        log: The observer that goes on appending to the run's log.
    """

    run_id: str
    state: RunState
    reruns: dict[tuple[int, int], tuple[int, int]]
    log: DurableLog


class DurableLog(WorkflowObserver):
    """The observer that appends one run to a store (:meth:`RunStore.open_run` gives it)."""

    run_id: str
    """The run's id, which the engine runs under."""


class RunStore(Protocol):
    """What ``WorkflowManager`` needs of a store; :mod:`baxiflow.store` has the real ones."""

    def open_run(
        self,
        run_id: str | None,
        fingerprint: str,
        durability: Durability,
        *,
        workflow_name: str | None = None,
        parent: tuple[str, int] | None = None,
        reused: Sequence[LoggedEvent] = (),
    ) -> DurableLog:
        """Start the log of a new run; the observer that appends to it.

        With ``run_id`` ``None`` the store names the run (the log's ``run_id``); a
        ``run_id`` already in the store is refused with ``ValueError``. ``parent`` is
        ``(run_id, fork_seq)`` for a fork, whose ``reused`` events the log holds first,
        marked as reused.
        """
        ...

    def resume_run(
        self,
        run_id: str,
        fingerprint: str,
        durability: Durability,
        route: Callable[[str], Route | None],
        *,
        allow_changed: bool = False,
    ) -> SavedRun:
        """Take over an unfinished run: its state, and the observer that goes on logging it.

        Raises ``LookupError`` for an unknown run, ``ValueError`` for a finished one, a
        changed registry (unless ``allow_changed``) or a run another process is running.
        """
        ...

    def logged(self, run_id: str) -> list[LoggedEvent]:
        """The events of a run's log, in order."""
        ...

    def check_event(self, event: WorkflowEvent) -> str | None:
        """What in ``event`` the store could not give back exactly; ``None`` if all of it."""
        ...


def fingerprint(registrations: Iterable[HandlerRegistration]) -> str:
    """The registry as a log keeps it: each event with its handlers' qualified names, in order.

    JSON text, so that a store can say what changed (see :func:`registry_changes`).

    >>> async def greet(event):
    ...     yield event
    >>> from baxiflow.registry import Registry
    >>> registry = Registry()
    >>> _ = registry.add("start", greet)
    >>> fingerprint(registry.all())
    '["start: greet"]'
    """
    by_event: dict[str, list[str]] = {}
    for registration in registrations:
        by_event.setdefault(registration.event_name, []).append(registration.name)
    return json.dumps([f"{event}: {', '.join(names)}" for event, names in by_event.items()])


def registry_changes(then: str, now: str) -> str:
    """What differs between two :func:`fingerprint` s, in words.

    >>> registry_changes('["start: a", "done: b"]', '["start: a, c"]')
    'now start: a, c; before start: a; done: b'
    """
    before, after = json.loads(then), json.loads(now)
    added = [line for line in after if line not in before] or ["nothing new"]
    gone = [line for line in before if line not in after] or ["nothing else"]
    return f"now {'; '.join(added)}; before {'; '.join(gone)}"


@functools.lru_cache(maxsize=64)
def occurrences(fingerprint: str) -> Mapping[tuple[str, int], int]:
    """The registrations that repeat a handler, from a :func:`fingerprint`.

    Returns ``{(event name, position): occurrence}`` for each registration whose handler is
    registered earlier for the same event too (every other one's occurrence is 0). Kept
    for the last few registries: every logged run asks.

    >>> occurrences('["start: plan", "task: work, audit, work"]')
    {('task', 2): 1}
    """
    found: dict[tuple[str, int], int] = {}
    for line in json.loads(fingerprint):
        # Qualified names hold no ": " nor ", "; an event's name might.
        event, _, names = line.rpartition(": ")
        seen: dict[str, int] = {}
        for position, name in enumerate(names.split(", ")):
            if occurrence := seen.get(name, 0):
                found[(event, position)] = occurrence
            seen[name] = occurrence + 1
    return found


def _dispatched(event: LoggedEvent, by_seq: dict[int, LoggedEvent]) -> bool:
    """Whether the run dispatches ``event`` at all: not progress, not an error from an error."""
    name = event.event.name
    if name == PROGRESS:
        return False
    parent = None if event.parent_seq is None else by_seq.get(event.parent_seq)
    return not (name == ERROR and parent is not None and parent.event.name == ERROR)


def _ancestry(event: LoggedEvent, by_seq: dict[int, LoggedEvent]) -> tuple[str, ...]:
    names: list[str] = []
    seq = event.parent_seq
    while seq is not None and seq in by_seq and len(names) < 64:
        names.append(by_seq[seq].event.name)
        seq = by_seq[seq].parent_seq
    return tuple(reversed(names))


def _identities(route: Route) -> tuple[tuple[int, str, int], ...]:
    """``(position, handler name, occurrence)`` of each registration of ``route``."""
    seen: dict[str, int] = {}
    found = []
    for registration in route if isinstance(route, tuple) else (route,):
        occurrence = seen[registration.name] = seen.get(registration.name, -1) + 1
        found.append((registration.position, registration.name, occurrence))
    return tuple(found)


def _counters(events: Sequence[LoggedEvent]) -> dict[str, int]:
    return {
        "seq": max((e.seq for e in events), default=-1),
        "count": sum(e.event.name != PROGRESS for e in events),
        "errors": sum(e.event.name == ERROR for e in events),
    }


_CallKey: TypeAlias = tuple[int, str, int]
"""A call as the log knows it: ``(trigger_seq, handler name, occurrence)``."""


def _call_ends(
    calls: Iterable[LoggedCall],
) -> tuple[set[_CallKey], dict[_CallKey, tuple[int, int]]]:
    """The calls that ended for good; for the others, the attempts retried (the highest
    number) and the events those attempts yielded (the run's already)."""
    ended: set[_CallKey] = set()
    retried: dict[_CallKey, tuple[int, int]] = {}
    for c in calls:
        key = (c.trigger_seq, c.handler, c.occurrence)
        if c.status in ("ok", "error"):
            ended.add(key)
        elif c.status == "retried":
            made, yielded = retried.get(key, (0, 0))
            retried[key] = (max(made, c.attempt), yielded + c.emitted)
        # A call cut short (the run was stopped or died) has not done its work: it runs again.
    return ended, retried


def state_from_log(
    events: Sequence[LoggedEvent],
    calls: Iterable[LoggedCall],
    route: Callable[[str], Route | None],
) -> tuple[RunState, dict[tuple[int, int], tuple[int, int]]]:
    """Where a logged run stands: the events whose dispatch has not finished, in order.

    An event's dispatch has finished when each of its handlers' calls has ended: the log
    holds a row of the call that ended ``ok`` or ``error`` (an error is final: an attempt
    that is retried ends ``retried``). Calls are matched to the registrations of
    ``route`` by handler name and occurrence (see the module's docstring). A call that did
    not end runs again, from the attempt after the ones its log holds as retried. The
    second value says, for each call to run again that had emitted events or been
    retried, ``(trigger_seq, position now)``: how many events of its unfinished attempt the
    log already holds (they are matched, not emitted twice; those of its retried attempts
    are the run's already) and how many attempts were retried. The requests for input the
    log leaves open are open in the state.

    >>> from baxiflow.event import WorkflowEvent
    >>> from baxiflow.registry import Registry
    >>> async def fetch(event):
    ...     yield WorkflowEvent("fetched")
    >>> registry = Registry()
    >>> _ = registry.add("start", fetch)
    >>> log = [LoggedEvent(0, None, 0, WorkflowEvent("start")),
    ...        LoggedEvent(1, 0, 1, WorkflowEvent.progress("fetch", "trying"), "fetch", 0, 0)]
    >>> retried = [LoggedCall(0, 0, "fetch", "retried", attempt=1, emitted=1)]
    >>> state, reruns = state_from_log(log, retried, registry.route)
    >>> [p.seq for p in state.pending], reruns
    ([0], {(0, 0): (0, 1)})
    """
    by_seq = {e.seq: e for e in events}
    ended, retried = _call_ends(calls)
    emitted_by: dict[_CallKey, int] = {}
    for e in events:
        if e.parent_seq is not None and e.handler is not None and e.occurrence is not None:
            key = (e.parent_seq, e.handler, e.occurrence)
            emitted_by[key] = emitted_by.get(key, 0) + 1
    pending: list[Pending] = []
    reruns: dict[tuple[int, int], tuple[int, int]] = {}
    by_name: dict[str, tuple[tuple[int, str, int], ...]] = {}
    requests = Requests()
    for logged in sorted(events, key=lambda e: e.seq):
        requests.follow(logged.event, logged.seq, logged.parent_seq)
        found = route(logged.event.name)
        if found is None or not _dispatched(logged, by_seq):
            continue
        left: list[int] = []
        identities = by_name.get(logged.event.name)
        if identities is None:
            identities = by_name[logged.event.name] = _identities(found)
        for position, name, occurrence in identities:
            call = (logged.seq, name, occurrence)
            if call not in ended:
                left.append(position)
                made, yielded = retried.get(call, (0, 0))
                if (emitted := emitted_by.get(call, 0) - yielded) or made:
                    reruns[(logged.seq, position)] = (emitted, made)
        if left:
            ancestry = _ancestry(logged, by_seq)
            pending.append(Pending(logged.event, logged.seq, logged.depth, ancestry, tuple(left)))
    first = min(events, key=lambda e: e.seq).event if events else None
    state = RunState(
        pending, (), **_counters(events), initial_event=first, requests=requests.seqs()
    )
    return state, reruns


def fork_state(
    events: Sequence[LoggedEvent], from_seq: int, route: Callable[[str], Route | None]
) -> tuple[RunState, list[LoggedEvent]]:
    """A fork's state: the source run just before event ``from_seq`` was dispatched.

    Returns the state and the events it reuses: those emitted before that dispatch began
    (the roots, and the events whose parent came before ``from_seq``).

    Raises:
        LookupError: The log has no event ``from_seq``.
        ValueError: The event is never dispatched (a progress event, one without handlers
            now, or an error raised while handling an error).
    """
    by_seq = {e.seq: e for e in events}
    start = by_seq.get(from_seq)
    if start is None:
        raise LookupError(f"the run has no event {from_seq}; its events are 0..{len(events) - 1}")
    if route(start.event.name) is None or not _dispatched(start, by_seq):
        raise ValueError(
            f"event {from_seq} ({start.event.name!r}) is never dispatched; replay from an "
            "event that has handlers"
        )
    reused = [e for e in events if e.parent_seq is None or e.parent_seq < from_seq]
    reused.sort(key=lambda e: e.seq)
    state, _ = state_from_log(reused, (), route)
    # Everything before from_seq was dispatched: only the events from it on still wait.
    state.pending = [p for p in state.pending if p.seq >= from_seq]
    return state, reused
