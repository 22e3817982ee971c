"""The terminal progress display (tqdm), written to a text stream."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.exceptions import MissingDependencyError
from baxiflow.progress._terminal import TerminalProgress, _bar_class

CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, so the view draws live bars into it."""

    def isatty(self) -> bool:
        return True


def shown(out: io.StringIO) -> list[str]:
    """Roughly what a terminal keeps: each line's text after its last carriage return."""
    lines = CURSOR_MOVES.sub("", out.getvalue()).split("\n")
    return [line.rsplit("\r", 1)[-1].rstrip() for line in lines][:-1]


async def drain(
    workflow: WorkflowManager, *observers: object, data: dict[str, str] | None = None
) -> None:
    async for _ in workflow.process(WorkflowEvent("start", data), observers=observers):  # type: ignore[arg-type]
        pass


def pipeline() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greet", "Saying hello")
        for done in range(1, 5):
            yield WorkflowEvent.progress("download", f"{done} of 4 files", current=done, total=4)
        yield WorkflowEvent.failure("disk full")
        yield WorkflowEvent("completed")

    return workflow


async def test_terminal_view_writes_each_ended_step_once_then_the_run_summary() -> None:
    out = io.StringIO()
    await drain(pipeline(), TerminalProgress(interval=0, file=out))
    lines = shown(out)
    assert lines[:2] == [
        "  greet: done - Saying hello",
        "  download: done 4/4 (100%) - 4 of 4 files",
    ]
    assert lines[2].startswith("start error: 3 events, 5 progress, 1 error, elapsed=")
    assert lines[3:] == ["  last error: disk full"]


async def test_terminal_view_shows_the_live_step_with_its_fraction() -> None:
    out = Terminal()
    workflow = WorkflowManager()
    snapshots: list[str] = []

    @workflow.on("start")
    async def download(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("search", "Searching")
        snapshots.append(out.getvalue().rsplit("\r", 1)[-1])
        yield WorkflowEvent.progress("download", "3 of 10 files", current=3, total=10)
        snapshots.append(out.getvalue().rsplit("\r", 1)[-1])

    await drain(workflow, TerminalProgress(interval=0, file=out))
    assert snapshots[0].startswith("search [00:00, Searching]")
    assert snapshots[1].startswith("download:  30%|")
    assert "| 3/10 [00:00, 3 of 10 files]" in snapshots[1]


async def test_the_live_bar_says_how_many_other_steps_are_active_when_calls_overlap() -> None:
    out = Terminal()
    workflow = WorkflowManager(concurrency=3)
    started: list[str] = []
    all_started = asyncio.Event()
    snapshots: list[str] = []

    for name in ("search", "fetch", "rank"):

        async def work(event: WorkflowEvent, name: str = name) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent.progress(name, "working")
            started.append(name)
            if len(started) == 3:
                all_started.set()
            await all_started.wait()
            if name == "rank":
                snapshots.append(out.getvalue().rsplit("\r", 1)[-1])
            yield WorkflowEvent(f"{name}_done")

        workflow.register("start", work, sequential=False)

    await drain(workflow, TerminalProgress(interval=0, file=out))
    assert re.match(r"\w+ \(\+2 more active\) \[", snapshots[0]), snapshots
    assert "more active" not in shown(out)[-1]


async def test_concurrent_runs_each_get_their_own_terminal_bar() -> None:
    workflow = WorkflowManager()
    live_bars: list[int] = []
    out = Terminal()
    view = TerminalProgress(interval=0, file=out)

    @workflow.on("start")
    async def step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        name = event.data["name"] if event.data else "?"
        for done in range(1, 3):
            yield WorkflowEvent.progress(name, str(done), current=done, total=2)
            live_bars.append(len(_bar_class()._instances))
            await asyncio.sleep(0)

    await asyncio.gather(
        drain(workflow, view, data={"name": "left"}), drain(workflow, view, data={"name": "right"})
    )
    assert max(live_bars) == 2
    assert [list(state.steps) for state in view.states] == [["left"], ["right"]]
    lines = shown(out)
    assert {"  left: done 2/2 (100%) - 2", "  right: done 2/2 (100%) - 2"} <= set(lines)
    assert sum(bool(re.match(r"start \{'name': '\w+'\} ok: ", line)) for line in lines) == 2


@pytest.fixture
def fresh_bar_class() -> Iterator[None]:
    _bar_class.cache_clear()
    yield
    _bar_class.cache_clear()


def test_terminal_view_refuses_a_file_it_cannot_write_to() -> None:
    with pytest.raises(TypeError, match="file must be a text stream with a write"):
        TerminalProgress(file="out.txt")  # type: ignore[arg-type]


def test_terminal_view_without_tqdm_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, fresh_bar_class: None
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    with pytest.raises(MissingDependencyError, match=r"TerminalProgress needs the 'tqdm' package"):
        TerminalProgress()


async def test_terminal_view_writes_plain_lines_without_carriage_returns_when_not_a_terminal() -> (
    None
):
    out = io.StringIO()
    await drain(pipeline(), TerminalProgress(interval=0, file=out))
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert out.getvalue().splitlines()[0] == "  greet: done - Saying hello"


async def test_terminal_view_prints_the_failing_line_and_traceback_at_the_end() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def book(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("book", "calling the calendar")
        raise ConnectionError("calendar unreachable")

    out = io.StringIO()
    await drain(workflow, TerminalProgress(interval=0, file=out))
    text = out.getvalue()
    line = book.__code__.co_firstlineno + 3
    assert f"last error: calendar unreachable (at {__file__}, line {line}, in book)" in text
    assert f'    File "{__file__}", line {line}, in book' in text
    assert text.rstrip().endswith("ConnectionError: calendar unreachable")
