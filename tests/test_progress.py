"""The ipywidgets progress view, driven by real runs; widgets are inspected as plain objects."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import comm
import pytest
from comm.base_comm import BaseComm

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.exceptions import MissingDependencyError, ObserverWarning
from baxiflow.progress import ProgressView, RunPanel, TerminalProgress, progress_view


class CountingComm(BaseComm):
    """A comm that counts what it would send to the front end."""

    sent: ClassVar[Counter[str]] = Counter()
    fail_updates = False

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        kind = (
            data.get("method", msg_type)
            if isinstance(data, dict) and msg_type == "comm_msg"
            else msg_type
        )
        if kind == "update" and CountingComm.fail_updates:
            raise ConnectionError("kernel socket closed")
        CountingComm.sent[kind] += 1


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    CountingComm.sent = Counter()
    CountingComm.fail_updates = False
    monkeypatch.setattr(comm, "create_comm", CountingComm)
    yield CountingComm.sent


async def drain(workflow: WorkflowManager, *observers: Any, start: str = "start") -> list[str]:
    return [
        event.name async for event in workflow.process(WorkflowEvent(start), observers=observers)
    ]


def pipeline() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def greet(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greet", "Saying hello")
        yield WorkflowEvent("download")

    @workflow.on("download")
    async def download(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for done in range(1, 4):
            yield WorkflowEvent.progress("download", f"{done} of 4 files", current=done, total=4)
        yield WorkflowEvent("completed")

    return workflow


async def test_view_shows_one_row_per_step_in_order_with_bars_and_labels() -> None:
    view = ProgressView(interval=0, display=False)
    await drain(pipeline(), view)
    [panel] = view.panels
    assert list(panel.rows) == ["greet", "download"]
    greet, download = panel.rows["greet"], panel.rows["download"]
    assert (greet.name.value, greet.bar.value, greet.bar.bar_style) == ("greet", 1.0, "success")
    assert greet.description.value == "Saying hello"
    assert (download.bar.value, download.bar.bar_style) == (0.75, "success")
    assert download.description.value == "3/4 (75%) · 3 of 4 files"
    assert panel.widget.children[1:] == (greet.box, download.box, panel.asking, panel.error)
    assert panel.run_bar.bar_style == "success"
    assert panel.summary.value.startswith("ok · 3 events, 4 progress, 0 errors · ")


async def test_running_step_shows_its_fraction_and_a_step_without_one_shows_as_active() -> None:
    workflow = WorkflowManager()
    view = ProgressView(interval=0, display=False)
    seen: list[tuple[Any, ...]] = []

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("search", "Searching")
        yield WorkflowEvent.progress("fetch", "1 of 4", current=1, total=4)
        rows = view.panels[0].rows
        seen.append(
            (rows["search"].bar.bar_style, rows["fetch"].bar.value, rows["fetch"].bar.bar_style)
        )
        seen.append(
            (view.panels[0].run_bar.bar_style, view.panels[0].summary.value.split(" · ")[0])
        )

    await drain(workflow, view)
    assert seen == [("success", 0.25, ""), ("info", "running")]


async def test_error_turns_its_step_and_the_run_danger_and_success_never_replaces_it() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "page 2", current=2, total=5)
        raise RuntimeError("backend down")

    @workflow.on("start")
    async def summarize(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("summarize", "done", current=1, total=1)

    view = ProgressView(interval=0, display=False)
    await drain(workflow, view)
    [panel] = view.panels
    assert (panel.rows["fetch"].bar.bar_style, panel.rows["fetch"].bar.value) == ("danger", 0.4)
    assert panel.rows["summarize"].bar.bar_style == "success"
    assert panel.run_bar.bar_style == "danger"
    assert panel.summary.value.startswith("error · ")
    assert panel.summary.tooltip == panel.summary.value
    # The last error gets its own line with the failing line, the traceback folded below.
    here = f"{__file__}, line "
    assert "last error: backend down (at " in panel.error.value and here in panel.error.value
    assert (
        "<details" in panel.error.value and "Traceback (most recent call last)" in panel.error.value
    )


async def test_concurrent_runs_sharing_a_view_each_get_their_own_panel() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        name = event.data["name"] if event.data else "?"
        for done in range(1, 4):
            yield WorkflowEvent.progress(name, f"{done}/3", current=done, total=3)
            await asyncio.sleep(0)

    view = ProgressView(interval=0, display=False)

    async def one(name: str) -> None:
        async for _ in workflow.process(WorkflowEvent("start", {"name": name}), observers=[view]):
            pass

    await asyncio.gather(one("left"), one("right"))
    assert [list(panel.rows) for panel in view.panels] == [["left"], ["right"]]
    assert all(
        panel.rows[name].bar.value == 1.0
        for panel, name in zip(view.panels, ["left", "right"], strict=True)
    )
    assert len({panel.widget.model_id for panel in view.panels}) == 2


async def test_a_hundred_thousand_progress_events_send_few_widget_updates(
    sent: Counter[str],
) -> None:
    workflow = WorkflowManager()
    total = 100_000

    @workflow.on("start")
    async def busy(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for done in range(1, total + 1):
            yield WorkflowEvent.progress("busy", "working", current=done, total=total)

    view = ProgressView(display=False)
    await drain(workflow, view)
    [panel] = view.panels
    assert 0 < sent["update"] <= 200
    assert (panel.rows["busy"].bar.value, panel.rows["busy"].bar.bar_style) == (1.0, "success")
    assert panel.summary.value.startswith(f"ok · 1 event, {total:,} progress, 0 errors")


async def test_widget_updates_of_one_redraw_are_sent_as_one_message_per_widget(
    sent: Counter[str],
) -> None:
    view = ProgressView(interval=3600, display=False)
    await drain(pipeline(), view)
    # First draw at the initial event: summary only. Final draw: run bar, summary, then two
    # new rows whose widgets are created with their state (comm_open), added in one children update.
    assert sent["update"] == 4


async def test_widget_error_never_breaks_the_workflow(sent: Counter[str]) -> None:
    CountingComm.fail_updates = True
    view = ProgressView(interval=0, display=False)
    with pytest.warns(ObserverWarning, match="kernel socket closed") as caught:
        names = await drain(pipeline(), view)
    assert names == [
        "start",
        "progress",
        "download",
        "progress",
        "progress",
        "progress",
        "completed",
    ]
    assert len(caught) == 1
    assert view.states[0].status == "ok"
    assert repr(view.panels[0]).startswith("start ok: 3 events, 4 progress, 0 errors, elapsed=")


async def test_panel_text_is_the_full_run_text_and_its_display_carries_the_widget() -> None:
    view = ProgressView(interval=0, display=False)
    await drain(pipeline(), view)
    [panel] = view.panels
    text = panel.state.text()
    assert len(text) > 110  # ipywidgets cuts its own text/plain at 110 characters
    assert repr(panel) == text
    bundle = panel._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert repr(view) == text


async def test_view_displays_each_panel_and_redisplays_it_with_the_final_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import IPython.display

    shown: list[str] = []

    class Handle:
        def update(self, obj: RunPanel) -> None:
            shown.append("update: " + obj._repr_mimebundle_()["text/plain"].splitlines()[0])

    def display(obj: RunPanel, display_id: bool = False) -> Handle:
        assert display_id is True
        shown.append("display: " + obj._repr_mimebundle_()["text/plain"].splitlines()[0])
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    await drain(pipeline(), ProgressView(interval=0))
    assert [line.split(", elapsed=")[0] for line in shown] == [
        "display: start running: 0 events, 0 progress, 0 errors",
        "update: start ok: 3 events, 4 progress, 0 errors",
    ]


def test_progress_view_picks_the_terminal_outside_a_notebook() -> None:
    assert isinstance(progress_view(), TerminalProgress)


def test_progress_view_picks_widgets_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("baxiflow.progress._widgets.in_notebook", lambda: True)
    view = progress_view(display=False, interval=0.5)
    assert isinstance(view, ProgressView)
    assert (view.interval, view.display) == (0.5, False)


def test_progress_view_falls_back_to_the_terminal_without_ipywidgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("baxiflow.progress._widgets.in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert isinstance(progress_view(), TerminalProgress)


def test_view_without_ipywidgets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(
        MissingDependencyError, match=r"ProgressView needs the 'ipywidgets' package"
    ):
        ProgressView()


def test_importing_the_progress_modules_imports_no_display_library() -> None:
    code = (
        "import sys, baxiflow.progress, baxiflow.runner\n"
        "print(sorted(m for m in ['ipywidgets', 'IPython', 'tqdm', 'pandas', 'nest_asyncio', 'nest_asyncio2'] if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
