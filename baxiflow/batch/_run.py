"""Run one workflow over many inputs: ``await run_many(workflow, events)`` or ``run_many_sync``.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def double(event):
...     yield WorkflowEvent.progress("double", "working")
...     yield WorkflowEvent("done", {"value": 2 * event.data["n"]})
>>> batch = run_many_sync(workflow, (WorkflowEvent("start", {"n": n}) for n in range(5)), view=False)
>>> batch
<BatchResult: 5 runs, 5 ok, 0 failed>
>>> [result.final.data["value"] for result in batch.results]
[0, 2, 4, 6, 8]
>>> sorted(row["input_index"] for row in batch.trace.runs)
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterable, Iterator, Sized
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from baxiflow._checks import check_limit
from baxiflow._engine import new_run_id
from baxiflow._routing import ended_status, stop_status
from baxiflow.batch._result import BatchResult, Keep, failed_result
from baxiflow.batch._state import BatchState
from baxiflow.batch._view import BatchDisplay, batch_view
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.manager import WorkflowManager
from baxiflow.observe import Observer, RunInfo, WorkflowObserver, as_observer
from baxiflow.runner import RunResult, _run_in_worker
from baxiflow.trace import Trace

__all__ = ["run_many", "run_many_sync"]

KEEP_CHOICES: Final = ("all", "summary")


class _Default(Enum):
    DEFAULT = "DEFAULT"


_DEFAULT: Final = _Default.DEFAULT
"""A guard not given: the manager's own setting applies."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How each run of a batch goes; checked once, and shipped as is to Dask workers."""

    concurrency: int
    keep: Keep
    max_failures: int | None
    limits: dict[str, Any]


def check_settings(
    *,
    concurrency: object,
    keep: object,
    max_failures: object,
    limits: dict[str, object],
) -> Settings:
    """Check the batch's settings before anything runs; raise a clear error for a bad one.

    >>> check_settings(concurrency=0, keep="all", max_failures=None, limits={})
    Traceback (most recent call last):
    ...
    ValueError: concurrency must be an int >= 1 (runs at once), got 0
    >>> check_settings(concurrency=4, keep="everything", max_failures=None, limits={})
    Traceback (most recent call last):
    ...
    ValueError: keep must be one of 'all', 'summary', got 'everything'
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1 (runs at once), got {concurrency!r}")
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {', '.join(map(repr, KEEP_CHOICES))}, got {keep!r}")
    check_limit("max_failures", max_failures, integer=True)
    given = {name: value for name, value in limits.items() if value is not _DEFAULT}
    for name, value in given.items():
        check_limit(name, value, integer=name == "max_events")
    return Settings(concurrency, keep, max_failures, given)  # type: ignore[arg-type]


class Inputs:
    """The batch's input, read lazily: one item at a time, numbered from 0.

    Only what is asked for is read, so a generator of a million events is never held
    in memory. An async iterable is read under a lock (an async generator cannot be
    advanced by two tasks at once).

    Raises:
        TypeError: ``events`` is neither an iterable nor an async iterable of events.
    """

    def __init__(self, events: Iterable[Any] | AsyncIterable[Any]) -> None:
        if isinstance(events, WorkflowEvent | str | bytes):
            raise TypeError(
                "run_many() takes an iterable (or async iterable) of WorkflowEvent, got a "
                f"single {type(events).__name__}; for one input pass a list: [event]"
            )
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        if isinstance(events, AsyncIterable):
            self._async = aiter(events)
        elif isinstance(events, Iterable):
            self._sync = iter(events)
        else:
            raise TypeError(
                "run_many() takes an iterable (or async iterable) of WorkflowEvent, "
                f"got {type(events).__name__}"
            )
        self.total: int | None = len(events) if isinstance(events, Sized) else None
        self.read = 0
        self._lock = asyncio.Lock() if self._async is not None else None

    async def next(self) -> tuple[int, Any] | None:
        """The next ``(index, item)``, or ``None`` at the end."""
        if self._sync is not None:
            item = next(self._sync, _END)
        else:
            assert self._async is not None and self._lock is not None
            async with self._lock:
                item = await anext(self._async, _END)
        if item is _END:
            return None
        index = self.read
        self.read += 1
        return index, item

    async def aclose(self) -> None:
        """Close an async generator input that was not read to its end."""
        close = getattr(self._async, "aclose", None)
        if close is not None:
            await close()


_END: Final = object()


class Source(Protocol):
    """What :meth:`LocalBatch.run` reads: numbered inputs, one at a time."""

    async def next(self) -> tuple[int, Any] | None: ...

    async def aclose(self) -> None: ...


def not_an_event(index: int, item: object) -> RunResult:
    """The failed result of an input that is not an event."""
    return failed_result(
        None,
        f"input {index} is a {type(item).__name__}, not a WorkflowEvent; nothing was run",
        "TypeError",
    )


class _Watch(WorkflowObserver):
    """Keeps the :class:`RunInfo` of a run that is observed anyway (by the batch's trace or
    the caller's observers), and tags the run's row in the trace with its input index."""

    def __init__(self, index: int, runs: list[dict[str, Any]] | None) -> None:
        self.index = index
        self.runs = runs
        self.info: RunInfo | None = None

    def run_started(self, run: RunInfo) -> None:
        self.info = run
        if self.runs is not None:
            # The trace, just before this observer, has appended the run's row: the
            # search ends at the first step.
            for row in reversed(self.runs):
                if row["run_id"] == run.run_id:
                    row["input_index"] = self.index
                    break


class LocalBatch:
    """Runs a batch's inputs on this event loop, ``concurrency`` at a time.

    The one place where a batch's runs are made, locally and on each Dask worker. The
    batch learns each run's outcome from the events it consumes (status, final event,
    error, counts), so a run that nothing else observes stays unobserved: no observer,
    no :class:`RunInfo` made by the engine, no hook per event. A run observed anyway (the
    trace of ``keep="all"``, the caller's observers) also tells the batch its
    :class:`RunInfo`, so its row and its result carry the same run id as its trace.
    Progress steps are counted only for a view.
    """

    def __init__(
        self,
        workflow: WorkflowManager,
        settings: Settings,
        state: BatchState,
        display: BatchDisplay | None,
        observers: list[WorkflowObserver],
    ) -> None:
        self.workflow = workflow
        self.settings = settings
        self.state = state
        self.display = display
        self.keep_all = settings.keep == "all"
        self.trace = Trace() if self.keep_all else None
        self.observers = observers if self.trace is None else [*observers, self.trace]
        self.options = settings.limits
        self.logged = settings.limits.get("store") is not None
        self.empty = Trace()
        self.outcomes: dict[int, tuple[dict[str, Any], RunResult]] = {}
        self.running: dict[int, asyncio.Task[None]] = {}
        self.failures = 0
        self.stopped: str | None = None

    async def run(self, inputs: Source) -> None:
        """Run every input (until ``max_failures``), then return; cancelling cancels every run."""
        slots = asyncio.Semaphore(self.settings.concurrency)
        running = self.running
        try:
            while self.stopped is None:
                await slots.acquire()
                item = await inputs.next()
                if item is None or self.stopped is not None:
                    break
                index, event = item
                running[index] = asyncio.create_task(self.run_one(slots, index, event))
            while running:
                await asyncio.wait(list(running.values()))
        finally:
            for task in running.values():
                task.cancel()
            while running:
                await asyncio.wait(list(running.values()))
            await inputs.aclose()

    async def run_one(self, slots: asyncio.Semaphore, index: int, item: object) -> None:
        """Run input ``index`` to its end, record its outcome, then free its slot."""
        try:
            if not isinstance(item, WorkflowEvent):
                self._ended(index, not_an_event(index, item), ran=False)
                return
            self.state.run_started()
            try:
                result, error = await self._consume(index, item)
            except Exception as exc:  # an observer or a guard setting broke the run itself
                result, error = failed_result(item, f"{exc}", type(exc).__name__), None
            self._ended(index, result, ran=True, error=error)
        finally:
            slots.release()
            del self.running[index]

    async def _consume(self, index: int, item: WorkflowEvent) -> tuple[RunResult, str | None]:
        """Run ``item`` and read its outcome from its events: ``(result, last error)``."""
        keep_all, steps = self.keep_all, self.display is not None
        options, watch, run_id = self.options, None, None
        if self.observers:
            watch = _Watch(index, None if self.trace is None else self.trace.runs)
            options = {**options, "observers": [*self.observers, watch]}
        if self.logged:
            # The run's id in the store, so its row names the run to resume or replay.
            run_id = new_run_id()
            options = {**options, "run_id": run_id}
        started_at, clock = time.time(), time.perf_counter()
        kept: list[WorkflowEvent] = []
        final = error = step = None
        count = errors = 0
        stream = self.workflow.process(item, **options)
        try:
            async for event in stream:
                count += 1
                if event.name == PROGRESS:
                    if steps:
                        step = self._step(step, event)
                    continue
                if event.name == ERROR:
                    errors += 1
                    error = event.error
                if keep_all:
                    kept.append(event)
                final = event
        finally:
            await stream.aclose()
            if step is not None:
                self.state.step(step, None)
        events = kept if keep_all else ([] if final is None else [final])
        info = None if watch is None else watch.info
        if info is None:
            stopped = None if final is None else stop_status(final)
            info = RunInfo(
                run_id or new_run_id(), item, started_at, self.workflow.name,
                ended_status(errors, stopped), count, errors, time.perf_counter() - clock,
            )  # fmt: skip
        return RunResult(self.trace or self.empty, events, info), error

    def _step(self, step: str | None, event: WorkflowEvent) -> str | None:
        """A run at ``step`` yielded a progress event: the step it is at now."""
        new = (event.data or {}).get("step")
        if new != step:
            self.state.step(step, new)
            self.changed()
        return new

    def _ended(self, index: int, result: RunResult, *, ran: bool, error: str | None = None) -> None:
        row = outcome_row(index, result, error)
        self.outcomes[index] = row, result
        self.state.outcome(row, ran=ran)
        if row["status"] != "ok":
            self.failures += 1
            limit = self.settings.max_failures
            if limit is not None and self.failures >= limit and self.stopped is None:
                self.stopped = max_failures_reason(limit)
        self.changed()

    def changed(self) -> None:
        if self.display is not None:
            self.display.changed()

    def result(self, wall: float) -> BatchResult:
        ordered = [self.outcomes[index] for index in sorted(self.outcomes)]
        return BatchResult(
            results=[result for _, result in ordered],
            records=[row for row, _ in ordered],
            trace=self.trace or Trace(),
            stopped=self.stopped,
            wall=wall,
            keep=self.settings.keep,
        )


def max_failures_reason(limit: int) -> str:
    return f"max_failures={limit} reached; no run started after that"


def outcome_row(index: int, result: RunResult, error: str | None = None) -> dict[str, Any]:
    """One row of :attr:`BatchResult.records` for input ``index``.

    ``error`` is the run's last error message when the caller saw it go by; else it is
    looked for in the kept events.
    """
    info = result.info
    if error is None:
        for event in reversed(result.events):
            if event.name == ERROR:
                error = event.error
                break
    return {
        "index": index,
        "run_id": info.run_id,
        "status": info.status,
        "final": result.events[-1].name if result.events else None,
        "error": error,
        "events": info.events,
        "duration": info.duration,
    }


async def run_many(
    workflow: WorkflowManager,
    events: Iterable[WorkflowEvent] | AsyncIterable[WorkflowEvent],
    *,
    concurrency: int = 16,
    view: bool = True,
    client: Any = None,
    chunk_size: int | None = None,
    observers: Iterable[Observer] = (),
    max_failures: int | None = None,
    keep: Keep = "all",
    max_events: int | _Default | None = _DEFAULT,
    timeout: float | _Default | None = _DEFAULT,
    handler_timeout: float | _Default | None = _DEFAULT,
    store: Any = None,
    durability: str = "batched",
) -> BatchResult:
    """Run ``workflow`` once per input event, ``concurrency`` runs at a time, with one live view.

    ``events`` is read lazily; a failing run never stops the batch; cancelling it cancels
    every running run. See :mod:`baxiflow.batch` for more, and for Dask.

    Args:
        workflow: The manager to run.
        events: An iterable or async iterable of initial events, one run each.
        concurrency: Runs at once (on Dask: in each chunk, on each worker).
        view: Show one live panel for the batch (widgets in a notebook, a tqdm bar
            elsewhere); ``False`` for none.
        client: A ``distributed.Client`` to run on Dask workers, or ``None`` to run here.
        chunk_size: Inputs per Dask task; by default sized so a task lasts ~250 ms.
        observers: More observers for every run (on Dask they run on the workers).
        max_failures: Stop after this many failed runs: no new run starts, the running
            ones finish, and :attr:`BatchResult.stopped` says so.
        keep: ``"all"`` keeps every run's events and one trace of every run;
            ``"summary"`` keeps only the outcome rows and each run's final event.
        max_events: As in :meth:`WorkflowManager.process`, for every run.
        timeout: As in :meth:`WorkflowManager.process`, for every run.
        handler_timeout: As in :meth:`WorkflowManager.process`, for every run.
        store: Log every run durably there (see :mod:`baxiflow.store`), each under its own
            run id (``RunResult.info.run_id``); on Dask each worker opens it again.
        durability: As in :meth:`WorkflowManager.process`, with ``store``.

    Returns:
        A :class:`BatchResult`, its results in input order.

    Raises:
        TypeError: ``workflow`` is not a manager, ``events`` not an iterable, ``client``
            not a Dask client (before anything runs).
        ValueError: ``concurrency < 1``, ``keep`` not ``"all"`` or ``"summary"``, or a
            bad limit (before anything runs).
        MissingDependencyError: ``client=`` is given and ``distributed`` is not installed
            (install the ``dask`` extra), or ``view=True`` and neither ipywidgets nor tqdm is.
    """
    settings = _checked(
        workflow, concurrency, keep, max_failures, chunk_size, client, store, durability,
        {"max_events": max_events, "timeout": timeout, "handler_timeout": handler_timeout},
    )  # fmt: skip
    watchers = [as_observer(observer) for observer in observers]
    inputs = Inputs(events)
    state = BatchState(inputs.total)
    display = batch_view(state) if view else None
    started = time.perf_counter()
    stopped: str | None = None
    try:
        if client is None:
            batch = LocalBatch(workflow, settings, state, display, watchers)
            await batch.run(inputs)
            result = batch.result(time.perf_counter() - started)
        else:
            from baxiflow.batch._dask import run_on_dask

            result = await run_on_dask(
                client, workflow, inputs, settings, state, display, watchers, chunk_size, started
            )
        stopped = result.stopped
        return result
    finally:
        state.finish(stopped)
        if display is not None:
            display.close()


def _checked(
    workflow: object,
    concurrency: object,
    keep: object,
    max_failures: object,
    chunk_size: object,
    client: Any,
    store: Any,
    durability: str,
    limits: dict[str, object],
) -> Settings:
    """The batch's settings, each checked before anything runs (see :func:`run_many`)."""
    if not isinstance(workflow, WorkflowManager):
        raise TypeError(f"run_many() takes a WorkflowManager, got {type(workflow).__name__}")
    settings = check_settings(
        concurrency=concurrency, keep=keep, max_failures=max_failures, limits=limits
    )
    check_limit("chunk_size", chunk_size, integer=True)
    if store is not None:
        settings.limits.update(store=store, durability=durability)
    if client is not None:
        from baxiflow.batch._dask import check_client

        check_client(client)
    return settings


def run_many_sync(
    workflow: WorkflowManager,
    events: Iterable[WorkflowEvent] | AsyncIterable[WorkflowEvent],
    **options: Any,
) -> BatchResult:
    """:func:`run_many` for code that cannot ``await``; safe in a notebook cell like ``run_sync``.

    Without a running event loop in this thread it runs like ``asyncio.run``. Inside one
    (a notebook cell) it runs the batch on its own event loop in a worker thread and
    blocks this thread until the batch ends; nothing is patched (see
    :func:`baxiflow.run_sync`). Interrupting cancels every run and re-raises
    ``KeyboardInterrupt``. Takes the same arguments as :func:`run_many`. An async
    iterable input or a ``Client(asynchronous=True)`` is bound to the caller's loop:
    use ``await run_many(...)`` for those.
    """

    def start() -> Coroutine[Any, Any, BatchResult]:
        return run_many(workflow, events, **options)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner() as runner:
            return runner.run(start())
    return _run_in_worker(start)
