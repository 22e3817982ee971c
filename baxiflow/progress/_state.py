"""What a progress display shows, kept apart from how it is drawn: run state, step state, throttle.

:class:`RunProgress` turns the events of one run into a header (status, events, errors,
elapsed time) and one :class:`StepState` per progress ``step``; :class:`Throttle` says when
a redraw is due; :class:`ProgressObserver` ties both to a run and leaves the drawing to a
subclass (ipywidgets in :mod:`baxiflow.progress`, tqdm in :mod:`baxiflow.progress._terminal`).

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def fetch(event):
...     for page in range(1, 4):
...         yield WorkflowEvent.progress("fetch", f"page {page}", current=page, total=3)
...     yield WorkflowEvent("done")
>>> class Recorder(ProgressObserver[None]):
...     def _open(self, state):
...         return None
>>> recorder = Recorder()
>>> async def main():
...     async for _ in workflow.process(WorkflowEvent("start"), observers=[recorder]):
...         pass
>>> asyncio.run(main())
>>> print(recorder.states[0].text())  # doctest: +ELLIPSIS
start ok: 2 events, 3 progress, 0 errors, elapsed=...s
  fetch: done 3/3 (100%) - page 3
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

from baxiflow._asking import Requests
from baxiflow._text import format_duration, run_counts, traceback_location
from baxiflow.event import ERROR, PROGRESS, WorkflowEvent
from baxiflow.exceptions import ObserverWarning, warn_from_caller
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, RunStatus, WorkflowObserver
from baxiflow.progress._throttle import DEFAULT_INTERVAL, Throttle, check_interval

__all__ = [
    "BarStyle",
    "ProgressObserver",
    "RunProgress",
    "StepState",
    "StepStatus",
    "request_text",
    "run_label",
]

StepStatus: TypeAlias = Literal["active", "done", "failed", "stopped"]
"""Where a step stands: ``active`` while it reports, ``done`` once its handler call moved on
or the run ended cleanly, ``failed`` after an error of its handler (final, unless a retry of
the call reports it again), ``stopped`` when the run was stopped, cancelled or cut short by
a guard while the step was active."""

BarStyle: TypeAlias = Literal["", "info", "success", "warning", "danger"]
"""An ipywidgets ``bar_style``: ``""`` for a plain running bar."""

_STEP_STYLES: Final[dict[StepStatus, BarStyle]] = {
    "active": "",
    "done": "success",
    "failed": "danger",
    "stopped": "warning",
}

_RUN_STYLES: Final[dict[RunStatus, BarStyle]] = {
    "running": "info",
    "waiting": "warning",
    "ok": "success",
    "error": "danger",
    "max_events": "danger",
    "timeout": "danger",
    "log_failed": "danger",
    "stopped": "warning",
    "cancelled": "warning",
}

_NO_STEP: Final = "progress"
"""Step name for progress events whose data names no step."""

_LABEL_WIDTH: Final = 40
"""Characters of the initial event a default label shows."""

_NOT_WAITING: Final = object()
"""Stands for "no step": equal to no step name a progress event can give."""


def _format_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


_NUMBER_TYPES: Final = frozenset({int, float})


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _as_amount(value: object, *, positive: bool) -> float | None:
    """A usable ``current`` (finite, >= 0) or ``total`` (finite, > 0), else ``None``.

    A progress event built by hand may carry NaN, infinities, negatives or text: those
    show as no fraction, never as NaN.
    """
    number: Any = value if value.__class__ in _NUMBER_TYPES else _as_number(value)
    # NaN fails every comparison, so it is refused here too.
    if number is None or not 0 <= number < math.inf or (positive and number == 0):
        return None
    amount: float = number
    return amount


@dataclass(slots=True, eq=False)
class StepState:
    """One progress ``step`` of a run, as its latest progress event left it.

    Attributes:
        name: The step, as given to :meth:`WorkflowEvent.progress`.
        description: The latest description.
        current: Units done, when the latest event gave them.
        total: Units in all, when the latest event gave them.
        status: A :data:`StepStatus`.
        updates: Progress events seen for this step.
        handler: Qualified name of the handler that reported it last.
    """

    name: str
    description: str = ""
    current: float | None = None
    total: float | None = None
    status: StepStatus = "active"
    updates: int = 0
    handler: str | None = None
    call: HandlerCall | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float | None:
        """``current / total`` within 0..1; ``None`` without both or when either is unusable.

        A usable ``current`` is finite and not negative, a usable ``total`` finite and
        positive; anything else (NaN, infinity, a negative or zero total) gives ``None``.

        >>> StepState("s", current=3, total=10).fraction, StepState("s", current=3).fraction
        (0.3, None)
        >>> StepState("s", current=float("nan"), total=5).fraction is None
        True
        """
        current, total = self.current, self.total
        if current is None or total is None:
            return None
        if not (0 <= current < math.inf and 0 < total < math.inf):
            return None
        return min(current / total, 1.0)

    @property
    def bar_style(self) -> BarStyle:
        """The bar's style: ``"info"`` for an active step without a fraction, else by status.

        >>> StepState("s").bar_style, StepState("s", current=1, total=2).bar_style
        ('info', '')
        """
        if self.status == "active" and self.fraction is None:
            return "info"
        return _STEP_STYLES[self.status]

    @property
    def bar_value(self) -> float:
        """The bar's value within 0..1: the fraction, or a full bar for a step without one."""
        fraction = self.fraction
        return 1.0 if fraction is None else fraction

    def count_text(self) -> str:
        """``"3/10 (30%)"`` with a total, ``"3"`` with only ``current``, else ``""``.

        >>> StepState("s", current=3, total=10).count_text(), StepState("s", current=2.5).count_text()
        ('3/10 (30%)', '2.5')
        """
        if self.current is None:
            return ""
        fraction = self.fraction
        if self.total is None or fraction is None:
            return _format_number(self.current)
        return f"{_format_number(self.current)}/{_format_number(self.total)} ({fraction:.0%})"

    def text(self) -> str:
        """One deterministic line: ``"download: active 3/10 (30%) - 3 of 10 files"``."""
        parts = [f"{self.name}: {self.status}"]
        count = self.count_text()
        if count:
            parts.append(count)
        if self.description:
            parts.append(f"- {self.description}")
        return " ".join(parts)


class RunProgress:
    """The state machine of one run's progress display, fed by observer callbacks.

    The run is ``running`` (style ``info``) until it ends; it turns ``danger`` at its
    first error event and stays so (``danger`` is never replaced by ``success``). A step
    is ``active`` while it reports; one without a fraction is ``done`` once every handler
    call that reported it has reported another step or finished, or when the run ends;
    one with a fraction is ``done`` when it reaches its total or the run ends cleanly.
    Handler calls that overlap (``concurrency`` above 1) so keep their steps apart:
    several steps are active at once, and one call's report never closes another's step. An error event fails the active steps of the handler it names (all active steps
    when it names none); a failed step stays failed, unless the next attempt of a retried
    call reports it again.

    A busy step reports far more often than anyone looks: while the step that reported
    last reports again, only its latest report matters, so it waits, counted, until the
    state is next read or fed anything else. Reading :attr:`steps`, :attr:`current`,
    :meth:`take_changed` or the text brings the state up to date first.

    Args:
        run: The run, whose counters the header shows; taken from the first event when not given.
        label: What the header calls the run (:func:`run_label` makes the usual one).
    """

    __slots__ = (
        "_active",
        "_by_call",
        "_changed",
        "_current",
        "_latest",
        "_latest_call",
        "_latest_step",
        "_repeats",
        "_requests",
        "_run",
        "_steps",
        "elapsed",
        "label",
        "last_error",
        "last_error_at",
        "last_traceback",
        "progress",
        "status",
        "style",
    )

    def __init__(self, run: RunInfo | None = None, *, label: str = "workflow") -> None:
        self._run = run
        self.label = label
        self.status: RunStatus = "running"
        self.style: BarStyle = "info"
        self.elapsed = 0.0
        self.progress = 0
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_traceback: str | None = None
        self._steps: dict[str, StepState] = {}
        self._active: dict[str, StepState] = {}
        self._changed: dict[str, StepState] = {}
        self._current: StepState | None = None
        # The step each running handler call reported last (None: calls not tracked).
        self._by_call: dict[HandlerCall | None, StepState] = {}
        # The current step's latest report not applied yet, how many reports it stands
        # for, and the step name under which a report may wait (_NOT_WAITING: none may).
        self._latest: EmittedEvent | None = None
        self._repeats = 0
        self._latest_step: object = _NOT_WAITING
        self._latest_call: HandlerCall | None = None
        self._requests = Requests()

    def __repr__(self) -> str:
        return f"<RunProgress {self.status}: {len(self.steps)} steps, {self.events} events>"

    # Feeding ------------------------------------------------------------------

    def event(self, emitted: EmittedEvent) -> None:
        """Take one emitted event into account."""
        event = emitted.event
        self.elapsed = emitted.elapsed
        name = event.name
        if name == PROGRESS:
            self.progress += 1
            data = event.data
            # Exactly a str: an equal str subclass (an enum member) names another step.
            if (
                type(data) is dict
                and (step := data.get("step")).__class__ is str
                and step == self._latest_step
                and emitted.call is self._latest_call
            ):
                # The current step reports again, from the same call: only its latest
                # report matters, and whatever happens in between (an error, a handler
                # call ending, a read) applies it first. Another call's report of the step
                # is applied at once: it says that call is at the step too.
                self._latest = emitted
                self._repeats += 1
                return
        if self._run is None:
            self._run = emitted.run
        self._settle()
        if name == PROGRESS:
            self._progress(event, emitted)
            return
        if self.status == "waiting":
            self.status = "running"
            self._raise_style("info")
        self._requests.follow(event, emitted.seq, emitted.parent_seq)
        if name == ERROR:
            self._error(event, emitted.handler_name)

    def idle(self, run: RunInfo) -> None:
        """The run's queue is empty: it waits for answers (``run.status``), or it ends."""
        if run.status == "waiting":
            self.status = "waiting"
            self._raise_style("warning")

    def handler_finished(self, call: HandlerCall) -> None:
        """Close the steps ``call`` reported: done when it ended well, failed when it did not
        (an attempt that is ``retried`` leaves them active: its call goes on)."""
        self._settle()
        last = self._by_call.pop(call, None)
        if not self._active:
            return
        if call.status == "ok":
            if last is not None:
                self._left(last)
        elif call.status in ("error", "timeout"):
            for step in [s for s in self._active.values() if s.call is call or s is last]:
                self._set(step, "failed")

    def finish(self, run: RunInfo) -> None:
        """Take the run's final status; close every step still active."""
        self._settle()
        self._run = run
        self.status = run.status
        if run.duration is not None:
            self.elapsed = run.duration
        closing: StepStatus = "done" if run.status in ("ok", "error") else "stopped"
        for step in list(self._active.values()):
            self._set(step, closing)
        self._raise_style(_RUN_STYLES[run.status])

    # Reading ------------------------------------------------------------------

    @property
    def steps(self) -> dict[str, StepState]:
        """Every step, by name, in order of appearance."""
        self._settle()
        return self._steps

    @property
    def requests(self) -> list[WorkflowEvent]:
        """The run's open requests for input, oldest first."""
        return self._requests.open()

    @property
    def run_id(self) -> str | None:
        """The run's id, once the run is known; :meth:`text` does not show it."""
        return None if self._run is None else self._run.run_id

    @property
    def events(self) -> int:
        """Events of the run so far that are not progress events, the initial one included.

        The count :class:`~baxiflow.RunResult` shows; :attr:`progress` counts the others.
        """
        return 0 if self._run is None else max(0, self._run.events - self.progress)

    @property
    def errors(self) -> int:
        """Error events of the run so far."""
        return 0 if self._run is None else self._run.errors

    @property
    def current(self) -> StepState | None:
        """The step that reported last, while it is still active."""
        self._settle()
        step = self._current
        return step if step is not None and step.status == "active" else None

    def take_changed(self) -> list[StepState]:
        """Steps changed since the last call, new ones in order of appearance; clears the list."""
        self._settle()
        changed = list(self._changed.values())
        self._changed.clear()
        return changed

    def header_text(self) -> str:
        """``"start ok: 4 events, 3 progress, 0 errors"``: the header without the time."""
        return f"{self.label} {self.status}: {self.counts_text()}"

    def counts_text(self) -> str:
        """``"4 events, 3 progress, 1 error"``, counted as :class:`~baxiflow.RunResult` counts."""
        return run_counts(self.events, self.progress, self.errors)

    def error_text(self) -> str | None:
        """The last error and where it happened, on one line; ``None`` before any error."""
        if self.last_error is None:
            return None
        where = f" (at {self.last_error_at})" if self.last_error_at else ""
        return f"last error: {self.last_error}{where}"

    def text(self) -> str:
        """The whole display as deterministic text, one line per step in order of appearance.

        The elapsed time is the only part that changes from one identical run to the next;
        it reads ``elapsed=`` and a duration such as ``12.3 ms``.
        """
        lines = [f"{self.header_text()}, elapsed={format_duration(self.elapsed)}"]
        lines.extend(f"  {step.text()}" for step in self.steps.values())
        lines.extend(f"  asks: {request_text(request)}" for request in self.requests)
        error = self.error_text()
        if error is not None:
            lines.append(f"  {error}")
        return "\n".join(lines)

    # Transitions --------------------------------------------------------------

    def _settle(self) -> None:
        """Apply the report that waits, if one does."""
        latest = self._latest
        if latest is not None:
            self._latest = None
            self._current.updates += self._repeats - 1  # type: ignore[union-attr]
            self._repeats = 0
            self._progress(latest.event, latest)

    def _progress(self, event: WorkflowEvent, emitted: EmittedEvent) -> None:
        # Exact type checks first, conversions only when needed.
        data: dict[str, Any] = event.data if type(event.data) is dict else _as_dict(event.data)
        raw_name = data.get("step")
        name = raw_name or _NO_STEP
        if type(name) is not str:
            name = str(name)
        # Later reports of this step may wait when they name it exactly as this one does
        # and come from the same call.
        self._latest_step = raw_name if type(raw_name) is str and raw_name else _NOT_WAITING
        self._latest_call = emitted.call
        step = self._steps.get(name)
        if step is None:
            step = self._steps[name] = StepState(name)
            self._active[name] = step
        call = emitted.call
        previous = self._by_call.get(call)
        if previous is not step:
            self._by_call[call] = step
            if previous is not None:
                self._left(previous)
        self._current = step
        description = data.get("description", "")
        step.description = description if type(description) is str else str(description)
        current: Any = data.get("current")
        if current is not None:
            current = _as_amount(current, positive=False)
        total: Any = data.get("total")
        if total is not None:
            total = _as_amount(total, positive=True)
        step.current = current
        step.total = total
        step.updates += 1
        step.handler = emitted.handler_name
        status = step.status
        if status != "failed" or _retried(step.call, call):
            complete = current is not None and total is not None and 0 < total <= current
            if status != ("done" if complete else "active"):
                self._set(step, "done" if complete else "active")
        step.call = call
        self._changed[name] = step

    def _left(self, step: StepState) -> None:
        """A handler call moved on from ``step`` or ended well: a step that cannot say when
        it is complete is complete once no running call is still at it."""
        if step.status == "active" and step.fraction is None and step not in self._by_call.values():
            self._set(step, "done")

    def _error(self, event: WorkflowEvent, handler: str | None) -> None:
        self.last_error = event.error or "error"
        text = event.data.get("traceback") if type(event.data) is dict else None
        self.last_traceback = str(text) if isinstance(text, str) else None
        self.last_error_at = traceback_location(text)
        self._raise_style("danger")
        for step in list(self._active.values()):
            if handler is None or step.handler == handler:
                self._set(step, "failed")

    def _set(self, step: StepState, status: StepStatus) -> None:
        if step.status == status:
            return
        step.status = status
        if status == "active":
            self._active[step.name] = step
        else:
            self._active.pop(step.name, None)
        self._changed[step.name] = step

    def _raise_style(self, style: BarStyle) -> None:
        if self.style != "danger":
            self.style = style


def _retried(failed: HandlerCall | None, call: HandlerCall | None) -> bool:
    """Whether ``call`` is a later attempt of the retried call ``failed``."""
    return (
        failed is not None
        and call is not None
        and call.attempt > failed.attempt
        and call.handler is failed.handler
        and call.trigger_seq == failed.trigger_seq
    )


def request_text(request: WorkflowEvent) -> str:
    """``"Book an engineer? (yes / no)"``: a request for input on one line.

    >>> request_text(WorkflowEvent.input_required("Which city?", reply="city"))
    'Which city? (any answer)'
    """
    data = request.data or {}
    choices = data.get("choices")
    shown = "any answer" if choices is None else " / ".join(map(str, choices))
    return f"{data.get('prompt')} ({shown})"


def run_label(run: RunInfo) -> str:
    """``"start {'name': 'Ada'}"``: the initial event, cut to about 40 characters.

    The widget panel puts a run number in front, which the text form leaves out so that
    identical runs keep identical text.
    """
    first = run.initial_event
    shown = first.name if not first.data else f"{first.name} {first.data!r}"
    if len(shown) > _LABEL_WIDTH:
        shown = shown[: _LABEL_WIDTH - 1] + "…"
    return shown


P = TypeVar("P")


class _Tracked(Generic[P]):
    """One run as a :class:`ProgressObserver` follows it."""

    __slots__ = ("broken", "dirty", "panel", "state", "throttle", "timer")

    def __init__(self, state: RunProgress, throttle: Throttle) -> None:
        self.state = state
        self.throttle = throttle
        self.panel: P | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.dirty = False
        self.broken = False


class ProgressObserver(WorkflowObserver, Generic[P]):
    """Base of progress displays: one :class:`RunProgress` and one panel per run, throttled.

    Every event updates the run's state at once; the panel is redrawn when the
    :class:`Throttle` says so, by a timer ``interval`` seconds after a change that was
    not drawn (so a run waiting on I/O still shows its latest state), and always at the
    end of the run. A display that raises is reported once as an
    :class:`~baxiflow.exceptions.ObserverWarning` and is not drawn again; the run and the
    state (hence the text form) go on.

    Subclasses implement :meth:`_open` and, as needed, :meth:`_draw` and :meth:`_close`.

    Args:
        interval: Least seconds between two redraws of one run.
        title: The label of every run's panel; by default :func:`run_label`.
    """

    def __init__(self, *, interval: float = DEFAULT_INTERVAL, title: str | None = None) -> None:
        self.interval = check_interval(interval)
        self.title = title
        self._runs: dict[str, _Tracked[P]] = {}

    def __repr__(self) -> str:
        return "\n\n".join(state.text() for state in self.states) or "(no run yet)"

    @property
    def states(self) -> list[RunProgress]:
        """The state of every run seen, in the order they started."""
        return [tracked.state for tracked in self._runs.values()]

    # Hooks for subclasses -----------------------------------------------------

    def _open(self, state: RunProgress) -> P:
        """Create (and show) the panel of a new run."""
        raise NotImplementedError

    def _draw(self, panel: P, state: RunProgress, changed: list[StepState]) -> None:
        """Bring ``panel`` up to date; ``changed`` lists the steps changed since the last draw."""

    def _close(self, panel: P, state: RunProgress) -> None:
        """Called once after the final draw of a run."""

    # Observer callbacks -------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        label = run_label(run) if self.title is None else self.title
        tracked: _Tracked[P] = _Tracked(RunProgress(run, label=label), Throttle(self.interval))
        self._runs[run.run_id] = tracked
        try:
            tracked.panel = self._open(tracked.state)
        except Exception as exc:
            self._give_up(tracked, exc)

    def event_emitted(self, emitted: EmittedEvent) -> None:
        tracked = self._runs.get(emitted.run.run_id)
        if tracked is None:
            return
        tracked.state.event(emitted)
        tracked.dirty = True
        if tracked.throttle.due():
            self._draw_now(tracked)
        elif tracked.timer is None:
            self._draw_later(tracked)

    def handler_finished(self, call: HandlerCall) -> None:
        tracked = self._runs.get(call.run.run_id)
        if tracked is None or not tracked.state.steps:
            return
        tracked.state.handler_finished(call)
        tracked.dirty = True
        if tracked.timer is None:
            self._draw_later(tracked)

    def run_idle(self, run: RunInfo, ending: bool) -> None:
        tracked = self._runs.get(run.run_id)
        if tracked is None or ending:
            return
        # It waits for a person: show where it stands now, not after the throttle.
        tracked.state.idle(run)
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        self._draw_now(tracked)

    def run_finished(self, run: RunInfo) -> None:
        tracked = self._runs.get(run.run_id)
        if tracked is None:
            return
        if tracked.timer is not None:
            tracked.timer.cancel()
            tracked.timer = None
        tracked.state.finish(run)
        self._draw_now(tracked)
        if tracked.panel is not None and not tracked.broken:
            try:
                self._close(tracked.panel, tracked.state)
            except Exception as exc:
                self._give_up(tracked, exc)

    # Drawing ------------------------------------------------------------------

    def _draw_now(self, tracked: _Tracked[P]) -> None:
        tracked.dirty = False
        changed = tracked.state.take_changed()
        if tracked.broken or tracked.panel is None:
            return
        try:
            self._draw(tracked.panel, tracked.state, changed)
        except Exception as exc:
            self._give_up(tracked, exc)

    def _draw_later(self, tracked: _Tracked[P]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        tracked.timer = loop.call_later(self.interval, self._on_timer, tracked)

    def _on_timer(self, tracked: _Tracked[P]) -> None:
        tracked.timer = None
        if tracked.dirty:
            self._draw_now(tracked)
            tracked.throttle.drawn()

    def _give_up(self, tracked: _Tracked[P], exc: Exception) -> None:
        tracked.broken = True
        warn_from_caller(
            f"{type(self).__name__} could not draw run {tracked.state.run_id}: "
            f"{type(exc).__name__}: {exc}; the run goes on without live progress",
            ObserverWarning,
        )
