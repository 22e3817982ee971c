"""The run loop: every run of :meth:`WorkflowManager.process`, observed or not, goes through here.

A run takes the next queued event, calls each of its handlers in turn and passes on what they
yield: numbered, shown to the observers, queued for its own handlers and yielded to the caller.
The routing rules come from :mod:`baxiflow._routing`; each is applied in exactly one place.
What only observers or guards need is gated: a run with no observers makes no
:class:`~baxiflow.observe.RunInfo`, no handler calls and reads no clock.

A run starts from one initial event, or from a saved :class:`RunState` (events waiting for
dispatch, counters, lineage, open requests). Opened to the outside (:meth:`Engine.open_inbox`),
it waits for :meth:`Engine.deliver` when its queue runs dry instead of ending, until the inbox
is closed. A run that takes answers (:meth:`Engine.take_answers`) waits only while a request
for input is open (see :mod:`baxiflow._asking`); a run that takes none reports its open
requests with an error event when its queue runs dry, and ends.

>>> import asyncio
>>> from baxiflow.event import WorkflowEvent
>>> from baxiflow.registry import Registry
>>> async def ping(event):
...     yield WorkflowEvent("pong")
>>> registry = Registry()
>>> _ = registry.add("ping", ping)
>>> async def main():
...     engine = Engine(registry.route, WorkflowEvent("ping"))
...     return [event.name async for event in engine.stream()]
>>> asyncio.run(main())
['ping', 'pong']
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from baxiflow._asking import Requests, unanswered_error
from baxiflow._deadline import Expiry, Watchdog
from baxiflow._guarded import guard_handler
from baxiflow._observer_group import ObserverGroup
from baxiflow._overlap import ENDED, EVENT, FAILED, RAISED, START, CallContext, Slots
from baxiflow._recording import call_fields, event_fields
from baxiflow._routing import (
    LINEAGE_MASK,
    Lineage,
    Queued,
    RouteOf,
    Stop,
    close,
    cut,
    ended_status,
    handler_error,
    invalid_event_error,
    lineage_of,
    max_events_error,
    timeout_error,
)
from baxiflow.event import ERROR, INPUT_REQUIRED, PROGRESS, WorkflowEvent
from baxiflow.exceptions import AnswerError, ObserverWarning
from baxiflow.observe import (
    EmittedEvent,
    HandlerCall,
    HandlerStatus,
    RunInfo,
    RunStatus,
    WorkflowObserver,
)
from baxiflow.registry import EventHandler, HandlerRegistration, Route
from baxiflow.retry import Retry

__all__ = ["WAITING", "Engine", "Pending", "RunState"]

WAITING = WorkflowEvent("waiting")
"""What the stream of a run that takes answers yields, this very object, when the run starts
to wait for them; never seen by observers (``WorkflowRun`` keeps it from its caller)."""


@dataclass(slots=True, frozen=True)
class Pending:
    """An event waiting for dispatch in a saved :class:`RunState`.

    Attributes:
        event: The event.
        seq: Its number in the run.
        depth: Its causal depth (0 for a root event).
        ancestry: Names of the events above it, oldest first (for naming a repeating chain).
        positions: Positions of the handlers still to run on it; ``None`` for all of them.
    """

    event: WorkflowEvent
    seq: int
    depth: int
    ancestry: tuple[str, ...] = ()
    positions: tuple[int, ...] | None = None


class NotAnEvent(Exception):
    """A handler yielded ``value``, which is not a :class:`WorkflowEvent`."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


class RefusedEvent(NotAnEvent):
    """A handler yielded an event the run cannot take (``problem`` says why)."""

    def __init__(self, value: object, problem: str) -> None:
        super().__init__(value)
        self.problem = problem


class RunState:
    """Where a run stands: the events still to dispatch, in order, and its counters.

    Args:
        pending: Events emitted and not yet dispatched (or dispatched to some of their
            handlers only), first in, first out.
        roots: Events that enter the run from outside, emitted before anything else
            (the initial event of a new run).
        seq: ``seq`` of the last event emitted so far; -1 before the first.
        count: Non-progress events emitted so far (what ``max_events`` bounds).
        errors: Error events emitted so far.
        initial_event: The event the run started from, as observers see it
            (``RunInfo.initial_event``); by default the first of ``roots`` or ``pending``.
            A state with nothing left to dispatch needs it: its run ends at once.
        requests: The open requests for input, ``(seq, event)``, oldest first.
        elapsed: Seconds the run had run when it was saved: its clock (events' ``elapsed``,
            calls' ``started`` and ``finished``) goes on from there.

    The engine updates the counters as the run goes on.

    >>> RunState([Pending(WorkflowEvent("search"), seq=3, depth=1, ancestry=("start",))], seq=5)
    <RunState: 1 pending, 0 roots, seq 5, count 0, errors 0>
    """

    __slots__ = (
        "count", "elapsed", "errors", "initial_event", "pending", "requests", "roots", "seq",
    )  # fmt: skip

    def __init__(
        self,
        pending: Sequence[Pending] = (),
        roots: Sequence[WorkflowEvent] = (),
        *,
        seq: int = -1,
        count: int = 0,
        errors: int = 0,
        initial_event: WorkflowEvent | None = None,
        requests: Sequence[tuple[int, WorkflowEvent]] = (),
        elapsed: float = 0.0,
    ) -> None:
        self.elapsed = elapsed
        self.initial_event = initial_event
        self.requests = requests
        self.pending = pending
        self.roots = roots
        self.seq = seq
        self.count = count
        self.errors = errors

    def __repr__(self) -> str:
        return (
            f"<RunState: {len(self.pending)} pending, {len(self.roots)} roots, seq {self.seq}, "
            f"count {self.count}, errors {self.errors}>"
        )


_RUN_PREFIX = os.urandom(8).hex()
"""64 random bits per process: the processes and machines that share a durable store (the
workers of a Dask cluster, say) never draw the same prefix in practice."""
_run_numbers = itertools.count(1)


def new_run_id() -> str:
    """A run id unique in this process, and across processes in practice; cheap to make."""
    return f"{_RUN_PREFIX}-{next(_run_numbers)}"


class Engine:
    """One run: its queue, counters, guards and observers. Iterate :meth:`stream` once.

    Args:
        route: ``Registry.route``: the handlers of an event name.
        start: The initial event of a new run, or the saved state of a run to go on with.
        max_events: Bound on the run's non-progress events; ``None`` for none.
        timeout: Seconds the whole run may last; ``None`` for no limit.
        handler_timeout: Seconds of work each handler call may spend; ``None`` for no limit.
        observers: Who watches the run, in the order they are told.
        run_id: The run's id; a new one by default.
        workflow_name: The name observers see in ``RunInfo.workflow_name``.
        reruns: Calls of a resumed run that started and never ended, ``(trigger_seq,
            position)``, with ``(events, attempts)``: how many events of their unfinished
            attempt the run already emitted, and how many attempts were retried before. They
            run again, from the attempt after those; those first events are matched, not
            emitted a second time.
        check: Says what is wrong with an event a handler yields, or ``None``; an event it
            finds fault with is the handler's failure (a durable run's log checks that its
            data would come back exactly).
        concurrency: Most handler calls running at once (see ``WorkflowManager``). At 1
            the loop runs each call itself, in the caller's task. Above 1, every call runs
            in a task of its own (so ``asyncio.current_task()``, ``asyncio.timeout`` and task
            groups in a handler are the call's own), and the loop yields what it hands over.
        retry: How calls of handlers registered without a retry policy are retried.
        retrying: Whether some registration has a retry policy of its own.

    Observers and guards are *hooks*: a run with neither calls none of the methods below
    :meth:`stream`, except on a failure or a stop.
    """

    # What only some runs set; a run nobody watches never pays for storing them.
    _inbox: deque[WorkflowEvent] | None = None
    _wakeup: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None  # the run's loop, once its inbox is open
    _holds = False  # an open inbox keeps the run waiting until it is closed
    _answers = False  # the run takes answers: it waits while requests are open
    _wait_timeout: float | None = None
    _waiting = False  # its queue is empty and it waits for events from outside
    _requests: Requests | None = None  # made at the first request
    _ended = False
    _hooked = False  # some observer, guard, check, retry or call to run again needs the hooks
    _status: RunStatus = "running"  # until a guard stops the run or its caller leaves it
    _run_id: str | None = None
    _workflow_name: str | None = None
    _group: ObserverGroup | None = None
    _tracking = False
    _info: RunInfo | None = None
    _watchdog: Watchdog | None = None
    _guard: Watchdog | None = None  # the watchdog while a handler step runs
    _call: HandlerCall | None = None  # the handler call running, when tracked
    _clock_start = 0.0
    _ran = 0.0  # seconds a resumed run had run before
    _check: Callable[[WorkflowEvent], str | None] | None = None
    _reruns: dict[tuple[int, int], tuple[int, int]] = {}  # noqa: RUF012 - never changed in place
    _run_timeout: float | None = None
    _call_timeout: float | None = None
    _slots: Slots | None = None  # calls of an overlapping run
    _retry: Retry | None = None
    _retrying = False
    _deadline: float | None = None
    _attempt = 1  # the attempt of the call the loop runs itself
    _seq = -1  # counters of a new run; a saved state brings its own
    _count = 0
    _errors = 0

    def __init__(
        self,
        route: RouteOf,
        start: WorkflowEvent | RunState,
        max_events: int | None = None,
        timeout: float | None = None,
        handler_timeout: float | None = None,
        observers: Sequence[WorkflowObserver] = (),
        run_id: str | None = None,
        workflow_name: str | None = None,
        reruns: dict[tuple[int, int], tuple[int, int]] | None = None,
        check: Callable[[WorkflowEvent], str | None] | None = None,
        *,
        concurrency: int = 1,
        retry: Retry | None = None,
        retrying: bool = False,
    ) -> None:
        self._route = route
        if concurrency > 1:
            self._slots = Slots(concurrency)
        if retry is not None or retrying:
            self._retry, self._retrying, self._hooked = retry, True, True
        self._limit = sys.maxsize if max_events is None else max_events
        if timeout is not None or handler_timeout is not None:
            self._run_timeout, self._call_timeout = timeout, handler_timeout
            self._hooked = True
        self._queue: deque[Queued] = deque()
        if start.__class__ is WorkflowEvent or isinstance(start, WorkflowEvent):
            self._roots: list[WorkflowEvent] = [start]
            self._first = start
        else:
            first = start.initial_event or next(
                (e for e in (*start.roots, *(p.event for p in start.pending))), None
            )
            if first is None:
                raise ValueError("a run must start from an event: this state names none")
            self._queue.extend(filter(None, map(self._requeue, start.pending)))
            self._roots = list(start.roots)
            self._first = first
            self._seq, self._count, self._errors = start.seq, start.count, start.errors
            self._ran = start.elapsed
            for seq, request in start.requests:
                self._open_requests().ask(request, seq)
        if run_id is not None:
            self._run_id = run_id
        if workflow_name is not None:
            self._workflow_name = workflow_name
        if observers:
            self._group = group = ObserverGroup(observers)
            self._tracking, self._hooked = group.tracks_calls, True
        if reruns:
            self._reruns, self._hooked = dict(reruns), True
        if check is not None:
            self._check, self._hooked = check, True

    @property
    def run_id(self) -> str:
        """The run's id (made when first asked for: a run nobody watches never needs one)."""
        if self._run_id is None:
            self._run_id = new_run_id()
        return self._run_id

    # Events from outside the run ---------------------------------------------------

    def open_inbox(self) -> None:
        """Let events arrive from outside: an empty queue waits for them instead of ending."""
        self._holds = True
        self._start_inbox()

    def take_answers(self, wait_timeout: float | None = None) -> None:
        """Let answers to the run's requests arrive (:meth:`answer`).

        While a request is open and the queue is empty, the run waits, after yielding
        :data:`WAITING`; a wait longer than ``wait_timeout`` seconds gives the open requests
        up with an error event.
        """
        self._answers, self._wait_timeout = True, wait_timeout
        self._start_inbox()

    def _start_inbox(self) -> None:
        if self._inbox is None:
            self._inbox = deque()
            self._wakeup = asyncio.Event()
            self._loop = _running_loop()

    def _check_thread(self) -> None:
        """Events from outside come in the thread of the run's event loop, or not at all."""
        if self._loop is not None and _running_loop() is not self._loop:
            raise RuntimeError(
                "events and answers go to a run from the thread of its event loop; from "
                "another thread, use loop.call_soon_threadsafe(run.send_nowait, event) or "
                "asyncio.run_coroutine_threadsafe(run.send(event), loop)"
            )

    @property
    def requests(self) -> list[WorkflowEvent]:
        """The open requests for input, oldest first."""
        return [] if self._requests is None else self._requests.open()

    @property
    def ended(self) -> bool:
        """Whether the run has ended (its stream is over)."""
        return self._ended

    @property
    def waiting(self) -> bool:
        """Whether the queue is empty and the run waits for events from outside."""
        return self._waiting

    def answer(self, event: WorkflowEvent, request: WorkflowEvent | None = None) -> WorkflowEvent:
        """Deliver ``event`` as the answer to the open request it replies to; return that request.

        Raises:
            AnswerError: No open request takes it (``request``, when given, is not open), its
                value is not one of the choices, or its data cannot be logged; nothing changes.
            RuntimeError: The run takes no answers (see :meth:`take_answers`).
        """
        if not self._answers:
            raise RuntimeError("this run takes no answers; call take_answers() first")
        self._check_thread()
        if self._ended:
            raise AnswerError(
                f"run {self.run_id!r} has ended; it takes no more answers (a durable run left "
                "waiting goes on with workflow.resume(run_id, store, answers=[...]))"
            )
        if self._check is not None and (problem := self._check(event)):
            raise AnswerError(f"the answer cannot be logged: {problem}")
        asked = self._open_requests().answer(event, request)
        self._put(event)
        return asked

    def deliver(self, event: WorkflowEvent) -> None:
        """Hand the run an event from outside; it is emitted once the queue is empty.

        Raises:
            RuntimeError: The inbox is not open (see :meth:`open_inbox`), or this is not the
                thread of the run's event loop.
        """
        self._check_thread()
        self._put(event)

    def _put(self, event: WorkflowEvent) -> None:
        if self._inbox is None or self._wakeup is None:
            raise RuntimeError("this run takes no events from outside; call open_inbox() first")
        self._inbox.append(event)
        self._wakeup.set()

    def close_inbox(self) -> None:
        """No more events will arrive: the run ends once its queue and inbox are empty."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            self._roots.extend(inbox)
        if self._wakeup is not None:
            self._wakeup.set()

    def _take_roots(self) -> tuple[AsyncGenerator[WorkflowEvent, None], Step]:
        """The events that entered the run from outside so far, as one step to emit."""
        roots, self._roots = self._roots, []
        self._guard = None  # they are no handler's work
        return _each(roots), (roots[0], None, None, 0, self._route, None, None)

    async def _wait(self, seq: int, count: int) -> AsyncGenerator[WorkflowEvent, None]:
        """When the run waits: :data:`WAITING` for the run's handle, if it takes answers,
        then the wait for events from outside."""
        if self._waiting:
            if self._answers:
                yield WAITING
            await self._arrivals(seq, count)

    async def _arrivals(self, seq: int, count: int) -> None:
        """Wait until events arrive from outside, the inbox is closed or the wait times out."""
        self._seq, self._count = seq, count
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        deadline = None
        if self._wait_timeout is not None:
            deadline = asyncio.get_running_loop().time() + self._wait_timeout
        while self._inbox is not None and self._wakeup is not None:
            if self._inbox:
                self._roots.extend(self._inbox)
                self._inbox.clear()
                break
            self._wakeup.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wakeup.wait()
            except TimeoutError:
                self._give_up_requests("wait_timeout")
                break
        self._waiting = False
        if self._info is not None:
            self._info.status = "running"

    # The loop ----------------------------------------------------------------------

    async def stream(self) -> AsyncGenerator[WorkflowEvent, None]:
        """Every event of the run, in the order it is emitted; see ``WorkflowManager.process``."""
        route, queue, limit, slots = self._route, self._queue, self._limit, self._slots
        seq, count, kind, held, item = self._seq, self._count, WorkflowEvent, False, None
        rest: list[HandlerRegistration] = []  # an event's handlers still to run, next one last
        try:
            on_event, guarded, stepping = self._start() if self._hooked else _UNHOOKED
            while True:
                if rest:
                    registration: HandlerRegistration | None = rest.pop()
                elif slots is not None and (taken := await self._overlapping(slots, bool(queue))):
                    registration, (source, step) = None, taken
                    trigger, lineage, trigger_seq, depth, dispatch, item, name = step
                elif queue:
                    item = trigger, targets, parent, trigger_seq, depth = queue.popleft()
                    lineage, depth = (trigger.name, parent), depth + 1  # linked to its parent's
                    if not depth & LINEAGE_MASK:
                        lineage = cut(lineage)  # now and then, keep only the newest names
                    dispatch = route if trigger.name != ERROR else self._route_after_error
                    if slots is not None or targets.__class__ is tuple:
                        rest = self._calls_of(targets, item, lineage, depth, dispatch)
                        continue
                    registration = targets  # type: ignore[assignment]
                elif self._roots:
                    registration, (source, step) = None, self._take_roots()
                    trigger, lineage, trigger_seq, depth, dispatch, item, name = step
                elif self._rests(seq):  # the queue ran dry, yet the run goes on
                    async for waiting in self._wait(seq, count):
                        yield waiting
                    continue
                else:
                    break
                if registration is not None:
                    name, handler = registration.name, registration.handler
                    if stepping:
                        handler = self._step_started(registration, trigger, trigger_seq)
                    try:
                        source = handler(trigger)
                    except Exception as exc:
                        source = self._failed(handler_error(exc, "handler_error", name, trigger))
                while True:
                    try:
                        async for event in source:
                            if event.__class__ is not kind and not isinstance(event, kind):
                                raise NotAnEvent(event)
                            if (emitted := event.name) == INPUT_REQUIRED:
                                self._asked(event, seq + 1)
                            if on_event is not None:  # may refuse it: then it takes no number
                                on_event(event, seq + 1, trigger_seq, depth, name, trigger)
                            seq += 1
                            if emitted != PROGRESS:
                                count += 1
                                if (found := dispatch(emitted)) is not None:
                                    queue.append((event, found, lineage, seq, depth))
                            try:
                                yield event
                            except BaseException:
                                held = True  # thrown in while the caller held the event
                                raise
                            if count > limit:
                                raise self._max_events_stop(item, event, name)
                            if guarded:
                                self._resumed(name, trigger)
                    except BaseException as exc:
                        source = self._failed(await self._caught(exc, source, held, name, trigger))
                    else:
                        break
                if stepping:
                    self._step_ended(name, trigger)
        except Stop as stop:
            self._status, seq = stop.status, seq + 1
            yield self._stopped(stop, seq, item)
        except BaseException as exc:
            self._status = self._left(exc)
            raise
        finally:
            self._ended, self._seq, self._count = True, seq, count
            if slots is not None or self._hooked:
                await self._finish(self._status)

    # What the loop does rarely, or only for observers and guards --------------------

    def _rests(self, seq: int) -> bool:
        """The queue is empty: whether the run goes on (it waits for events from outside, or
        gives up the requests nothing can answer with an error event) rather than ending."""
        if self._requests and not self._answers:
            self._give_up_requests("left_open")
            return True
        inbox = self._inbox
        if inbox:  # events arrived while the queue ran: emit them without waiting
            self._roots.extend(inbox)
            inbox.clear()
            return True
        self._waiting = inbox is not None and bool(self._holds or self._requests)
        if self._waiting and self._info is not None:
            self._info.status = "waiting"
        if self._group is not None and self._group.hears_idle:
            assert self._info is not None
            self._info.events = seq + 1
            self._group.notify("run_idle", self._info, not self._waiting)
        return self._waiting

    def _open_requests(self) -> Requests:
        if self._requests is None:
            self._requests = Requests()
        return self._requests

    def _asked(self, request: WorkflowEvent, seq: int) -> None:
        """A handler asks: open the request, or refuse it as the handler's failure."""
        try:
            self._open_requests().ask(request, seq)
        except ValueError as exc:
            raise RefusedEvent(request, f"{exc}") from None

    def _refused(self, seq: int) -> None:
        """The event that would have been numbered ``seq`` is refused before it is emitted:
        the request it opened, if it is one, is not open."""
        if self._requests is not None:
            self._requests.drop(seq)

    def _give_up_requests(self, reason: str) -> None:
        """End the wait for every open request with one error event, emitted next."""
        given_up = [] if self._requests is None else self._requests.abandon()
        if given_up:
            self._roots.append(unanswered_error(given_up, reason, self._wait_timeout))

    def _route_after_error(self, name: str) -> Route | None:
        """Routing for events emitted while handling an error: errors are not dispatched."""
        return None if name == ERROR else self._route(name)

    def _requeue(self, pending: Pending) -> Queued | None:
        """``pending`` as a queue entry, routed by the handlers registered now."""
        route = self._route(pending.event.name)
        if route is not None and pending.positions is not None:
            kept = tuple(r for r in _registrations(route) if r.position in pending.positions)
            route = kept[0] if len(kept) == 1 else (kept or None)
        if route is None:
            return None
        return (pending.event, route, lineage_of(pending.ancestry), pending.seq, pending.depth)

    def _start(self) -> tuple[EventHook | None, bool, bool]:
        """Open a run that has hooks (:meth:`_open`) and return them: what the loop calls for
        each event (``None`` when nothing watches the run), whether a guard hears when the
        caller hands control back (:meth:`_resumed`), and whether handler steps need to be
        started and ended (tracked calls, guards, calls to run again, retries). A run that
        needs none of them does not call this: its hooks are :data:`_UNHOOKED`."""
        guarded = self._run_timeout is not None or self._call_timeout is not None
        stepping = guarded or self._tracking or bool(self._reruns) or self._retrying
        if not guarded and self._group is None and self._check is None:
            return None, False, stepping
        if guarded or self._tracking or self._check or (self._group and self._group.hears_events):
            on_event: EventHook = self._emitting
        else:
            on_event = self._counting
        self._open()
        return on_event, guarded, stepping

    def _open(self) -> None:
        """Start the guards and tell the observers that the run starts."""
        if self._run_timeout is not None or self._call_timeout is not None:
            loop = asyncio.get_running_loop()
            deadline = None if self._run_timeout is None else loop.time() + self._run_timeout
            self._watchdog = Watchdog(loop, deadline, self._call_timeout)
            self._deadline = deadline
        elif self._group is None:
            return
        self._clock_start = time.perf_counter() - self._ran
        if self._group is not None:
            self._info = RunInfo(self.run_id, self._first, time.time(), self._workflow_name)
            self._info.events, self._info.errors = self._seq + 1, self._errors
            self._group.notify("run_started", self._info)

    def _step_started(
        self,
        registration: HandlerRegistration,
        trigger: WorkflowEvent,
        trigger_seq: int | None,
        holder: CallHolder | None = None,
        attempt: int = 0,
    ) -> EventHandler | Callable[[WorkflowEvent], AsyncGenerator[WorkflowEvent, None]]:
        """A handler step begins (``attempt`` 0), or a retried call's next ``attempt``: track
        its call, start its guard; what to call the handler with. ``holder`` keeps the call
        and guard: the engine for the call it runs itself, a :class:`CallContext` for a call
        in a task of its own. A call run again on resume goes on from the attempt after those
        its log holds as retried, and its first events already logged are matched."""
        into: CallHolder = self if holder is None else holder
        matched = begins = 0
        if not attempt:
            begins = attempt = 1
            if self._reruns and trigger_seq is not None:
                matched, made = self._reruns.pop((trigger_seq, registration.position), (0, 0))
                attempt += made
            into._guard = self._watchdog if holder is None else self._call_watchdog()
            into._attempt = attempt  # what its error counts, with a retry policy or without
        if self._tracking:
            assert self._info is not None and self._group is not None and trigger_seq is not None
            # HandlerCall(...) spelled out on a bare instance: half the cost of calling the
            # class, once per handler step; tests/test_engine.py checks every field is set.
            call = into._call = _bare_call(HandlerCall)
            call.run, call.handler, call.trigger = self._info, registration.handler, trigger
            call.handler_name, call.position = registration.name, registration.position
            call.trigger_seq, call.started = trigger_seq, time.perf_counter() - self._clock_start
            call.finished, call.status, call.emitted, call.error = None, "running", 0, None
            call.attempt = attempt
            if self._group.hears_call_starts:
                self._group.notify("handler_started", call)
        handler: Any = registration.handler
        guard = into._guard
        if guard is not None:
            if expired := guard.start():
                raise self._timeout_stop(expired, registration.name, trigger, started=False)
            handler = guard_handler(handler, guard, registration.name)
        if begins and self._retrying and (policy := registration.retry or self._retry):
            handler = functools.partial(
                self._attempts, into, policy, registration, trigger_seq, attempt, handler
            )
        if matched:
            # Outside the attempts: an attempt that yields an event already logged has
            # yielded a dispatched event, so it is not retried.
            handler = functools.partial(_matching, handler, matched)
        return handler  # type: ignore[no-any-return]

    def _emitting(
        self,
        event: WorkflowEvent,
        seq: int,
        parent_seq: int | None,
        depth: int,
        handler_name: str | None,
        trigger: WorkflowEvent,
    ) -> None:
        """``event`` is about to be yielded: stop the handler's clock, tell the observers."""
        if self._guard is not None and (expired := self._guard.pause()):
            raise self._timeout_stop(expired, handler_name, trigger)
        if self._check is not None and handler_name is not None and (found := self._check(event)):
            self._refused(seq)
            raise RefusedEvent(event, f"handler {handler_name!r} yielded {event.name!r}: {found}")
        info = self._info
        if info is None:
            return
        info.events = seq + 1
        if event.name == ERROR:
            info.errors += 1
        call = self._call
        if call is not None:
            call.emitted += 1
        elapsed = time.perf_counter() - self._clock_start
        group = self._group
        assert group is not None
        emitted = fields = None
        if group.event_objects_wanted:
            emitted = _new_emitted(
                EmittedEvent, (event, seq, parent_seq, depth, handler_name, elapsed, info, call)
            )
        if group.event_fields_wanted:
            fields = event_fields(event, seq, parent_seq, depth, handler_name, elapsed, info)
        for observer, listener, takes_fields in group.event_listeners:
            try:
                listener(fields if takes_fields else emitted)
            except Exception as exc:
                group.report(observer, "event_emitted", exc)

    def _counting(
        self,
        event: WorkflowEvent,
        seq: int,
        parent_seq: int | None,
        depth: int,
        handler_name: str | None,
        trigger: WorkflowEvent,
    ) -> None:
        """``event`` is about to be yielded to a run whose observers hear only of the run."""
        if event.name == ERROR:
            assert self._info is not None
            self._info.errors += 1

    def _resumed(self, handler_name: str | None, trigger: WorkflowEvent) -> None:
        """The caller asks for the next event: the handler's clock runs again."""
        if self._guard is not None and (expired := self._guard.resume()):
            raise self._timeout_stop(expired, handler_name, trigger)

    async def _attempts(
        self,
        holder: CallHolder,
        policy: Retry,
        registration: HandlerRegistration,
        trigger_seq: int | None,
        attempt: int,
        handler: Callable[[WorkflowEvent], AsyncIterator[WorkflowEvent]],
        trigger: WorkflowEvent,
    ) -> AsyncGenerator[WorkflowEvent, None]:
        """A call whose handler has a retry policy: its attempts, one after another, from
        ``attempt`` (above 1 for a call its log shows retried before the run was resumed).

        An attempt is retried when it raised one of ``policy.on`` before yielding any event
        but progress (see :class:`~baxiflow.Retry`); otherwise its error ends the call.
        """
        while True:
            dispatched = False
            try:
                async with contextlib.aclosing(handler(trigger)) as agen:  # type: ignore[type-var]
                    async for event in agen:
                        dispatched = dispatched or getattr(event, "name", None) != PROGRESS
                        yield event
                return
            except Exception as exc:
                if (
                    dispatched
                    or isinstance(exc, _NOT_THE_HANDLERS)
                    or not policy.retries(exc, attempt)
                ):
                    holder._attempt = attempt
                    raise
                self._attempt_failed(holder, exc, registration.name, trigger)
                await asyncio.sleep(self._before_deadline(policy.delay(attempt)))
            attempt += 1
            handler = self._step_started(registration, trigger, trigger_seq, holder, attempt)

    def _attempt_failed(
        self, holder: CallHolder, exc: Exception, name: str, trigger: WorkflowEvent
    ) -> None:
        """An attempt failed and another follows: stop its clock, end its call (its span) as
        ``retried``, which a durable log commits before the pause."""
        if holder._guard is not None:
            holder._guard.pause()
        if holder._call is not None:
            holder._call.error = handler_error(exc, "handler_error", name, trigger).error
            self._call_finished(holder._call, "retried")
            holder._call = None

    def _before_deadline(self, delay: float) -> float:
        """``delay``, cut short where the run's deadline comes first."""
        if self._deadline is None:
            return delay
        return max(0.0, min(delay, self._deadline - asyncio.get_running_loop().time()))

    def _call_watchdog(self) -> Watchdog | None:
        """The guard of one call in a task of its own: the run's deadline, a budget of its own."""
        if self._watchdog is None:
            return None
        return Watchdog(asyncio.get_running_loop(), self._deadline, self._call_timeout)

    def _step_ended(self, handler_name: str | None, trigger: WorkflowEvent) -> None:
        """A step has emitted everything: stop its guard, end its call."""
        if self._guard is not None and (expired := self._guard.pause()):
            raise self._timeout_stop(expired, handler_name, trigger)
        if self._call is not None:
            self._call_finished(self._call, "ok")
            self._call = None

    def _call_finished(self, call: HandlerCall, status: HandlerStatus) -> None:
        """End ``call`` with ``status`` and tell the observers of calls, in order."""
        call.status = status
        call.finished = time.perf_counter() - self._clock_start
        group = self._group
        assert group is not None
        fields = call_fields(call) if group.call_fields_wanted else None
        for observer, listener, takes_fields in group.call_listeners:
            try:
                listener(fields if takes_fields else call)
            except Exception as exc:
                group.report(observer, "handler_finished", exc)

    def _failed(self, failure: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
        """The running handler failed: end its call; the failure, to emit like any event."""
        if self._call is not None:
            self._call.error = failure.error
            self._call_finished(self._call, "error")
            self._call = None
        self._guard = None
        return _each([failure])

    async def _caught(
        self,
        exc: BaseException,
        source: AsyncGenerator[WorkflowEvent, None],
        yielded: bool,
        name: str | None,
        trigger: WorkflowEvent,
        holder: CallHolder | None = None,
    ) -> WorkflowEvent:
        """``exc`` came out of a step: the handler's error event, or raise what ends the run.

        A handler's own exception is its failure, and so is a yield that is not an event
        (the handler is closed first). Anything else, or whatever was thrown in while the
        caller held an event (``yielded``), closes the handler so its ``finally`` runs, and
        propagates, except the guard's own cancellation, which becomes its stop.
        """
        holder = self if holder is None else holder
        guard = holder._guard
        if isinstance(exc, Exception) and not yielded and not isinstance(exc, _NOT_THE_HANDLERS):
            assert name is not None, "events from outside the run cannot fail"
            if guard is not None and (expired := guard.pause()):
                raise self._timeout_stop(expired, name, trigger) from None
            if not isinstance(exc, NotAnEvent):
                attempts, holder._attempt = holder._attempt, 1
                return handler_error(exc, "handler_error", name, trigger, attempts=attempts)
            await close(source, guard)
            if guard is not None and guard.expired is not None:
                # Its cleanup ran out of time.
                raise self._timeout_stop(guard.expired, name, trigger) from None
            if isinstance(exc, RefusedEvent):
                return handler_error(ValueError(exc.problem), "refused_event", name, trigger)
            return invalid_event_error(exc.value, name, trigger)
        timed_out = guard is not None and guard.expired is not None
        await close(source, guard)
        cancelled = isinstance(exc, asyncio.CancelledError)
        if cancelled and timed_out and guard and (expired := guard.claim_cancellation()):
            raise self._timeout_stop(expired, name, trigger) from None
        raise exc

    # Overlapping calls (concurrency above 1) ---------------------------------------

    async def _overlapping(self, slots: Slots, queued: bool) -> Taken | None:
        """What the loop runs or emits next in an overlapping run: a call to run itself, or
        what a call in a task handed over; ``None`` once ``queued`` events wait for dispatch
        or nothing is left. Starts calls in tasks of their own and ends those that ended."""
        while (work := await slots.next(queued)) is not None:
            kind, context, value = work
            if kind == START:
                self._start_apart(slots, context)
                continue
            if kind == EVENT:
                self._call = context._call
                return _locals(context, self._handed(slots, context, value))
            slots.finished(context)
            if kind == ENDED:
                if context._call is not None:
                    self._call_finished(context._call, "ok")
                continue
            self._call = context._call
            if kind == FAILED:
                return _locals(context, self._failed(value))
            raise value  # a guard's stop, out of the call's task
        return None

    def _calls_of(
        self, route: Route, item: Queued, lineage: Lineage | None, depth: int, dispatch: RouteOf
    ) -> list[HandlerRegistration]:
        """The handlers of a dequeued event still to run, next one last; an overlapping run
        makes them calls that wait for a slot instead, and leaves none."""
        if self._slots is None:
            return list(reversed(route))  # type: ignore[arg-type]
        self._slots.add(route, item, lineage, depth, dispatch)
        return []

    def _start_apart(self, slots: Slots, context: CallContext) -> None:
        task = asyncio.get_running_loop().create_task(self._pump(slots, context))
        context.task = task
        slots.tasks[task] = context

    async def _pump(self, slots: Slots, context: CallContext) -> None:
        """A call in a task of its own: run its handler, hand the loop each event (waiting
        until the caller asks for the next), then its end, failure or a guard's stop."""
        registration, trigger = context.registration, context.trigger
        name = registration.name
        try:
            handler = self._step_started(registration, trigger, context.trigger_seq, context)
            try:
                context.source = handler(trigger)  # type: ignore[assignment]
            except Exception as exc:
                slots.put((FAILED, context, handler_error(exc, "handler_error", name, trigger)))
                return
            source = context.source
            assert source is not None
            try:
                async for event in source:
                    if event.__class__ is not WorkflowEvent and not isinstance(
                        event, WorkflowEvent
                    ):
                        raise NotAnEvent(event)
                    if context._guard is not None and (expired := context._guard.pause()):
                        raise self._timeout_stop(expired, name, trigger)
                    await slots.hand(context, event)
                    if context._guard is not None and (expired := context._guard.resume()):
                        raise self._timeout_stop(expired, name, trigger)
            except BaseException as exc:
                failure = await self._caught(exc, source, False, name, trigger, context)
                slots.put((FAILED, context, failure))
            else:
                slots.put((ENDED, context, None))
        except asyncio.CancelledError:
            raise  # the run is closing its calls
        except BaseException as exc:
            slots.put((RAISED, context, exc))
        finally:
            if context._guard is not None:
                context._guard.close()

    async def _handed(
        self, slots: Slots, context: CallContext, event: WorkflowEvent
    ) -> AsyncGenerator[WorkflowEvent, None]:
        """The event a call in a task handed over, as a step of its own; once the caller
        asks for the next event, the call goes on."""
        try:
            yield event
        except GeneratorExit:
            # The loop refused the event (a durable log's check): that is the call's failure.
            slots.drop(context)
            raise
        self._call = None
        slots.release(context)

    async def _finish(self, status: RunStatus) -> None:
        """The run ends: close the calls still running, stop the guards, tell the observers."""
        if self._slots is not None:
            for context in await self._slots.close():
                if context._call is not None and context._call.status == "running":
                    self._call_finished(context._call, "cancelled")
        self._close_run(status)

    def _left(self, exc: BaseException) -> RunStatus:
        """How a run ends that the caller left (``exc``: closed or cancelled)."""
        if self._waiting:
            return "waiting"  # left while it waits: a durable run goes on later
        return "stopped" if isinstance(exc, GeneratorExit) else "cancelled"

    def _max_events_stop(self, item: Queued | None, last: WorkflowEvent, name: str | None) -> Stop:
        error = max_events_error(self._limit, item, last, name, self._queue)
        return Stop(error)

    def _timeout_stop(
        self, expired: Expiry, name: str | None, trigger: WorkflowEvent, *, started: bool = True
    ) -> Stop:
        assert name is not None, "only handler steps are guarded"
        elapsed = time.perf_counter() - self._clock_start
        return Stop(timeout_error(expired, elapsed, name, trigger, started=started))

    def _stopped(self, stop: Stop, seq: int, item: Queued | None) -> WorkflowEvent:
        """A guard ended the run: end the running call and emit the final event."""
        if self._call is not None:
            self._call.error = stop.event.error
            self._call_finished(self._call, "timeout" if stop.status == "timeout" else "cancelled")
            self._call = None
        self._guard = None
        parent_seq, depth = (None, 0) if item is None else (item[3], item[4] + 1)
        handler_name = (stop.event.data or {}).get("handler")
        self._emitting(stop.event, seq, parent_seq, depth, handler_name, stop.event)
        return stop.event

    def _close_run(self, status: RunStatus) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
        info = self._info
        if info is None:
            return
        if self._call is not None and self._call.status == "running":
            self._call_finished(self._call, "cancelled")
        info.status = ended_status(info.errors) if status == "running" else status
        info.events = self._seq + 1
        self._errors = info.errors
        info.duration = time.perf_counter() - self._clock_start
        assert self._group is not None
        self._group.notify("run_finished", info)


class CallHolder(Protocol):
    """Where a handler call's tracking and guard live: the engine, or a :class:`CallContext`."""

    _call: HandlerCall | None
    _guard: Watchdog | None
    _attempt: int


Step: TypeAlias = tuple[
    WorkflowEvent, "Lineage | None", "int | None", int, RouteOf, "Queued | None", "str | None"
]
"""What the loop knows of the step it emits from: ``(trigger, lineage, trigger_seq, depth,
dispatch, item, handler name)``."""

Taken: TypeAlias = tuple[Any, Step]
"""What an overlapping run's loop takes next: ``(source to emit from, step)``."""


def _locals(context: CallContext, source: AsyncGenerator[WorkflowEvent, None]) -> Taken:
    """What the loop emits next in an overlapping run: ``source``, a step of ``context``'s call."""
    step: Step = (
        context.trigger,
        context.lineage,
        context.trigger_seq,
        context.depth,
        context.dispatch,
        context.item,
        context.registration.name,
    )
    return source, step


EventHook: TypeAlias = Callable[
    [WorkflowEvent, int, "int | None", int, "str | None", WorkflowEvent], None
]
"""What the loop calls for each event of a watched run: ``(event, seq, parent_seq, depth,
handler_name, trigger)``."""

_UNHOOKED: tuple[EventHook | None, bool, bool] = (None, False, False)
"""The hooks of a run that no observer, guard, check, retry or call to run again needs."""

_bare_call = object.__new__

_new_emitted = tuple.__new__
"""Makes an :class:`EmittedEvent` from a tuple of all its fields without the Python-level
``__new__`` of a named tuple; ``tests/test_engine.py`` checks that every field is set."""

_NOT_THE_HANDLERS = (Stop, ObserverWarning)
"""Exceptions out of a step that are no fault of the handler: a guard's stop (or a failed
log's), and an observer's warning turned into an error by the warnings filter."""


async def _matching(
    handler: EventHandler, matched: int, event: WorkflowEvent
) -> AsyncGenerator[WorkflowEvent, None]:
    """A call run again on resume: its first ``matched`` events are already the run's."""
    async with contextlib.aclosing(handler(event)) as agen:  # type: ignore[type-var]
        async for emitted in agen:
            if matched:
                matched -= 1
            else:
                yield emitted


async def _each(events: list[WorkflowEvent]) -> AsyncGenerator[WorkflowEvent, None]:
    """Emit ``events`` as a step of their own: failures, and events arriving from outside."""
    for event in events:
        yield event


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if one is."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _registrations(route: Route) -> tuple[HandlerRegistration, ...]:
    return route if isinstance(route, tuple) else (route,)
