"""Input from people: handlers that ask, runs that wait, answers, time-outs, refusals, resume."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baxiflow import AnswerError, WorkflowEvent, WorkflowManager, WorkflowRun, run, run_sync
from baxiflow.progress import ProgressView
from baxiflow.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def helpdesk(calls: list[str] | None = None) -> WorkflowManager:
    """Asks before booking an engineer; counts every handler call in ``calls``."""
    calls = [] if calls is None else calls
    workflow = WorkflowManager()

    @workflow.on("ticket")
    async def triage(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        calls.append("triage")
        yield WorkflowEvent.input_required(
            "Book an engineer?",
            reply="approval",
            choices=["approve", "reject"],
            data={"ticket": event.data["id"] if event.data else 0},
            metadata={"session": "s-1"},
        )

    @workflow.on("approval")
    async def book(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        calls.append("book")
        assert event.data is not None
        yield WorkflowEvent("booked" if event.data["value"] == "approve" else "closed")

    return workflow


async def names(stream: AsyncIterator[WorkflowEvent]) -> list[str]:
    return [event.name async for event in stream]


async def test_a_run_waits_for_the_answer_and_the_asking_handler_does_not_run_again() -> None:
    calls: list[str] = []
    run_ = helpdesk(calls).start(WorkflowEvent("ticket", {"id": 7}))
    seen = []
    async for event in run_:
        seen.append(event)
        if event.is_request:
            assert run_.pending == [event]
            answered = await run_.answer(event, "approve")
            assert answered is event and run_.pending == []
    assert [e.name for e in seen] == ["ticket", "input_required", "approval", "booked"]
    request, answer = seen[1], seen[2]
    assert request.data == {
        "prompt": "Book an engineer?",
        "reply": "approval",
        "choices": ["approve", "reject"],
        "ticket": 7,
    }
    # The answer is the reply event; it keeps the request's context.
    assert answer == WorkflowEvent("approval", {"value": "approve"}, {"session": "s-1"})
    assert calls == ["triage", "book"]


async def test_a_run_waits_with_an_empty_queue_until_an_answer_is_sent_from_another_task() -> None:
    run_ = helpdesk().start(WorkflowEvent("ticket"))
    collected = asyncio.create_task(names(run_))
    await asyncio.sleep(0.05)
    assert not collected.done() and run_.waiting
    await run_.send(WorkflowEvent("approval", {"value": "reject"}))
    assert await asyncio.wait_for(collected, 5) == [
        "ticket",
        "input_required",
        "approval",
        "closed",
    ]
    assert not run_.waiting


async def test_an_answer_from_another_thread_is_refused_with_the_thread_safe_way_to_send_it() -> (
    None
):
    run_ = helpdesk().start(WorkflowEvent("ticket"))
    collected = asyncio.create_task(names(run_))
    await asyncio.sleep(0.05)
    [request] = run_.pending
    with pytest.raises(RuntimeError, match="call_soon_threadsafe"):
        await asyncio.to_thread(run_.answer_nowait, request, "approve")
    assert run_.pending == [request] and run_.waiting  # nothing changed
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(loop.call_soon_threadsafe, run_.answer_nowait, request, "approve")
    assert await asyncio.wait_for(collected, 5) == [
        "ticket",
        "input_required",
        "approval",
        "booked",
    ]


async def test_wait_timeout_ends_the_wait_with_an_error_naming_the_prompt() -> None:
    workflow = helpdesk()
    errors: list[str] = []

    @workflow.on("error")
    async def note(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        errors.append(event.data["reason"] if event.data else "")
        yield WorkflowEvent("noted")

    for started in (
        workflow.start(WorkflowEvent("ticket"), wait_timeout=0.05),
        WorkflowManager(wait_timeout=0.05)
        .register("ticket", workflow.handlers_for("ticket")[0])
        .start(WorkflowEvent("ticket")),
    ):
        events = [event async for event in started]
        error = next(e for e in events if e.is_error)
        assert "no answer within 0.05 s (wait_timeout) to 'Book an engineer?'" in (
            error.error or ""
        )
        assert error.data == {
            "reason": "wait_timeout",
            "prompts": ["Book an engineer?"],
            "replies": ["approval"],
        }
        assert started.pending == []
        with pytest.raises(AnswerError, match="has ended"):
            await started.answer(events[1], "approve")
    assert errors == ["wait_timeout"]  # dispatched to "error" handlers like any error


async def test_refused_answers_say_why_and_change_nothing() -> None:
    run_ = helpdesk().start(WorkflowEvent("ticket"))
    request = None
    async for event in run_.until_waiting():
        request = event if event.is_request else request
    assert request is not None and run_.waiting
    with pytest.raises(
        AnswerError, match=r"'maybe' is not a choice .* the choices are 'approve', 'reject'"
    ):
        await run_.answer(request, "maybe")
    with pytest.raises(
        AnswerError,
        match="no open request takes an answer named 'approved'; open requests: 'Book an engineer\\?' \\(reply 'approval'\\)",
    ):
        await run_.send(WorkflowEvent("approved", {"value": "approve"}))
    with pytest.raises(AnswerError, match="must carry data\\['value'\\]"):
        await run_.send(WorkflowEvent("approval"))
    with pytest.raises(TypeError, match="takes a request"):
        await run_.answer(WorkflowEvent("ticket"), "approve")
    assert run_.pending == [request] and run_.waiting  # nothing changed
    await run_.answer(request, "approve")
    assert await names(run_) == ["approval", "booked"]


async def test_several_requests_open_at_once_are_answered_in_any_order() -> None:
    workflow = WorkflowManager()

    @workflow.on("form")
    async def ask_both(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.input_required("Which city?", reply="city")
        yield WorkflowEvent.input_required("How many nights?", reply="nights", choices=[1, 2, 3])

    @workflow.on("city")
    @workflow.on("nights")
    async def echo(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent(f"got_{event.name}", event.data)

    run_ = workflow.start(WorkflowEvent("form"))
    [event async for event in run_.until_waiting()]
    city, nights = run_.pending
    await run_.answer(nights, 2)
    assert run_.pending == [city] and run_.waiting
    await run_.answer(city, "Lyon")
    rest = [(e.name, e.data) async for e in run_]
    assert rest == [
        ("nights", {"value": 2}),
        ("city", {"value": "Lyon"}),
        ("got_nights", {"value": 2}),
        ("got_city", {"value": "Lyon"}),
    ]


async def test_an_answer_sent_while_the_asking_handler_still_runs_is_emitted_after_it() -> None:
    workflow = WorkflowManager()
    done: list[str] = []

    @workflow.on("start")
    async def ask_then_work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.input_required("Go on?", reply="go")
        await asyncio.sleep(0.02)
        done.append("worked")
        yield WorkflowEvent("worked")

    @workflow.on("go")
    async def went(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("went", {"after": list(done)})

    run_ = workflow.start(WorkflowEvent("start"))
    seen = []
    async for event in run_:
        seen.append((event.name, event.data if event.name == "went" else None))
        if event.is_request:
            await run_.answer(event, "yes")  # the handler is paused at its yield
    assert seen == [
        ("start", None),
        ("input_required", None),
        ("worked", None),
        ("go", None),
        ("went", {"after": ["worked"]}),
    ]


async def test_process_never_waits_a_request_left_open_ends_the_run_with_an_error() -> None:
    events = [event async for event in helpdesk().process(WorkflowEvent("ticket"))]
    assert [e.name for e in events] == ["ticket", "input_required", "error"]
    assert events[-1].data is not None and events[-1].data["reason"] == "left_open"
    assert "a request was left open: 'Book an engineer?'" in (events[-1].error or "")
    assert "await baxiflow.run(...)" in (events[-1].error or "")


async def test_a_flow_that_never_asks_runs_the_same_through_process_and_start() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def hello(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("hello", "saying it")
        yield WorkflowEvent("done")

    started = workflow.start(WorkflowEvent("start"))
    assert await names(workflow.process(WorkflowEvent("start"))) == await names(started)
    assert isinstance(started, WorkflowRun) and not started.waiting


async def test_a_malformed_or_duplicate_request_is_the_handlers_failure() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def ask_twice(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.input_required("First?", reply="answer")
        yield WorkflowEvent.input_required("Second?", reply="answer")

    @workflow.on("other")
    async def by_hand(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("input_required", {"prompt": "no reply"})

    run_ = workflow.start(WorkflowEvent("start"))
    seqs: list[int] = []
    view = ProgressView(display=False)
    run_ = workflow.start(WorkflowEvent("start"), observers=[view, lambda e: seqs.append(e.seq)])
    events = [event async for event in run_.until_waiting()]
    assert [e.name for e in events] == ["start", "input_required", "error"]
    assert "a request answered by 'answer' is already open" in (events[-1].error or "")
    assert seqs == [0, 1, 2]  # the refused request took no number
    assert [r.data["prompt"] for r in run_.pending if r.data] == ["First?"]
    await run_.aclose()
    failed = [e async for e in workflow.process(WorkflowEvent("other"))]
    assert "a request's reply must be a non-empty event name" in (failed[-1].error or "")
    with pytest.raises(ValueError, match="cannot set reply"):
        WorkflowEvent.input_required("?", reply="a", data={"reply": "b"})


def test_run_sync_answers_on_standard_input_and_asks_again_after_a_bad_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("maybe\napprove\n"))
    result = run_sync(helpdesk(), WorkflowEvent("ticket"), view=False, input="stdin")
    assert (result.status, result.final.name) == ("ok", "booked")
    out = capsys.readouterr().out
    assert out.count("Book an engineer? (approve / reject): ") == 2
    assert "'maybe' is not a choice" in out


def test_run_sync_without_input_ends_a_request_with_an_error_pointing_to_await_run() -> None:
    result = run_sync(helpdesk(), WorkflowEvent("ticket"), view=False)
    assert result.status == "error"
    assert "`await baxiflow.run(...)`" in (result.final.error or "")


async def test_run_takes_answers_from_code_and_the_panel_shows_the_request_until_answered() -> None:
    view = ProgressView(display=False, interval=0)
    shown: list[str] = []

    async def approve(request: WorkflowEvent) -> str:
        await asyncio.sleep(0.01)
        panel = view.panels[0]
        shown.append(str(panel))
        shown.append(",".join(b.description for b in panel.requests[0].buttons))
        return "approve"

    result = await run(helpdesk(), WorkflowEvent("ticket"), view=view, input=approve)
    assert (result.status, result.final.name) == ("ok", "booked")
    assert "  asks: Book an engineer? (approve / reject)" in shown[0]
    assert shown[1] == "approve,reject"
    assert view.panels[0].requests == [] and "asks:" not in str(view.panels[0])


async def test_clicking_a_choice_in_the_panel_answers_the_run() -> None:
    view = ProgressView(display=False, interval=0)
    run_ = helpdesk().start(WorkflowEvent("ticket"), observers=[view])
    [event async for event in run_.until_waiting()]
    panel = view.panels[0]
    assert panel.state.status == "waiting" and panel.run_bar.bar_style == "warning"
    [row] = panel.requests
    row.buttons[1].click()
    assert row.note.value == "answered: reject" and all(b.disabled for b in row.buttons)
    assert await names(run_) == ["approval", "closed"]
    assert panel.requests == [] and panel.run_bar.bar_style == "success"


async def test_a_text_box_answers_a_request_without_choices_and_shows_a_refusal() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def ask(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.input_required("Which city?", reply="city")

    view = ProgressView(display=False, interval=0)
    run_ = workflow.start(WorkflowEvent("start"), observers=[view])
    [event async for event in run_.until_waiting()]
    [row] = view.panels[0].requests
    assert row.text is not None
    row.text.value = "Lyon"
    row.buttons[0].click()
    row.answer("Paris")  # a second answer: the request is no longer open
    assert "not open in this run" in row.note.value
    assert [e.data async for e in run_] == [{"value": "Lyon"}]


# Durable runs -------------------------------------------------------------------------

LEAVE = textwrap.dedent(
    """
    import asyncio, sys
    from baxiflow import WorkflowEvent
    from baxiflow.store import SQLiteStore
    sys.path.insert(0, {tests!r})
    from test_asking import helpdesk

    async def main():
        calls = []
        store = SQLiteStore({path!r})
        run = helpdesk(calls).start(WorkflowEvent("ticket", {{"id": 7}}), store=store, run_id="t-7")
        async for event in run.until_waiting():
            print("saw", event.name, flush=True)
        print("waiting", run.waiting, [r.data["prompt"] for r in run.pending], calls, flush=True)
        {leave}

    asyncio.run(main())
    """
)


def leave_waiting(path: Path, leave: str) -> str:
    code = LEAVE.format(tests=str(ROOT / "tests"), path=str(path), leave=leave)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


@pytest.mark.parametrize(
    "leave",
    ["await run.aclose()", "import os; os._exit(0)"],
    ids=["closed", "process-exited"],
)
async def test_a_waiting_run_is_resumed_from_sqlite_in_a_new_process_with_its_answer(
    tmp_path: Path, leave: str
) -> None:
    path = tmp_path / "runs.db"
    out = leave_waiting(path, leave)
    assert out.splitlines() == [
        "saw ticket",
        "saw input_required",
        "waiting True ['Book an engineer?'] ['triage']",
    ]
    store = SQLiteStore(path)
    try:
        [row] = store.runs()
        assert row["status"] == "waiting"
        assert [e.event.name for e in store.logged("t-7")] == ["ticket", "input_required"]
        calls: list[str] = []
        workflow = helpdesk(calls)
        with pytest.raises(AnswerError, match="not a choice"):
            workflow.resume("t-7", store, answers=[WorkflowEvent("approval", {"value": "?"})])
        assert store.runs()[0]["status"] == "waiting"  # the refusal changed nothing
        resumed = workflow.resume(
            "t-7", store, answers=[WorkflowEvent("approval", {"value": "approve"})]
        )
        assert await names(resumed) == ["approval", "booked"]
        assert calls == ["book"]  # nothing before the answer ran again
        assert store.runs()[0]["status"] == "finished"
        logged = store.logged("t-7")
        assert [(e.seq, e.parent_seq, e.event.name) for e in logged] == [
            (0, None, "ticket"),
            (1, 0, "input_required"),
            (2, None, "approval"),
            (3, 2, "booked"),
        ]
    finally:
        store.close()


async def test_a_resumed_run_that_asks_again_waits_and_its_store_says_waiting(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    workflow = helpdesk()

    @workflow.on("booked")
    async def confirm(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.input_required(
            "Confirm the slot?", reply="slot", choices=["9:00", "14:00"]
        )

    first = workflow.start(WorkflowEvent("ticket"), store=store, run_id="r")
    [e async for e in first.until_waiting()]
    assert store.runs()[0]["status"] == "waiting"
    await first.aclose()
    with pytest.raises(AnswerError, match="no open request takes an answer named 'slot'"):
        workflow.resume("r", store, answers=[WorkflowEvent("slot", {"value": "9:00"})])
    second = workflow.resume("r", store, answers=[WorkflowEvent("approval", {"value": "approve"})])
    assert [e.name async for e in second.until_waiting()] == [
        "approval",
        "booked",
        "input_required",
    ]
    assert store.runs()[0]["status"] == "waiting" and second.waiting
    await second.answer(second.pending[0], "14:00")
    assert await names(second) == ["slot"]
    assert store.runs()[0]["status"] == "finished"
    store.close()
