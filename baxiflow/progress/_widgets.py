"""Live ipywidgets progress for workflow runs: a header and one bar per progress step.

Attach a :class:`ProgressView` as an observer; each run it sees gets its own panel,
shown in the cell where the run starts. Outside a notebook, :func:`progress_view` picks
the terminal display (:class:`TerminalProgress`) instead.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def download(event):
...     for done in range(1, 11):
...         yield WorkflowEvent.progress("download", f"{done} of 10 files", current=done, total=10)
...     yield WorkflowEvent("downloaded")
>>> view = ProgressView(display=False)
>>> async def main():
...     async for _ in workflow.process(WorkflowEvent("start"), observers=[view]):
...         pass
>>> asyncio.run(main())
>>> panel = view.panels[0]
>>> panel.rows["download"].bar.value, panel.rows["download"].bar.bar_style
(1.0, 'success')
>>> print(panel)  # doctest: +ELLIPSIS
start ok: 2 events, 10 progress, 0 errors, elapsed=...s
  download: done 10/10 (100%) - 10 of 10 files
"""

from __future__ import annotations

import html
import itertools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from baxiflow._optional import import_optional
from baxiflow._text import format_duration
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import AnswerError, MissingDependencyError
from baxiflow.handle import find_run
from baxiflow.progress._state import (
    ProgressObserver,
    RunProgress,
    StepState,
)
from baxiflow.progress._throttle import DEFAULT_INTERVAL

__all__ = [
    "ProgressView",
    "RequestRow",
    "RunPanel",
    "StepRow",
    "in_notebook",
    "progress_view",
    "widget_mimebundle",
]

_WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"
_RUN_NUMBERS = itertools.count(1)
"""Numbers the panels shown in this process, so stacked panels of one start event differ."""
_NAME_WIDTH = "14em"
_BAR_WIDTH = "16em"
# Every row is name | bar | text: the name and the bar never shrink, so all bars share one
# left edge; the text takes the rest and ends in an ellipsis, its full form in a tooltip.
_TEXT_STYLE = {"flex": "1 1 0%", "min_width": "0", "overflow": "hidden"}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can show), without importing IPython.

    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def widget_mimebundle(widget: Any, text: str) -> dict[str, Any]:
    """What a Jupyter front end shows of a view built on ``widget``: the live widget while its
    comm is open, and ``text`` always (saved notebooks, nbval, terminals).

    >>> widget_mimebundle(type("Closed", (), {"comm": None})(), "3 runs done")
    {'text/plain': '3 runs done'}
    """
    bundle: dict[str, Any] = {"text/plain": text}
    if widget.comm is not None:
        bundle[_WIDGET_MIMETYPE] = {
            "version_major": 2,
            "version_minor": 0,
            "model_id": widget.model_id,
        }
    return bundle


def progress_view(
    *, interval: float = DEFAULT_INTERVAL, display: bool = True, title: str | None = None
) -> ProgressObserver[Any]:
    """The progress display that fits here: widgets in a notebook, tqdm bars elsewhere.

    Falls back to the terminal display when ipywidgets is not installed.

    Args:
        interval: Least seconds between two redraws of one run.
        display: Show each run's panel when it starts (widgets only).
        title: Label of each run's panel; by default the run's number and initial event.

    Raises:
        MissingDependencyError: Neither display can be made (tqdm is missing too).

    >>> type(progress_view()).__name__
    'TerminalProgress'
    """
    if in_notebook():
        try:
            return ProgressView(interval=interval, display=display, title=title)
        except MissingDependencyError:
            pass
    from baxiflow.progress._terminal import TerminalProgress

    return TerminalProgress(interval=interval, title=title)


class StepRow:
    """The widgets of one step: its name, a bar (0..1) and the latest description.

    Attributes:
        box: The ``HBox`` holding the three.
        name: :class:`TextCell` with the step's name.
        bar: ``FloatProgress`` from 0 to 1; its ``bar_style`` follows the step's status.
        description: :class:`TextCell` with the count (``"3/10 (30%)"``) and the latest description.
    """

    __slots__ = ("bar", "box", "description", "name")

    def __init__(self, widgets: ModuleType, step: StepState) -> None:
        self.name = _name_label(widgets, step.name)
        self.bar = _bar(widgets, step.bar_value, step.bar_style)
        self.description = _text_label(widgets, _row_text(step))
        self.box = widgets.HBox([self.name.widget, self.bar, self.description.widget])

    def update(self, step: StepState) -> None:
        """Send the step's state: one message per widget that changed."""
        bar = self.bar
        with bar.hold_sync():
            bar.value = step.bar_value
            bar.bar_style = step.bar_style
        _set_text(self.description, _row_text(step))


class RequestRow:
    """The widgets of one open request for input: its prompt, then a button per choice, or a
    text box and a ``send`` button; answering sends the answer to the run.

    Attributes:
        request: The ``"input_required"`` event.
        box: The ``VBox`` holding the rest.
        prompt: ``HTML`` with the prompt, and the request's other data as ``key: value``.
        buttons: One ``Button`` per choice; the text box's ``send`` button when it has none.
        text: The ``Text`` box of a request without choices, else ``None``.
        note: ``HTML``: why an answer was refused, or the answer once it was sent.
    """

    __slots__ = ("_send", "box", "buttons", "note", "prompt", "request", "text")

    def __init__(
        self,
        widgets: ModuleType,
        request: WorkflowEvent,
        send: Callable[[WorkflowEvent, Any], str | None],
    ) -> None:
        self.request, self._send = request, send
        data = request.data or {}
        self.prompt = widgets.HTML(_prompt_html(data), layout=widgets.Layout(max_width="100%"))
        choices = data.get("choices")
        self.text = None
        if choices is None:
            self.text = widgets.Text(
                placeholder="your answer", layout=widgets.Layout(width=_BAR_WIDTH)
            )
            button = widgets.Button(description="send", tooltip=f"answer: {data.get('prompt')}")
            button.on_click(lambda _: self.answer(self.text.value if self.text else ""))
            self.buttons = [button]
            controls = [self.text, button]
        else:
            self.buttons = [_choice_button(widgets, self, choice) for choice in choices]
            controls = self.buttons
        self.note = widgets.HTML("")
        self.box = widgets.VBox(
            [self.prompt, widgets.HBox(controls), self.note], _dom_classes=("baxiflow-request",)
        )

    def answer(self, value: Any) -> None:
        """Send ``value`` as the answer, as a click does; say so, or why it was refused."""
        problem = self._send(self.request, value)
        if problem is not None:
            self.note.value = f'<span class="baxiflow-refused">{html.escape(problem)}</span>'
            return
        for control in (*self.buttons, *([self.text] if self.text else [])):
            control.disabled = True
        self.note.value = f"answered: {html.escape(str(value))}"


def _choice_button(widgets: ModuleType, row: RequestRow, choice: Any) -> Any:
    button = widgets.Button(description=str(choice), tooltip=str(choice))
    button.on_click(lambda _: row.answer(choice))
    return button


def _prompt_html(data: dict[str, Any]) -> str:
    details = " · ".join(
        f"{html.escape(str(key))}: {html.escape(str(value))}"
        for key, value in data.items()
        if key not in ("prompt", "reply", "choices")
    )
    shown = f'<b class="baxiflow-prompt">{html.escape(str(data.get("prompt")))}</b>'
    if details:
        shown += f'<div class="baxiflow-details">{details}</div>'
    return f'<div style="white-space: normal; overflow-wrap: anywhere">{shown}</div>'


def send_answer(run_id: str | None, request: WorkflowEvent, value: Any) -> str | None:
    """Answer ``request`` of run ``run_id`` in this process; why it was refused, or ``None``."""
    run = None if run_id is None else find_run(run_id)
    if run is None:
        return (
            "this run takes no answers: run it with `await baxiflow.run(...)` or "
            "workflow.start(...) to answer here"
        )
    try:
        run.answer_nowait(request, value)
    except AnswerError as exc:
        return str(exc)
    return None


class RunPanel:
    """The widgets of one run, with a deterministic text form (its ``repr``).

    Displaying a panel shows the live widgets; the ``text/plain`` part of the display is
    :meth:`RunProgress.text`, never cut short. :class:`ProgressView` displays the panel
    when the run starts (``"start running: 0 events, 0 progress, 0 errors, elapsed=0.00 µs"``, what
    nbval compares, since it ignores display updates) and updates that display with the
    final text when the run ends (what a saved notebook keeps).

    Attributes:
        state: The run's :class:`~baxiflow.progress.RunProgress`.
        widget: The ``VBox`` of the whole panel.
        run_bar: Full ``FloatProgress`` whose ``bar_style`` is the run's: ``info`` while
            running, ``success``, ``danger`` or ``warning`` at the end.
        title: :class:`TextCell` with a number counting the panels of this process and the run's
            label (``title=``, else its initial event).
        summary: :class:`TextCell`: status, events, progress events, errors and elapsed time.
        error: ``HTML``, empty until an error: the last error, where it happened, and its
            traceback folded under a ``<details>`` element.
        rows: One :class:`StepRow` per step, by step name, in order of appearance.
        requests: One :class:`RequestRow` per open request for input, in the order asked.
        asking: The ``VBox`` of the request rows, under the step rows, above the error.
    """

    def __init__(self, widgets: ModuleType, state: RunProgress) -> None:
        self._widgets = widgets
        self.state = state
        self.title = _name_label(widgets, f"#{next(_RUN_NUMBERS)} {state.label}")
        self.run_bar = _bar(widgets, 1.0, state.style)
        self.summary = _text_label(widgets, _summary_text(state))
        header = widgets.HBox([self.title.widget, self.run_bar, self.summary.widget])
        self.error = widgets.HTML("", layout=widgets.Layout(max_width="100%"))
        self.rows: dict[str, StepRow] = {}
        self.requests: list[RequestRow] = []
        self.asking = widgets.VBox([])
        self.widget = widgets.VBox(
            [header, self.asking, self.error], _dom_classes=("baxiflow-panel",)
        )
        self.display_handle: Any = None

    def __repr__(self) -> str:
        return self.state.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.state.text())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_mimebundle(self.widget, self.state.text())

    def draw(self, changed: list[StepState]) -> None:
        """Send the header and the changed steps; new steps get a row at the end."""
        state = self.state
        self.run_bar.bar_style = state.style
        _set_text(self.summary, _summary_text(state))
        error = _error_html(state)
        if self.error.value != error:
            self.error.value = error
        added = []
        for step in changed:
            row = self.rows.get(step.name)
            if row is None:
                row = self.rows[step.name] = StepRow(self._widgets, step)
                added.append(row.box)
            else:
                row.update(step)
        if added:
            # The requests and the error box stay last, under the step rows.
            *shown, asking, error_box = self.widget.children
            self.widget.children = (*shown, *added, asking, error_box)
        self._draw_requests(state.requests)

    def _draw_requests(self, requests: list[WorkflowEvent]) -> None:
        """One row per open request: new ones added, answered ones taken away."""
        if [id(row.request) for row in self.requests] == list(map(id, requests)):
            return
        kept = {id(row.request): row for row in self.requests}
        run_id = self.state.run_id
        self.requests = [
            kept.get(id(request))
            or RequestRow(
                self._widgets, request, lambda asked, value: send_answer(run_id, asked, value)
            )
            for request in requests
        ]
        self.asking.children = tuple(row.box for row in self.requests)


class ProgressView(ProgressObserver[RunPanel]):
    """Live progress in ipywidgets: one :class:`RunPanel` per run, throttled.

    Pass it in ``observers=`` of :meth:`WorkflowManager.process` or attach it with
    :meth:`WorkflowManager.observe`; several runs, concurrent or not, each get their own
    panel. Redraws are throttled (see :class:`~baxiflow.progress.ProgressObserver`):
    a run of 100,000 progress events sends a few dozen widget updates, and the final
    state is always drawn. At the end of a run the panel's display is updated once more,
    so the saved notebook keeps the final text.

    Args:
        interval: Least seconds between two redraws of one run.
        display: Show each run's panel (``IPython.display.display``) when it starts.
        title: Label of every run's panel; by default the run's number and initial event.

    Raises:
        MissingDependencyError: ipywidgets is not installed.
    """

    def __init__(
        self, *, interval: float = DEFAULT_INTERVAL, display: bool = True, title: str | None = None
    ) -> None:
        super().__init__(interval=interval, title=title)
        self._widgets = import_optional("ipywidgets", feature="ProgressView")
        self.display = display

    @property
    def panels(self) -> list[RunPanel]:
        """The panel of every run seen, in the order the runs started."""
        return [tracked.panel for tracked in self._runs.values() if tracked.panel is not None]

    def _open(self, state: RunProgress) -> RunPanel:
        panel = RunPanel(self._widgets, state)
        if self.display:
            ipython_display = import_optional("IPython.display", feature="ProgressView")
            panel.display_handle = ipython_display.display(panel, display_id=True)
        return panel

    def _draw(self, panel: RunPanel, state: RunProgress, changed: list[StepState]) -> None:
        panel.draw(changed)

    def _close(self, panel: RunPanel, state: RunProgress) -> None:
        if panel.display_handle is not None:
            # Replaces the output's text/plain with the final state, for saved notebooks.
            panel.display_handle.update(panel)


def _name_label(widgets: ModuleType, text: str) -> TextCell:
    return TextCell(widgets, text, width=_NAME_WIDTH, flex="0 0 auto", overflow="hidden")


def _bar(widgets: ModuleType, value: float, style: str) -> Any:
    layout = widgets.Layout(width=_BAR_WIDTH, flex="0 0 auto")
    return widgets.FloatProgress(value=value, min=0.0, max=1.0, bar_style=style, layout=layout)


def _text_label(widgets: ModuleType, text: str) -> TextCell:
    return TextCell(widgets, text, **_TEXT_STYLE)


def _set_text(cell: TextCell, text: str) -> None:
    cell.set(text)


class TextCell:
    """One line of a panel: cut with an ellipsis when it does not fit, whole in a tooltip.

    An ``HTML`` widget holding an element with a ``title``: ipywidgets' ``Label`` loses its
    tooltip in the browser (its view writes the text over the element that holds it).

    Attributes:
        value: The text shown.
        tooltip: The text of the tooltip, the whole of :attr:`value`.
        widget: The ``HTML`` widget.
    """

    __slots__ = ("tooltip", "value", "widget")

    def __init__(self, widgets: ModuleType, text: str, **layout: str) -> None:
        self.value = self.tooltip = text
        # A grid of one column as wide as the cell: ipywidgets makes the HTML widget's content
        # a flex item that never shrinks, so the cell would clip it with no ellipsis; a grid
        # item is held to the cell's width, and the line inside it shows the ellipsis.
        grid = {"display": "grid", "grid_template_columns": "minmax(0, 1fr)", **layout}
        self.widget = widgets.HTML(_line_html(text), layout=widgets.Layout(**grid))

    def set(self, text: str) -> None:
        """Show ``text``; sends nothing when it is already shown."""
        if text != self.value:
            self.value = self.tooltip = text
            self.widget.value = _line_html(text)


def _line_html(text: str) -> str:
    shown = html.escape(text)
    return (
        f'<div title="{shown}" style="overflow: hidden; text-overflow: ellipsis; '
        f'white-space: nowrap">{shown}</div>'
    )


def _error_html(state: RunProgress) -> str:
    """The last error, where it happened, and its traceback folded; ``""`` before any."""
    line = state.error_text()
    if line is None:
        return ""
    shown = f'<div class="baxiflow-error" title="{html.escape(line)}">{html.escape(line)}</div>'
    if state.last_traceback:
        shown += (
            '<details class="baxiflow-traceback"><summary>traceback</summary>'
            f'<pre style="white-space: pre-wrap">{html.escape(state.last_traceback)}</pre>'
            "</details>"
        )
    return shown


def _row_text(step: StepState) -> str:
    count = step.count_text()
    if count and step.description:
        return f"{count} · {step.description}"
    return count or step.description


def _summary_text(state: RunProgress) -> str:
    return f"{state.status} · {state.counts_text()} · {format_duration(state.elapsed)}"
