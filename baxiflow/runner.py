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

Input from people
-----------------
A flow whose handlers ask (:meth:`WorkflowEvent.input_required
<baxiflow.WorkflowEvent.input_required>`) waits for the answers under ``await run(...)``:
in a notebook the progress panel shows each open request with a button per choice (or a
text box), and a click sends the answer while the cell still awaits. ``input=`` answers
instead: ``"stdin"`` asks on standard input, a function ``request -> value`` (or an async
one) answers from code. ``run_sync`` blocks the thread a click would arrive on, so without
``input=`` a request ends its run with an error event pointing to ``await run(...)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, NoReturn, TypeAlias, TypeVar

from baxiflow._text import run_counts
from baxiflow.event import PROGRESS, WorkflowEvent
from baxiflow.exceptions import AnswerError, WorkflowError
from baxiflow.handle import WorkflowRun
from baxiflow.manager import WorkflowManager
from baxiflow.observe import Observer, RunInfo, RunStatus, WorkflowObserver
from baxiflow.progress import progress_view, request_text
from baxiflow.trace import Trace

__all__ = ["Input", "PendingRun", "RunResult", "run", "run_sync"]

T = TypeVar("T")

Input: TypeAlias = "Literal['stdin'] | Callable[[WorkflowEvent], Any] | None"
"""What answers a run's requests for input (``input=``): ``"stdin"`` asks on standard input;
a function of the request returns the value (or an awaitable of it); ``None`` leaves them to
the notebook's panel or to ``send`` from code."""


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
    input: Input = None,
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
        input: What answers the run's requests for input (see :data:`Input`); by default
            the notebook panel's buttons, or ``send`` from code.
        **limits: ``max_events``, ``timeout``, ``handler_timeout``, ``wait_timeout``, or
            ``store``, ``run_id`` and ``durability`` for a durable run, as in
            :meth:`WorkflowManager.start`.

    Returns:
        A :class:`PendingRun`: ``await`` it for the :class:`RunResult`.

    Raises:
        MissingDependencyError: ``view=True`` and neither ipywidgets nor tqdm is installed.
    """
    answers = _Answers(input, takes_answers=True)
    return PendingRun(_run(workflow, initial_event, view, observers, trace, title, answers, limits))


async def _run(
    workflow: WorkflowManager,
    initial_event: WorkflowEvent,
    view: bool | WorkflowObserver,
    observers: Iterable[Observer],
    trace: Trace | None,
    title: str | None,
    answers: _Answers,
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
    stream: AsyncIterator[WorkflowEvent]
    run: WorkflowRun | None = None
    if answers.takes_answers:
        stream = run = workflow.start(initial_event, observers=extra, **limits)
    else:
        limits.pop("wait_timeout", None)  # the run never waits
        stream = workflow.process(initial_event, observers=extra, **limits)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if event.name != PROGRESS:
                events.append(event)
                if event.is_request and answers.answer is not None and run is not None:
                    await answers.answer(run, event)
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
    input: Input = None,
    **limits: Any,
) -> RunResult:
    """:func:`run` for code that cannot ``await``; works inside a running notebook loop.

    Without a running event loop in this thread it runs like ``asyncio.run``. Inside one
    (a notebook cell, an ``async def``) it runs the workflow on its own event loop in a
    worker thread and blocks this thread, and its loop, until the run ends; nothing is
    patched (see the module docs for why). Interrupting cancels the run and re-raises
    ``KeyboardInterrupt``.

    Takes the same arguments as :func:`run`. Nothing can click while it blocks, so a
    request for input is answered only through ``input=`` (``"stdin"`` in a terminal);
    without it, a request ends the run with an error event pointing to ``await run(...)``.
    """
    answers = _Answers(input, takes_answers=input is not None)

    def start() -> Coroutine[Any, Any, RunResult]:
        return _run(workflow, initial_event, view, observers, trace, title, answers, limits)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner() as runner:
            return runner.run(start())
    return _run_in_worker(start)


class _Answers:
    """How a notebook run answers its requests: ``input=``, checked where it enters."""

    __slots__ = ("answer", "takes_answers")

    def __init__(self, given: Input, *, takes_answers: bool) -> None:
        self.takes_answers = takes_answers
        self.answer: Callable[[WorkflowRun, WorkflowEvent], Coroutine[Any, Any, None]] | None
        if given is None:
            self.answer = None
        elif given == "stdin":
            self.answer = _ask_on_stdin
        elif callable(given):
            self.answer = functools.partial(_answer_from_code, given)
        else:
            raise TypeError(
                f'input= takes "stdin", a function of the request, or None; got {given!r:.80}'
            )


async def _answer_from_code(
    answerer: Callable[[WorkflowEvent], Any], run: WorkflowRun, request: WorkflowEvent
) -> None:
    value = answerer(request)
    if inspect.isawaitable(value):
        value = await value
    await run.answer(request, value)


async def _ask_on_stdin(run: WorkflowRun, request: WorkflowEvent) -> None:
    """Ask ``request`` on standard input until the answer is taken (a choice, when it has some).

    Raises:
        EOFError: Standard input ended before an answer was given.
    """
    choices = (request.data or {}).get("choices")
    while True:
        line = await asyncio.to_thread(_read_line, f"{request_text(request)}: ")
        if not line:
            raise EOFError(f"standard input ended with no answer to {request_text(request)}")
        text = line.strip()
        # A typed choice is matched by its text, so a choice of 3 or True can be typed too.
        value = next((c for c in choices if str(c) == text), text) if choices else text
        try:
            await run.answer(request, value)
            return
        except AnswerError as exc:
            print(exc, file=sys.stdout, flush=True)


def _read_line(prompt: str) -> str:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return sys.stdin.readline()


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
