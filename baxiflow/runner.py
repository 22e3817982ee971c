"""Run a workflow from a notebook cell with a live progress view: ``await run(...)`` or ``run_sync(...)``.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent.progress("greet", "Saying hello")
...     yield WorkflowEvent("completed", data={"text": f"Hello, {event.data['name']}!"})
>>> result = run_sync(workflow, WorkflowEvent("start", {"name": "Ada"}), view=False)
>>> result
<RunResult ok: 2 events, 1 progress, 0 errors, final 'completed'>
>>> result.final.data["text"], len(result.trace.records)
('Hello, Ada!', 3)

In a cell, prefer the await form, which runs on the notebook's own event loop::

    result = await run(workflow, WorkflowEvent("start", {"name": "Ada"}))

How ``run_sync`` deals with the notebook's event loop, and why
--------------------------------------------------------------
A notebook cell already runs inside the kernel's event loop, so ``asyncio.run`` fails
there. The usual fix, ``nest_asyncio.apply()``, patches asyncio globally; with
nest-asyncio 1.6 and ipykernel 7 it also silently drops queued cells ("Run All":
``RuntimeError: cannot enter context ... is already entered``, then the next cell hangs
at ``[*]``). The maintained fork nest-asyncio2 (>= 1.7.3) fixes that trap, but still
patches asyncio for the whole process (pure-Python tasks and futures on Python < 3.14,
a patched event loop class).

``run_sync`` patches nothing. With no event loop running in the calling thread it runs
the workflow with ``asyncio.Runner``, like ``asyncio.run``. With one running (a notebook
cell) it runs the workflow on a fresh event loop in a worker thread and blocks the
calling thread, and so the notebook's loop, until the run ends; the worker carries the
caller's ``contextvars``, so prints and widgets land in the calling cell. Interrupting the
kernel cancels the run (the handlers' ``finally`` blocks run) and raises
``KeyboardInterrupt`` in the cell. The choice came from ``tests/test_kernel_run_all.py``,
which sends several cells to a real kernel at once, as "Run All" does. Both candidates
passed it: nest-asyncio2 nesting the kernel's loop, and the worker thread; the same test
with nest-asyncio 1.6 nesting the loop loses every cell after the first nested run. The
worker thread won because it patches nothing and never re-enters the kernel's loop, so it
keeps working whatever the user applied (nest-asyncio2, or even nest-asyncio 1.6, checked
by hand). baxiflow therefore does not need nest-asyncio2; a user who wants nesting for
other libraries calls ``nest_asyncio2.apply()`` explicitly, and ``run_sync`` keeps working.

The one limit of the worker thread: objects bound to the notebook's event loop (a client
session opened with ``await`` in an earlier cell, an ``asyncio.Lock`` already in use)
cannot be used by handlers run through ``run_sync``; use ``await run(...)`` for those.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from baxiflow._text import run_counts
from baxiflow.event import PROGRESS, WorkflowEvent
from baxiflow.exceptions import WorkflowError
from baxiflow.manager import WorkflowManager
from baxiflow.observe import Observer, RunInfo, RunStatus, WorkflowObserver
from baxiflow.progress import progress_view
from baxiflow.trace import Trace

__all__ = ["PendingRun", "RunResult", "run", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, repr=False)
class RunResult:
    """What a notebook run returns: its trace, its events and how it ended.

    Attributes:
        trace: The :class:`~baxiflow.trace.Trace` of the run, progress events included.
        events: Every event the run yielded except progress events, in order; the
            initial event first.
        info: The run as observers saw it: ``run_id``, ``status``, ``duration``, counts.
    """

    trace: Trace
    events: list[WorkflowEvent]
    info: RunInfo

    @property
    def status(self) -> RunStatus:
        """How the run ended: ``"ok"``, ``"error"``, ``"timeout"``, ... (a :data:`RunStatus`)."""
        return self.info.status

    @property
    def final(self) -> WorkflowEvent:
        """The last non-progress event of the run.

        Raises:
            IndexError: The run yielded progress events only (it started from one, which
                is never dispatched).
        """
        if not self.events:
            raise IndexError(
                "the run has no final event: it yielded progress events only "
                "(a progress event as the initial event is never dispatched)"
            )
        return self.events[-1]

    @property
    def errors(self) -> list[WorkflowEvent]:
        """The error events of the run, in order."""
        return [event for event in self.events if event.is_error]

    def raise_for_error(self) -> None:
        """Raise the run's first error, if it had one; do nothing for a run without errors.

        A handler that raised is re-raised as its own exception, with its traceback, so
        ``%debug`` in the next cell opens the failing line. An error event with no
        exception behind it (a timeout, ``max_events``, an error a handler yielded) raises
        :class:`~baxiflow.exceptions.WorkflowError`.

        Raises:
            BaseException: The exception of the first failed handler.
            WorkflowError: The first error event had no exception behind it (or the run
                was read back from a saved trace).
        """
        for event in self.events:
            if event.is_error:
                exception = event.exception
                if exception is not None:
                    raise exception
                raise WorkflowError(event)

    def __repr__(self) -> str:
        progress = self.info.events - len(self.events)
        final = f"final {self.events[-1].name!r}" if self.events else "no final event"
        counts = run_counts(len(self.events), progress, len(self.errors))
        return f"<RunResult {self.status}: {counts}, {final}>"


class PendingRun(Coroutine[Any, Any, "RunResult"]):
    """What :func:`run` returns: a coroutine; ``await`` it for the :class:`RunResult`.

    It is a coroutine like any other (``asyncio.run(baxiflow.run(...))``, tasks and
    ``gather`` take it), except that reading a result's attribute from it explains what
    went wrong instead of failing with ``'coroutine' object has no attribute``.
    """

    __slots__ = ("_coroutine",)

    def __init__(self, coroutine: Coroutine[Any, Any, RunResult]) -> None:
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self._coroutine.__await__()

    def send(self, value: Any) -> Any:
        return self._coroutine.send(value)

    def throw(self, *error: Any) -> Any:
        return self._coroutine.throw(*error)

    def close(self) -> None:
        """Drop the run without starting it (as ``coroutine.close()`` does)."""
        self._coroutine.close()

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(
            f"baxiflow.run(...) was not awaited, so there is no result to read {name!r} "
            "from yet: write `result = await baxiflow.run(...)` in a notebook cell or an "
            "async function, or `result = baxiflow.run_sync(...)` in code that cannot await"
        )

    def __repr__(self) -> str:
        return "<baxiflow.run(...) not awaited: write `result = await baxiflow.run(...)`>"


class _RunCapture(WorkflowObserver):
    """Keeps the :class:`RunInfo` of the one run it observes."""

    def __init__(self) -> None:
        self.info: RunInfo | None = None

    def run_started(self, run: RunInfo) -> None:
        self.info = run


def run(
    workflow: WorkflowManager,
    initial_event: WorkflowEvent,
    *,
    view: bool | WorkflowObserver = True,
    observers: Iterable[Observer] = (),
    trace: Trace | None = None,
    title: str | None = None,
    **limits: Any,
) -> PendingRun:
    """Run ``workflow`` to the end with a live progress view; ``await`` it for the result.

    Args:
        workflow: The manager to run.
        initial_event: The event to start from.
        view: ``True`` for :func:`~baxiflow.progress.progress_view` (widgets in a
            notebook, tqdm bars elsewhere), ``False`` for none, or an observer to use
            as the view (a :class:`~baxiflow.progress.ProgressView` shared by runs).
        observers: More observers for this run.
        trace: A :class:`~baxiflow.trace.Trace` to add this run to (so several runs share
            one); a new one if ``None``.
        title: The progress panel's label (``view=True`` only); by default the run's
            number and its initial event.
        **limits: ``max_events``, ``timeout``, ``handler_timeout``, or ``store``, ``run_id``
            and ``durability`` for a durable run, as in :meth:`WorkflowManager.process`.

    Returns:
        A :class:`PendingRun`: ``await`` it for the :class:`RunResult`.

    Raises:
        MissingDependencyError: ``view=True`` and neither ipywidgets nor tqdm is installed.
    """
    return PendingRun(_run(workflow, initial_event, view, observers, trace, title, limits))


async def _run(
    workflow: WorkflowManager,
    initial_event: WorkflowEvent,
    view: bool | WorkflowObserver,
    observers: Iterable[Observer],
    trace: Trace | None,
    title: str | None,
    limits: dict[str, Any],
) -> RunResult:
    trace = Trace() if trace is None else trace
    capture = _RunCapture()
    extra: list[Observer] = [*observers, trace, capture]
    if view is True:
        extra.append(progress_view(title=title))
    elif view is not False:
        extra.append(view)
    events: list[WorkflowEvent] = []
    stream = workflow.process(initial_event, observers=extra, **limits)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if event.name != PROGRESS:
                events.append(event)
    assert capture.info is not None  # process() always starts the run before yielding
    return RunResult(trace, events, capture.info)


def run_sync(
    workflow: WorkflowManager,
    initial_event: WorkflowEvent,
    *,
    view: bool | WorkflowObserver = True,
    observers: Iterable[Observer] = (),
    trace: Trace | None = None,
    title: str | None = None,
    **limits: Any,
) -> RunResult:
    """:func:`run` for code that cannot ``await``; works inside a running notebook loop.

    Without a running event loop in this thread it runs like ``asyncio.run``. Inside one
    (a notebook cell, an ``async def``) it runs the workflow on its own event loop in a
    worker thread and blocks this thread, and its loop, until the run ends; nothing is
    patched (see the module docs for why). Interrupting cancels the run and re-raises
    ``KeyboardInterrupt``.

    Takes the same arguments as :func:`run`.
    """

    def start() -> Coroutine[Any, Any, RunResult]:
        return _run(workflow, initial_event, view, observers, trace, title, limits)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner() as runner:
            return runner.run(start())
    return _run_in_worker(start)


def _run_in_worker(start: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``start()`` on a new event loop in a worker thread; block until it is done."""
    worker = _Worker(start)
    thread = threading.Thread(
        target=contextvars.copy_context().run,
        args=(worker.main,),
        name="baxiflow-run_sync",
        daemon=True,
    )
    # Wait on the future, not Thread.join: on Python 3.11 a join interrupted by
    # KeyboardInterrupt can mark a thread that still runs as stopped.
    try:
        thread.start()
        return worker.outcome.result()
    except BaseException:
        if not worker.outcome.done():
            # Interrupted while waiting (the kernel's interrupt): stop the run, let it clean up.
            worker.cancel()
            concurrent.futures.wait([worker.outcome])
        raise


class _Worker(Generic[T]):
    """A coroutine on its own loop in another thread, cancellable from the calling thread."""

    def __init__(self, start: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._start = start
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

    def main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=lambda: self._loop) as runner:
                result = runner.run(self._run())
        except BaseException as exc:
            # Handed to the calling thread, which re-raises it.
            self.outcome.set_exception(exc)
        else:
            self.outcome.set_result(result)

    async def _run(self) -> T:
        task = self._task = asyncio.current_task()
        if self._cancelled and task is not None:
            task.cancel()
        return await self._start()

    def cancel(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing to stop
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()
