"""One live panel for a whole batch: ipywidgets in a notebook, a tqdm bar in a terminal.

>>> import io
>>> state = BatchState(total=2)
>>> view = TerminalBatchView(state, file=io.StringIO())
>>> state.run_started(); state.outcome({"index": 0, "status": "ok"}); view.changed()
>>> view.close(); print(view)  # doctest: +ELLIPSIS
1/2 runs · 0 running · 1 ok · 0 failed · ... runs/s · elapsed ...
"""

from __future__ import annotations

import functools
import html
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

from baxiflow._optional import import_optional
from baxiflow.batch._state import BatchState
from baxiflow.exceptions import MissingDependencyError
from baxiflow.progress import Throttle, in_notebook, widget_mimebundle

__all__ = ["BatchDisplay", "BatchView", "TerminalBatchView", "batch_view"]


DEFAULT_INTERVAL: Final = 0.1
"""Least seconds between two redraws, as for the run panels."""

_REDRAWS_PER_BATCH: Final = 100
"""A redraw waits for a hundredth of the batch to end, or for :data:`_IDLE_REDRAW` seconds."""

_IDLE_REDRAW: Final = 1.0
"""Seconds after which a batch that ends few runs is redrawn anyway (running and step counts)."""


class BatchDisplay:
    """A view of a :class:`BatchState`, redrawn at most every ``interval`` seconds.

    :meth:`changed` is the one throttle: a cheap counter, then the clock (see
    :class:`~baxiflow.progress.Throttle`), then a redraw only when a hundredth of the
    batch has ended since the last one, or a second has gone by. So a batch of 10,000
    quick runs is drawn about a hundred times whatever its speed, and :meth:`close`
    always draws the final state.
    """

    def __init__(
        self,
        state: BatchState,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.throttle = Throttle(interval, clock=clock)
        self._clock = clock
        self._drawn_done = -1
        self._drawn_at = -float("inf")
        self.redraws = 0

    def changed(self) -> None:
        """Something changed; redraw if one is due."""
        if not self.throttle.due():
            return
        state = self.state
        stride = max(1, (state.total or state.done) // _REDRAWS_PER_BATCH)
        now = self._clock()
        if state.done - self._drawn_done < stride and now - self._drawn_at < _IDLE_REDRAW:
            return
        self._redraw(now)

    def _redraw(self, now: float) -> None:
        self._drawn_done = self.state.done
        self._drawn_at = now
        self.redraws += 1
        self.draw()

    def close(self) -> None:
        """Draw the final state."""
        self._redraw(self._clock())

    def draw(self) -> None:
        """Show the state now (subclasses)."""

    def __repr__(self) -> str:
        return self.state.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.state.text())


class BatchView(BatchDisplay):
    """The batch panel in ipywidgets: a bar of runs done, then one HTML block of counts.

    Each redraw changes two widgets (the bar and the block), inside ``hold_sync()``.

    Attributes:
        bar: ``IntProgress`` of runs done out of the total (of runs so far when the input
            has no length); ``success`` at the end, ``danger`` when any run failed.
        details: ``HTML``: counts (failures in red), throughput and time left, runs per
            step, and the last few failures with their error.
        widget: The ``VBox`` holding both.

    Raises:
        MissingDependencyError: ipywidgets is not installed.
    """

    def __init__(
        self, state: BatchState, *, interval: float = DEFAULT_INTERVAL, display: bool = True
    ) -> None:
        super().__init__(state, interval=interval)
        widgets = import_optional("ipywidgets", feature="BatchView")
        self.bar = widgets.IntProgress(value=0, min=0, max=max(state.total or 0, 1))
        self.bar.description = "batch"
        self.details = widgets.HTML(self._html())
        self.widget = widgets.VBox([self.bar, self.details])
        self.display_handle: Any = None
        if display:
            ipython_display = import_optional("IPython.display", feature="BatchView")
            self.display_handle = ipython_display.display(self, display_id=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_mimebundle(self.widget, self.state.text())

    def _html(self) -> str:
        state = self.state
        total = "?" if state.total is None else str(state.total)
        failed = f"{state.failed} failed"
        if state.failed:
            failed = f"<span style='color:#c62828;font-weight:bold'>{failed}</span>"
        lines = [
            f"<b>{state.done}/{total}</b> runs · {state.running} running · {state.ok} ok · "
            f"{failed} · {html.escape(state.timing_text())}"
        ]
        if state.stopped is not None:
            lines.append(f"<b>stopped</b>: {html.escape(state.stopped)}")
        if state.steps:
            lines.append(f"steps: {html.escape(state.steps_text())}")
        lines.extend(
            f"<span style='color:#c62828'>failed</span>: input {index}: {html.escape(error)}"
            for index, error in state.failures
        )
        return "<br>".join(lines)

    def draw(self) -> None:
        state = self.state
        with self.bar.hold_sync():
            self.bar.max = max(state.total if state.total is not None else state.done, 1)
            self.bar.value = state.done
            if state.finished:
                self.bar.bar_style = "danger" if state.failed else "success"
        self.details.value = self._html()

    def close(self) -> None:
        super().close()
        if self.display_handle is not None:
            # Replaces the output's text/plain with the final state, for saved notebooks.
            self.display_handle.update(self)


@functools.cache
def _bar_class() -> Any:
    tqdm_std = import_optional("tqdm.std", feature="TerminalBatchView", package="tqdm")

    class Bar(tqdm_std.tqdm):  # type: ignore[misc, name-defined]
        # Redraws come from our throttle; tqdm's monitor thread would only add a thread.
        monitor_interval = 0

    return Bar


class TerminalBatchView(BatchDisplay):
    """The batch panel as one tqdm bar; each failure among the first few gets a line.

    Raises:
        MissingDependencyError: tqdm is not installed.
    """

    def __init__(
        self, state: BatchState, *, interval: float = DEFAULT_INTERVAL, file: TextIO | None = None
    ) -> None:
        super().__init__(state, interval=interval)
        self.bar = _bar_class()(
            total=state.total,
            desc="batch",
            unit="run",
            file=sys.stderr if file is None else file,
            mininterval=0,
            dynamic_ncols=False,
            ncols=100,
        )
        self._written = 0

    def draw(self) -> None:
        state = self.state
        self.bar.n = state.done
        postfix = f"{state.running} running, {state.ok} ok, {state.failed} failed"
        if state.steps:
            postfix += f" | {state.steps_text()}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()
        for index, error in list(state.failures)[self._new_failures() :]:
            self.bar.write(f"failed: input {index}: {error}", file=self.bar.fp)
        self._written = state.failed

    def _new_failures(self) -> int:
        unseen = self.state.failed - self._written
        return max(len(self.state.failures) - unseen, 0)

    def close(self) -> None:
        super().close()
        if self.state.stopped is not None:
            self.bar.write(f"stopped: {self.state.stopped}", file=self.bar.fp)
        self.bar.close()


def batch_view(state: BatchState) -> BatchDisplay:
    """The batch view that fits here: widgets in a notebook, a tqdm bar elsewhere."""
    if in_notebook():
        try:
            return BatchView(state)
        except MissingDependencyError:
            pass
    return TerminalBatchView(state)
