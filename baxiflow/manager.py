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
from typing import Any, Final, Protocol, Self, TypeAlias, TypeVar

from baxiflow._asking import Requests
from baxiflow._checks import check_limit
from baxiflow._durable import (
    Durability,
    LoggedEvent,
    RunStore,
    fingerprint,
    fork_state,
)
from baxiflow._engine import Engine
from baxiflow.event import WorkflowEvent
from baxiflow.handle import WorkflowRun
from baxiflow.observe import Observer, WorkflowObserver, as_observer
from baxiflow.registry import EventHandler, HandlerRegistration, Registry, check_handled_name
from baxiflow.retry import Retry

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
        store: Log every run durably there (see :mod:`baxiflow.store`); ``None`` for none.
        wait_timeout: Most seconds a run started with :meth:`start` waits for an answer
            to its requests before giving them up with an error event; ``None`` for no limit.
        concurrency: Most handler calls running at once in one run. At 1 (the default) a
            run calls one handler at a time, as the spec describes. At N, a call starts as
            soon as its event is dispatched and a slot is free, in dispatch order, and runs
            while others wait; see "Concurrency and retries" in the README for what order holds.
        retry: The :class:`~baxiflow.Retry` policy of every handler registered without one
            of its own; ``None`` for no retries.

    Each of ``max_events``, ``timeout`` and ``handler_timeout`` can be overridden for one
    run in :meth:`process`. A guard that trips ends the run with a final ``"error"`` event
    whose ``data["reason"]`` is ``"max_events"``, ``"timeout"`` or ``"handler_timeout"``.
    A handler that keeps ignoring its cancellation is left to go on in a task of its own
    (with a :class:`~baxiflow.exceptions.HandlerWarning`), so the run still ends.
    """

    __slots__ = (
        "_fingerprint",
        "_observers",
        "_registry",
        "concurrency",
        "handler_timeout",
        "max_events",
        "name",
        "retry",
        "store",
        "timeout",
        "wait_timeout",
    )

    def __init__(
        self,
        *,
        max_events: int | None = DEFAULT_MAX_EVENTS,
        timeout: float | None = None,
        handler_timeout: float | None = None,
        observers: Iterable[Observer] = (),
        name: str | None = None,
        store: RunStore | None = None,
        wait_timeout: float | None = None,
        concurrency: int = 1,
        retry: Retry | None = None,
    ) -> None:
        self.concurrency: int = _check_concurrency(concurrency)
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a baxiflow.Retry or None, got {retry!r}")
        self.retry = retry
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str or None, got {name!r}")
        self.name = name
        self.store = store
        self._registry = Registry()
        self._fingerprint: str | None = None
        self.max_events: int | None = check_limit("max_events", max_events, integer=True)
        self.timeout: float | None = check_limit("timeout", timeout, integer=False)
        self.handler_timeout: float | None = check_limit(
            "handler_timeout", handler_timeout, integer=False
        )
        self._observers: list[WorkflowObserver] = [as_observer(o) for o in observers]
        self.wait_timeout: float | None = check_limit("wait_timeout", wait_timeout, integer=False)

    def __repr__(self) -> str:
        events = ", ".join(
            f"{name!r}: {len(self._registry.handlers_for(name))}"
            for name in self._registry.event_names()
        )
        return f"<WorkflowManager handlers={{{events}}}>"

    # Registration -----------------------------------------------------------------

    def register(
        self,
        event_name: str,
        handler: EventHandler,
        *,
        emits: Iterable[str] | None = None,
        concurrency: int | None = None,
        sequential: bool = True,
        retry: Retry | None = None,
    ) -> Self:
        """Add ``handler`` for ``event_name``; handlers of one event run in registration order.

        Args:
            event_name: The event the handler receives.
            handler: An async generator function taking a :class:`WorkflowEvent`.
            emits: Optional names of the events the handler may yield (documentation for
                diagrams and validation; not enforced at run time).
            concurrency: Most calls of this handler running at once in a run (a rate limit
                for a fragile API); ``None`` for no limit of its own.
            sequential: ``False`` lets its calls start without waiting for the handlers
                registered before it on the same event to end (only when the run's
                ``concurrency`` is above 1).
            retry: How a failing call is retried (a :class:`~baxiflow.Retry`); ``None`` for
                the manager's ``retry``.

        Returns:
            The manager itself, so registrations chain.

        Raises:
            HandlerTypeError: ``handler`` is not an async generator function (a ``TypeError``).
            EventNameError: ``event_name`` is not a non-empty string, or is ``"progress"``,
                whose events are never dispatched (a ``ValueError``).
            ValueError: ``concurrency`` is not a positive int.
            TypeError: ``sequential`` is not a bool, or ``retry`` not a ``Retry``.

        >>> async def a(event):
        ...     yield event
        >>> WorkflowManager().register("one", a).register("two", a)
        <WorkflowManager handlers={'one': 1, 'two': 1}>
        """
        self._registry.add(
            event_name, handler, emits=emits, concurrency=concurrency, sequential=sequential,
            retry=retry,
        )  # fmt: skip
        self._fingerprint = None
        return self

    def on(
        self,
        event_name: str,
        *,
        emits: Iterable[str] | None = None,
        concurrency: int | None = None,
        sequential: bool = True,
        retry: Retry | None = None,
    ) -> Callable[[H], H]:
        """Decorator form of :meth:`register` (same options); returns the handler unchanged.

        >>> workflow = WorkflowManager()
        >>> @workflow.on("start", emits=["done"])
        ... async def start(event):
        ...     yield WorkflowEvent("done")
        >>> workflow.handlers_for("start") == (start,)
        True
        """

        check_handled_name(event_name)  # now, so a mistake shows where it was made

        def decorate(handler: H) -> H:
            self.register(
                event_name, handler, emits=emits, concurrency=concurrency,
                sequential=sequential, retry=retry,
            )  # fmt: skip
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
        store: RunStore | _Unset | None = _UNSET,
        run_id: str | None = None,
        durability: Durability = "batched",
        concurrency: int | None = None,
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
            store: Log the run durably there (see :mod:`baxiflow.store`); overrides the
                manager's ``store``; ``None`` for no log.
            run_id: The id of the logged run; a new one by default.
            durability: When the log is committed: ``"sync"`` (at every event, before the
                caller gets it), ``"batched"`` (at least every 100 ms, and at the end) or
                ``"exit"`` (at the end only: a crash loses the run).
            concurrency: Overrides the manager's ``concurrency`` for this run.

        Returns:
            An async generator of every event of the run, in emission order. Nothing runs
            until you iterate it.

        Raises:
            TypeError: ``initial_event`` is not a :class:`WorkflowEvent` (raised by the call
                itself, before any iteration).
            ValueError: A guard setting is not a positive number or ``None``.
        """
        return self._new_run(
            "process", initial_event, max_events, timeout, handler_timeout, observers, store,
            run_id, durability, concurrency,
        ).stream()  # fmt: skip

    def start(
        self,
        initial_event: WorkflowEvent,
        *,
        max_events: int | _Unset | None = _UNSET,
        timeout: float | _Unset | None = _UNSET,
        handler_timeout: float | _Unset | None = _UNSET,
        observers: Iterable[Observer] = (),
        store: RunStore | _Unset | None = _UNSET,
        run_id: str | None = None,
        durability: Durability = "batched",
        concurrency: int | None = None,
        wait_timeout: float | _Unset | None = _UNSET,
    ) -> WorkflowRun:
        """Run the workflow from ``initial_event`` as a :class:`~baxiflow.handle.WorkflowRun`
        that takes answers to its requests for input.

        ``async for event in run`` yields what :meth:`process` yields; ``await
        run.answer(request, value)`` or ``await run.send(event)`` answers a request (see
        :mod:`baxiflow.handle`). While a request is open and the queue is empty, the run
        waits for its answer instead of ending.

        Args:
            initial_event: The event to start from.
            wait_timeout: Most seconds one wait for answers may last, then the open
                requests are given up with an error event naming their prompts (the run
                goes on: ``"error"`` handlers get it); overrides the manager's; ``None``
                for no limit.
            max_events, timeout, handler_timeout, observers, store, run_id, durability,
            concurrency: As in :meth:`process`. A run's ``timeout`` is checked while its handlers
                work; time spent waiting for an answer counts only against ``wait_timeout``.

        Raises:
            TypeError: ``initial_event`` is not a :class:`WorkflowEvent`.
            ValueError: A guard setting is not a positive number or ``None``.
        """
        engine = self._new_run(
            "start", initial_event, max_events, timeout, handler_timeout, observers, store,
            run_id, durability, concurrency,
        )  # fmt: skip
        engine.take_answers(self._wait_timeout(wait_timeout))
        return WorkflowRun(engine)

    def _new_run(
        self,
        caller: str,
        initial_event: WorkflowEvent,
        max_events: int | _Unset | None,
        timeout: float | _Unset | None,
        handler_timeout: float | _Unset | None,
        observers: Iterable[Observer],
        store: RunStore | _Unset | None,
        run_id: str | None,
        durability: Durability,
        concurrency: int | None,
    ) -> Engine:
        """The engine of a new run, as :meth:`process` and :meth:`start` describe it."""
        if not isinstance(initial_event, WorkflowEvent):
            raise TypeError(
                f"{caller}() takes a WorkflowEvent to start from, got {type(initial_event).__name__}"
            )
        options = self._options(concurrency)
        if (
            options is None
            and max_events is timeout is handler_timeout is store is _UNSET
            and not observers
            and run_id is None
            and self.store is None
        ):  # the common case, in short: the manager's settings, nothing for this run alone
            return Engine(
                self._registry.route, initial_event, self.max_events, self.timeout,
                self.handler_timeout, self._observers, None, self.name,
            )  # fmt: skip
        guards = self._guards(max_events, timeout, handler_timeout)
        options = options or {}
        run_store = self.store if store is _UNSET else store
        extra = [as_observer(o) for o in observers] if observers else ()
        if run_store is None:
            if run_id is not None:
                raise ValueError("run_id= names a run in a store: pass store= as well")
            everyone = [*self._observers, *extra] if extra else self._observers
            # Positional: this runs once per run, and keyword arguments cost more to pass.
            return Engine(
                self._registry.route, initial_event, *guards, everyone, None, self.name, **options
            )
        if problem := run_store.check_event(initial_event):
            raise ValueError(f"the initial event cannot be logged: {problem}")
        log = run_store.open_run(run_id, self.fingerprint(), durability, workflow_name=self.name)
        everyone = [log, *self._observers, *extra]
        return Engine(
            self._registry.route, initial_event, *guards, everyone, log.run_id, self.name,
            check=run_store.check_event, **options,
        )  # fmt: skip

    def resume(
        self,
        run_id: str,
        store: RunStore,
        *,
        answers: Iterable[WorkflowEvent] = (),
        allow_changed: bool = False,
        durability: Durability = "batched",
        observers: Iterable[Observer] = (),
        max_events: int | _Unset | None = _UNSET,
        timeout: float | _Unset | None = _UNSET,
        handler_timeout: float | _Unset | None = _UNSET,
        wait_timeout: float | _Unset | None = _UNSET,
        concurrency: int | None = None,
    ) -> WorkflowRun:
        """Go on with an unfinished logged run: a :class:`~baxiflow.handle.WorkflowRun`, which
        ``async for`` iterates like :meth:`process`.

        Events already logged are not emitted again. A handler call that started and did
        not finish runs again; the events it yields that the log already holds (its first
        ones) are matched to the log, not logged or emitted twice. Every event is in the log
        exactly once; a handler's side effects may happen twice if the process died during
        that call (at least once). With several calls in flight when the run stopped,
        every one of them runs again.

        A run left ``waiting`` for answers goes on with ``answers``: reply events, as
        :meth:`WorkflowRun.send <baxiflow.handle.WorkflowRun.send>` takes them. They are
        emitted once the run's queue is empty; nothing before them runs again. Like a run
        from :meth:`start`, the resumed run waits for answers to requests still open.

        Raises:
            LookupError: The store has no such run.
            ValueError: The run finished, the handlers changed since it was logged (pass
                ``allow_changed=True`` to go on anyway), or another process is running it.
            AnswerError: An answer is refused (no open request takes it, or its value is
                not a choice); checked before the run is taken over, so nothing changes.
        """
        answers = list(answers)
        if answers and (logged := store.logged(run_id)):
            requests = Requests()
            for event in logged:
                requests.follow(event.event, event.seq, event.parent_seq)
            for answer in answers:
                requests.answer(answer)
        saved = store.resume_run(
            run_id,
            self.fingerprint(),
            durability,
            self._registry.route,
            allow_changed=allow_changed,
        )
        guards = self._guards(max_events, timeout, handler_timeout)
        everyone = [saved.log, *self._observers, *map(as_observer, observers)]
        engine = Engine(
            self._registry.route, saved.state, *guards, everyone, run_id, self.name, saved.reruns,
            check=store.check_event, **(self._options(concurrency) or {}),
        )  # fmt: skip
        engine.take_answers(self._wait_timeout(wait_timeout))
        for answer in answers:
            engine.answer(answer)
        return WorkflowRun(engine)

    def replay(
        self,
        source: ReplaySource,
        *,
        from_seq: int,
        store: RunStore | None = None,
        run_id: str | None = None,
        durability: Durability = "batched",
        observers: Iterable[Observer] = (),
    ) -> AsyncGenerator[WorkflowEvent, None]:
        """Fork a run from its event ``from_seq``, on the handlers registered now.

        ``source`` is a :class:`~baxiflow.trace.Trace` of one run, or ``(store, run_id)``.
        The fork starts where the source run stood just before event ``from_seq`` was
        dispatched: the events before are reused as they were (not run again, not yielded);
        from ``from_seq`` on, the handlers run. With ``store``, the fork is logged, the
        reused events first (marked as reused), with its parent run and fork point.

        Raises:
            LookupError: The source has no event ``from_seq``.
            ValueError: That event is never dispatched, or ``source`` holds several runs.
        """
        logged, parent_id = _replay_source(source)
        state, reused = fork_state(logged, from_seq, self._registry.route)
        everyone = [*self._observers, *map(as_observer, observers)]
        fork_id = run_id  # None: the engine, or the store, names the fork
        if store is not None:
            log = store.open_run(
                run_id,
                self.fingerprint(),
                durability,
                workflow_name=self.name,
                parent=(parent_id, from_seq),
                reused=reused,
            )
            everyone.insert(0, log)
            fork_id = log.run_id
        guards = self._guards(_UNSET, _UNSET, _UNSET)
        check = None if store is None else store.check_event
        return Engine(
            self._registry.route, state, *guards, everyone, fork_id, self.name, check=check,
            **(self._options(None) or {}),
        ).stream()  # fmt: skip

    def fingerprint(self) -> str:
        """A digest of the registry (event names, handler order and names), as logs keep it."""
        if self._fingerprint is None:  # made once per registry: every logged run needs it
            self._fingerprint = fingerprint(self._registry.all())
        return self._fingerprint

    def _wait_timeout(self, wait_timeout: float | _Unset | None) -> float | None:
        if wait_timeout is _UNSET:
            return self.wait_timeout
        checked: float | None = check_limit("wait_timeout", wait_timeout, integer=False)
        return checked

    def _options(self, concurrency: int | None) -> dict[str, Any] | None:
        """The engine's concurrency and retry options for one run; ``None`` for none (the
        common case)."""
        run_concurrency = (
            self.concurrency if concurrency is None else _check_concurrency(concurrency)
        )
        retrying = self._registry.retrying
        if run_concurrency == 1 and self.retry is None and not retrying:
            return None
        options: dict[str, Any] = {}
        if run_concurrency != 1:
            options["concurrency"] = run_concurrency
        if self.retry is not None or retrying:
            options["retry"], options["retrying"] = self.retry, retrying
        return options

    def _guards(
        self,
        max_events: int | _Unset | None,
        timeout: float | _Unset | None,
        handler_timeout: float | _Unset | None,
    ) -> tuple[int | None, float | None, float | None]:
        """The run's guards: the manager's, where the run does not set its own."""
        return (
            self.max_events
            if max_events is _UNSET
            else check_limit("max_events", max_events, integer=True),
            self.timeout if timeout is _UNSET else check_limit("timeout", timeout, integer=False),
            self.handler_timeout
            if handler_timeout is _UNSET
            else check_limit("handler_timeout", handler_timeout, integer=False),
        )


def _check_concurrency(value: object) -> int:
    """``value`` if it is a positive int (calls at once in a run), else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"concurrency must be a positive int (handler calls at once), got {value!r}"
        )
    return value


ReplaySource: TypeAlias = "TraceLike | tuple[RunStore, str]"
"""What :meth:`WorkflowManager.replay` forks: a trace of one run, or a run in a store."""


class TraceLike(Protocol):
    """A trace: its rows, as :attr:`baxiflow.trace.Trace.records` holds them."""

    @property
    def records(self) -> list[dict[str, Any]]: ...


def _replay_source(source: object) -> tuple[list[LoggedEvent], str]:
    """The events of the run ``source`` names, and its id."""
    if isinstance(source, tuple) and len(source) == 2:
        store, run_id = source
        return store.logged(run_id), run_id
    records = getattr(source, "records", None)
    if not isinstance(records, list):
        raise TypeError(
            "replay() takes a Trace of one run (Trace.from_jsonl(path) reads a saved one) "
            f"or a (store, run_id) pair, got {type(source).__name__}"
        )
    run_ids = list(dict.fromkeys(row["run_id"] for row in records))
    if len(run_ids) != 1:
        raise ValueError(f"the trace holds {len(run_ids)} runs; replay() forks one run")
    return [
        LoggedEvent(
            row["seq"],
            row["parent_seq"],
            row["depth"],
            WorkflowEvent(row["event"], row["data"], row["metadata"], row["error"]),
            row["handler"],
        )
        for row in records
    ], run_ids[0]
