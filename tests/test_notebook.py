"""Running workflows from notebook cells: the await form and the sync form, outside a kernel."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.progress import ProgressView
from baxiflow.runner import RunResult, run, run_sync
from baxiflow.trace import Trace

caller = contextvars.ContextVar("caller", default="unset")


def greeter(seen: list[str] | None = None) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def greet(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        if seen is not None:
            seen.append(f"{threading.current_thread().name} {caller.get()}")
        yield WorkflowEvent.progress("greet", "Saying hello")
        yield WorkflowEvent(
            "completed", data={"text": f"Hello, {event.data['name'] if event.data else '?'}!"}
        )

    return workflow


async def test_run_returns_the_trace_the_events_and_the_status() -> None:
    result = await run(greeter(), WorkflowEvent("start", {"name": "Ada"}), view=False)
    assert isinstance(result, RunResult)
    assert isinstance(result.trace, Trace)
    assert [record["event"] for record in result.trace.records] == [
        "start",
        "progress",
        "completed",
    ]
    assert [event.name for event in result.events] == ["start", "completed"]
    assert result.final.data == {"text": "Hello, Ada!"}
    assert (result.status, result.errors, result.info.events) == ("ok", [], 3)
    assert repr(result) == "<RunResult ok: 2 events, 1 progress, 0 errors, final 'completed'>"


async def test_run_shows_the_terminal_view_by_default_outside_a_notebook(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await run(greeter(), WorkflowEvent("start", {"name": "Ada"}))
    assert (
        "start {'name': 'Ada'} ok: 2 events, 1 progress, 0 errors, elapsed="
        in capsys.readouterr().err
    )


async def test_run_uses_the_view_it_is_given_and_more_observers() -> None:
    view = ProgressView(interval=0, display=False)
    seen: list[str] = []
    await run(
        greeter(),
        WorkflowEvent("start"),
        view=view,
        observers=[lambda e: seen.append(e.event.name)],
    )
    assert seen == ["start", "progress", "completed"]
    assert list(view.panels[0].rows) == ["greet"]


async def test_run_passes_run_limits_to_process() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def loop(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("start")

    result = await run(workflow, WorkflowEvent("start"), view=False, max_events=3)
    assert result.status == "max_events"
    assert result.final.is_error
    assert result.errors == [result.final]


def test_run_sync_without_a_running_loop_runs_in_this_thread() -> None:
    seen: list[str] = []
    token = caller.set("test")
    try:
        result = run_sync(greeter(seen), WorkflowEvent("start", {"name": "Ada"}), view=False)
    finally:
        caller.reset(token)
    assert result.final.data == {"text": "Hello, Ada!"}
    assert seen == [f"{threading.current_thread().name} test"]


async def test_run_sync_inside_a_running_loop_runs_in_a_worker_thread_with_the_callers_context() -> (
    None
):
    seen: list[str] = []
    caller.set("cell 3")
    result = run_sync(greeter(seen), WorkflowEvent("start", {"name": "Ada"}), view=False)
    assert result.status == "ok"
    assert seen == ["baxiflow-run_sync cell 3"]
    assert asyncio.get_running_loop().is_running()


async def test_run_sync_inside_a_running_loop_raises_what_the_run_raised() -> None:
    with pytest.raises(TypeError, match="process\\(\\) takes a WorkflowEvent"):
        run_sync(greeter(), "start", view=False)  # type: ignore[arg-type]


@contextlib.contextmanager
def keyboard_interrupts() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a kernel running a cell.

    Set inside the test: the runner of async tests installs its own SIGINT handler.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def test_interrupting_run_sync_cancels_the_run_and_raises_keyboard_interrupt() -> None:
    workflow = WorkflowManager()
    cleaned: list[str] = []
    started = threading.Event()

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        try:
            started.set()
            yield WorkflowEvent.progress("slow", "waiting")
            await asyncio.sleep(30)
            yield WorkflowEvent("never")
        finally:
            cleaned.append(threading.current_thread().name)

    main_thread = threading.get_ident()

    def interrupt() -> None:
        started.wait(5)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=interrupt).start()
    with keyboard_interrupts(), pytest.raises(KeyboardInterrupt):
        run_sync(workflow, WorkflowEvent("start"), view=False)
    assert cleaned == ["baxiflow-run_sync"]


async def test_run_sync_inside_a_running_loop_draws_the_view_it_is_given() -> None:
    view = ProgressView(interval=0, display=False)
    result = run_sync(greeter(), WorkflowEvent("start", {"name": "Ada"}), view=view)
    [panel] = view.panels
    assert panel.state.run_id == result.info.run_id
    assert (panel.run_bar.bar_style, panel.rows["greet"].bar.bar_style) == ("success", "success")
