"""Progress of workflow runs in a terminal: one live tqdm bar per run, a log line per step.

The live bar shows the step reporting now (its fraction when it has one, and how many other
steps are active with it when calls overlap); each step that ends is written once as a line, and the run's summary line closes the run, followed by
the last error's traceback when there was one. The lines are those of
:meth:`RunProgress.text <baxiflow.progress.RunProgress.text>`. When the output is not a
terminal (a log file, a pipe, a ``StringIO``), there is no live bar: only the plain lines.

>>> import asyncio, io
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent.progress("greet", "Saying hello")
...     yield WorkflowEvent("done")
>>> out = io.StringIO()
>>> async def main():
...     async for _ in workflow.process(WorkflowEvent("start"), observers=[TerminalProgress(file=out)]):
...         pass
>>> asyncio.run(main())
>>> print(out.getvalue(), end="")  # doctest: +ELLIPSIS
  greet: done - Saying hello
start ok: 2 events, 1 progress, 0 errors, elapsed=...s
"""

from __future__ import annotations

import functools
import sys
from typing import Any, TextIO

from baxiflow._optional import import_optional
from baxiflow._text import format_duration
from baxiflow.progress._state import (
    ProgressObserver,
    RunProgress,
    StepState,
    StepStatus,
    request_text,
)
from baxiflow.progress._throttle import DEFAULT_INTERVAL

__all__ = ["TerminalProgress"]

_WITH_FRACTION = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
_WITHOUT_FRACTION = "{desc} [{elapsed}{postfix}]"


@functools.cache
def _bar_class() -> Any:
    tqdm_std = import_optional("tqdm.std", feature="TerminalProgress", package="tqdm")

    class Bar(tqdm_std.tqdm):  # type: ignore[misc, name-defined]
        # Redraws come from our throttle; tqdm's monitor thread would only add a thread.
        monitor_interval = 0

    return Bar


class _TerminalPanel:
    __slots__ = ("asked", "bar", "file", "written")

    def __init__(self, bar: Any, file: TextIO) -> None:
        # bar is None when the output is not a terminal: plain lines then, no \r frames.
        self.bar = bar
        self.file = file
        self.written: dict[str, tuple[StepStatus, int]] = {}
        self.asked: set[int] = set()  # the requests written, by id


class TerminalProgress(ProgressObserver[_TerminalPanel]):
    """Progress in a terminal (or any text stream) with tqdm; the fallback of the widget view.

    Each run gets its own bar, so concurrent runs stack their bars. Redraws are throttled
    like the widget view's; the final state is always written.

    Args:
        interval: Least seconds between two redraws of one run.
        file: Where to write; ``sys.stderr`` (looked up when a run starts) by default.
            A live bar only when it is a terminal (``isatty()``); plain lines otherwise.
        title: The label of every run; by default the run's number and initial event.

    Raises:
        MissingDependencyError: tqdm is not installed.
    """

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        file: TextIO | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(interval=interval, title=title)
        if file is not None and not callable(getattr(file, "write", None)):
            raise TypeError(f"file must be a text stream with a write() method, got {file!r}")
        self._bar = _bar_class()
        self.file = file

    def _open(self, state: RunProgress) -> _TerminalPanel:
        file = self.file if self.file is not None else sys.stderr
        if not _is_terminal(file):
            return _TerminalPanel(None, file)
        bar = self._bar(
            total=None,
            desc=state.header_text(),
            bar_format=_WITHOUT_FRACTION,
            file=file,
            leave=False,
            dynamic_ncols=True,
        )
        return _TerminalPanel(bar, file)

    def _draw(self, panel: _TerminalPanel, state: RunProgress, changed: list[StepState]) -> None:
        bar = panel.bar
        for step in changed:
            mark = (step.status, step.updates)
            if step.status != "active" and panel.written.get(step.name) != mark:
                panel.written[step.name] = mark
                _write(panel, f"  {step.text()}")
        for request in state.requests:
            if id(request) not in panel.asked:
                panel.asked.add(id(request))
                _write(panel, f"  asks: {request_text(request)}")
        if bar is None:
            return
        live = state.current
        if live is None:
            bar.bar_format = _WITHOUT_FRACTION
            bar.set_description_str(state.header_text(), refresh=False)
            bar.total = None
        elif live.fraction is None:
            bar.bar_format = _WITHOUT_FRACTION
            bar.set_description_str(_live_name(state, live), refresh=False)
            bar.total = None
        else:
            bar.bar_format = _WITH_FRACTION
            bar.set_description_str(_live_name(state, live), refresh=False)
            bar.total = live.total
            bar.n = live.current
        bar.set_postfix_str(live.description if live else "", refresh=False)
        bar.refresh()

    def _close(self, panel: _TerminalPanel, state: RunProgress) -> None:
        if panel.bar is not None:
            panel.bar.close()
        lines = [f"{state.header_text()}, elapsed={format_duration(state.elapsed)}"]
        error = state.error_text()
        if error is not None:
            lines.append(f"  {error}")
        if state.last_traceback:
            lines.extend(f"    {line}" for line in state.last_traceback.rstrip("\n").splitlines())
        _write(panel, "\n".join(lines))


def _live_name(state: RunProgress, live: StepState) -> str:
    """The live step's name, and how many other steps are active with it (calls that overlap)."""
    others = sum(step.status == "active" for step in state.steps.values()) - 1
    return live.name if others < 1 else f"{live.name} (+{others} more active)"


def _is_terminal(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _write(panel: _TerminalPanel, text: str) -> None:
    if panel.bar is not None:
        panel.bar.write(text, file=panel.file)
    else:
        panel.file.write(text + "\n")
        flush = getattr(panel.file, "flush", None)
        if callable(flush):
            flush()
