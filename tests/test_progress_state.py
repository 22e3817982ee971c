"""The progress state machine, the throttle and the observer base, without any display library."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from baxiflow import Retry, WorkflowEvent, WorkflowManager
from baxiflow.exceptions import ObserverWarning
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo
from baxiflow.progress import ProgressObserver, RunProgress, StepState, Throttle

ELAPSED = re.compile(r"elapsed=\d+(\.\d+)? [µm]?s")


class Recorder(ProgressObserver[list[str]]):
    """Draws into a list per run: one entry per draw, the run's text at that moment."""

    def __init__(self, *, interval: float) -> None:
        super().__init__(interval=interval)
        self.drawn: list[list[str]] = []

    def _open(self, state: RunProgress) -> list[str]:
        self.drawn.append([])
        return self.drawn[-1]

    def _draw(self, panel: list[str], state: RunProgress, changed: list[StepState]) -> None:
        panel.append(state.text())


async def drain(workflow: WorkflowManager, *observers: object, start: str = "start") -> None:
    async for _ in workflow.process(WorkflowEvent(start), observers=observers):  # type: ignore[arg-type]
        pass


async def run_state(workflow: WorkflowManager) -> RunProgress:
    recorder = Recorder(interval=0)
    await drain(workflow, recorder)
    return recorder.states[0]


# Throttle -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_throttle_draws_the_first_call_then_at_most_once_per_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock=clock)
    draws = 0
    for _ in range(10_000):  # one simulated second at 10 kHz
        clock.now += 1e-4
        draws += throttle.due()
    assert 9 <= draws <= 11


def test_throttle_reads_the_clock_far_less_often_than_it_is_called() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock=clock)
    for _ in range(100_000):
        clock.now += 1e-6
        throttle.due()
    assert throttle.calls == 100_000
    assert clock.reads == throttle.clock_reads < 1_000


def test_throttle_reads_the_clock_again_soon_after_calls_slow_down() -> None:
    clock = FakeClock()
    throttle = Throttle(0.1, clock=clock)
    for _ in range(100_000):
        clock.now += 1e-6
        throttle.due()
    clock.now += 1.0
    calls_until_drawn = 1
    while not throttle.due():
        calls_until_drawn += 1
    assert calls_until_drawn <= 256


def test_throttle_with_zero_interval_draws_every_call() -> None:
    throttle = Throttle(0)
    assert all(throttle.due() for _ in range(100))


@pytest.mark.parametrize("interval", [-0.1, "fast", True])
def test_throttle_rejects_an_interval_that_is_not_a_non_negative_number(interval: object) -> None:
    with pytest.raises(ValueError, match="interval must be a number of seconds >= 0"):
        Throttle(interval)  # type: ignore[arg-type]


def test_elapsed_time_reads_in_human_units() -> None:
    state = RunProgress(RunInfo("r-1", WorkflowEvent("start"), 1000.0))
    assert ELAPSED.search(state.text())


# Step and run states --------------------------------------------------------------


async def test_step_with_a_fraction_shows_it_and_is_done_at_its_total() -> None:
    workflow = WorkflowManager()
    seen: list[tuple[str, float | None]] = []

    @workflow.on("start")
    async def download(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("download", "3 of 4 files", current=3, total=4)
        yield WorkflowEvent("checkpoint")
        yield WorkflowEvent.progress("download", "4 of 4 files", current=4, total=4)

    recorder = Recorder(interval=0)

    def look(emitted: object) -> None:
        step = recorder.states[0].steps.get("download") if recorder.states else None
        if step is not None:
            seen.append((step.status, step.fraction))

    await drain(workflow, recorder, look)
    assert seen[:2] == [("active", 0.75), ("active", 0.75)]
    assert seen[-1] == ("done", 1.0)
    step = recorder.states[0].steps["download"]
    assert (step.bar_value, step.bar_style, step.count_text()) == (1.0, "success", "4/4 (100%)")


async def test_step_without_a_fraction_is_active_until_another_step_reports() -> None:
    workflow = WorkflowManager()
    statuses: list[tuple[str, str]] = []
    recorder = Recorder(interval=0)

    @workflow.on("start")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("search", "Searching")
        first = recorder.states[0].steps["search"]
        statuses.append((first.status, first.bar_style))
        yield WorkflowEvent.progress("rank", "Ranking")
        statuses.append((first.status, first.bar_style))

    await drain(workflow, recorder)
    assert statuses == [("active", "info"), ("done", "success")]
    assert recorder.states[0].steps["rank"].status == "done"


async def test_step_without_a_fraction_is_done_when_its_handler_finishes() -> None:
    workflow = WorkflowManager()
    recorder = Recorder(interval=0)
    seen: list[str] = []

    @workflow.on("start")
    async def first(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greet", "Saying hello")

    @workflow.on("start")
    async def second(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        seen.append(recorder.states[0].steps["greet"].status)
        yield WorkflowEvent("done")

    await drain(workflow, recorder)
    assert seen == ["done"]


async def test_error_event_fails_the_steps_of_its_handler_and_turns_the_run_danger() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "page 3", current=3, total=10)
        raise RuntimeError("backend down")

    @workflow.on("start")
    async def report(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("report", "Writing")

    state = await run_state(workflow)
    assert state.status == "error"
    assert state.style == "danger"
    assert state.steps["fetch"].status == "failed"
    assert state.steps["fetch"].bar_style == "danger"
    assert state.steps["report"].status == "done"
    assert state.last_error == "backend down"


async def test_error_event_of_another_handler_leaves_finished_steps_alone() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "Fetching")
        yield WorkflowEvent("fetched")

    @workflow.on("fetched")
    async def parse(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.failure("unparseable page")

    state = await run_state(workflow)
    assert state.steps["fetch"].status == "done"
    assert state.style == "danger"
    assert state.last_error == "unparseable page"


async def test_failed_step_stays_failed_when_it_reports_again() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "page 1", current=1, total=2)
        yield WorkflowEvent.failure("page 1 was empty")
        yield WorkflowEvent.progress("fetch", "page 2", current=2, total=2)

    state = await run_state(workflow)
    step = state.steps["fetch"]
    assert (step.status, step.bar_style, step.description, step.fraction) == (
        "failed",
        "danger",
        "page 2",
        1.0,
    )


def test_danger_is_never_replaced_by_success() -> None:
    run = RunInfo("r1", WorkflowEvent("start"), 0.0, events=1, errors=1)
    failure = WorkflowEvent.failure("flaky backend")
    state = RunProgress(run)
    state.event(EmittedEvent(failure, 0, None, 0, None, 0.5, run, None))
    run.status, run.duration = "ok", 1.0
    state.finish(run)
    assert (state.status, state.style, state.last_error) == ("ok", "danger", "flaky backend")


async def test_stopping_a_run_early_marks_active_steps_stopped_and_the_run_warning() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def crawl(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for page in range(1, 100):
            yield WorkflowEvent.progress("crawl", f"page {page}", current=page, total=99)

    recorder = Recorder(interval=0)
    stream = workflow.process(WorkflowEvent("start"), observers=[recorder])
    async with contextlib.aclosing(stream):
        async for event in stream:
            if event.is_progress and event.data is not None and event.data["current"] == 5:
                break
    state = recorder.states[0]
    assert (state.status, state.style) == ("stopped", "warning")
    assert state.steps["crawl"].status == "stopped"
    assert state.steps["crawl"].bar_style == "warning"


async def test_timeout_fails_the_step_of_the_handler_that_ran_out_of_time() -> None:
    workflow = WorkflowManager(handler_timeout=0.05)

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("slow", "Waiting")
        await asyncio.sleep(10)

    state = await run_state(workflow)
    assert (state.status, state.style) == ("timeout", "danger")
    assert state.steps["slow"].status == "failed"


async def test_progress_event_without_step_or_numbers_shows_under_a_default_step() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def odd(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("progress")
        yield WorkflowEvent(
            "progress", {"step": "count", "description": 7, "current": "three", "total": True}
        )

    state = await run_state(workflow)
    assert list(state.steps) == ["progress", "count"]
    count = state.steps["count"]
    assert (count.description, count.current, count.total, count.fraction) == (
        "7",
        None,
        None,
        None,
    )


async def test_text_is_the_same_for_identical_runs_once_the_elapsed_time_is_masked() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def pipeline(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greet", "Saying hello")
        yield WorkflowEvent.progress("download", "3 of 10 files", current=3, total=10)
        yield WorkflowEvent.failure("disk full")
        yield WorkflowEvent.progress("count", "counted", current=2.5)

    texts = [(await run_state(workflow)).text() for _ in range(2)]
    assert all(ELAPSED.search(text) for text in texts)
    masked = {ELAPSED.sub("elapsed=<t>", text) for text in texts}
    assert masked == {
        "start error: 2 events, 3 progress, 1 error, elapsed=<t>\n"
        "  greet: done - Saying hello\n"
        "  download: failed 3/10 (30%) - 3 of 10 files\n"
        "  count: done 2.5 - counted\n"
        "  last error: disk full"
    }


async def test_changed_steps_come_new_ones_first_in_order_of_appearance() -> None:
    workflow = WorkflowManager()
    recorder = Recorder(interval=3600)
    taken: list[list[str]] = []

    @workflow.on("start")
    async def steps(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("b", "1", current=1, total=2)
        yield WorkflowEvent.progress("a", "1", current=1, total=2)
        yield WorkflowEvent.progress("b", "2", current=2, total=2)
        taken.append([step.name for step in recorder.states[0].take_changed()])

    await drain(workflow, recorder)
    assert taken == [["b", "a"]]


def names(steps: list[StepState | None]) -> list[str | None]:
    return [None if step is None else step.name for step in steps]


def step_snapshot(state: RunProgress) -> list[tuple[object, ...]]:
    return [
        (s.name, s.description, s.current, s.total, s.status, s.updates, s.handler, id(s.call))
        for s in state.steps.values()
    ]


class Step(str, enum.Enum):  # noqa: UP042 (a StrEnum's str() is its value; this one's is not)
    """A step name that equals ``"fetch"`` but names the step ``Step.FETCH``."""

    FETCH = "fetch"


class EagerProgress(RunProgress):
    """The state machine applying every report at once, with no report ever waiting."""

    __slots__ = ()

    def event(self, emitted: EmittedEvent) -> None:
        self.elapsed = emitted.elapsed
        if emitted.event.name == "progress":
            self.progress += 1
            self._progress(emitted.event, emitted)
        elif emitted.event.name == "error":
            self._error(emitted.event, emitted.handler_name)


feed_ops = st.one_of(
    st.tuples(
        st.just("progress"),
        st.sampled_from(["fetch", "parse", "", None, 7, Step.FETCH]),
        st.sampled_from([None, 0, 1, 2.5, 3, -1, "x"]),
        st.sampled_from([None, 0, 3, 10]),
        st.integers(0, 2),
    ),
    st.tuples(st.just("error"), st.sampled_from([None, "h0", "h1"])),
    st.tuples(st.just("event")),
    st.tuples(st.just("finished"), st.integers(0, 2), st.sampled_from(["ok", "error", "timeout"])),
    st.tuples(st.just("read")),
)


@settings(max_examples=500, deadline=None)
@example(  # a handler call ends badly while a report of another call's step waits
    ops=[
        ("progress", "fetch", None, None, 0),
        ("progress", "fetch", 1, None, 1),
        ("finished", 1, "error"),
    ],
    ending="ok",
)
@example(  # two calls at one step: the other call's report of it may not wait
    ops=[
        ("progress", "fetch", None, None, 0),
        ("progress", "fetch", None, None, 1),
        ("progress", "fetch", None, None, 0),
        ("progress", "parse", None, None, 0),
        ("read",),
    ],
    ending="ok",
)
@example(  # an equal str subclass names another step
    ops=[("progress", s, 1, 3, 0) for s in ("fetch", Step.FETCH, "fetch")] + [("read",)],
    ending="ok",
)
@example(  # an error names the handler of the report that waits
    ops=[("progress", "fetch", 1, 3, 0), ("progress", "fetch", 2, 3, 1), ("error", "h1")],
    ending="ok",
)
@given(
    ops=st.lists(feed_ops, max_size=40),
    ending=st.sampled_from(["ok", "error", "stopped", "timeout"]),
)
def test_reports_that_wait_leave_the_state_as_applying_each_at_once_would(
    ops: list[tuple[object, ...]], ending: Any
) -> None:
    # `eager` applies every report at once; `lazy` is the real state, read only
    # at the "read" steps. Both must agree whenever read, and at the end.
    run = RunInfo("r", WorkflowEvent("start"), 0.0)
    calls = [HandlerCall(run, len, f"h{i}", 0, WorkflowEvent("start"), 0, 0.0) for i in range(3)]
    eager, lazy = EagerProgress(run), RunProgress(run)
    for seq, op in enumerate(ops, start=1):
        if op[0] == "read":
            assert step_snapshot(lazy) == step_snapshot(eager)
            assert names(lazy.take_changed()) == names(eager.take_changed())
            assert names([lazy.current]) == names([eager.current])
            continue
        for state in (eager, lazy):
            if op[0] == "finished":
                call = calls[op[1]]  # type: ignore[index]
                call.status = op[2]  # type: ignore[assignment]
                state.handler_finished(call)
                continue
            if op[0] == "progress":
                _, step, current, total, index = op
                data: dict[str, Any] = {"step": step, "description": f"d{seq}"}
                data.update(current=current, total=total)
                event = WorkflowEvent("progress", data)
                call: HandlerCall | None = calls[index]  # type: ignore[index]
            else:
                event = WorkflowEvent("error" if op[0] == "error" else "other", error="boom")
                call = None
            handler = op[1] if op[0] == "error" else (call.handler_name if call else None)
            state.event(EmittedEvent(event, seq, 0, 1, handler, seq / 10, run, call))  # type: ignore[arg-type]
    run.status = ending
    for state in (eager, lazy):
        state.finish(run)
    assert step_snapshot(lazy) == step_snapshot(eager)
    assert names(lazy.take_changed()) == names(eager.take_changed())
    assert (lazy.status, lazy.style, lazy.last_error) == (
        eager.status,
        eager.style,
        eager.last_error,
    )
    assert lazy.text() == eager.text()


# The observer base ------------------------------------------------------------------


async def test_observer_draws_when_due_and_always_draws_the_final_state() -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def busy(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for done in range(1, 1001):
            yield WorkflowEvent.progress("busy", f"{done} done", current=done, total=1000)

    recorder = Recorder(interval=3600)
    await drain(workflow, recorder)
    [panel] = recorder.drawn
    assert len(panel) == 2  # the initial event, then the end
    assert panel[-1].startswith("start ok: ")
    assert "busy: done 1000/1000 (100%) - 1000 done" in panel[-1]


async def test_observer_draws_pending_changes_while_the_run_waits() -> None:
    workflow = WorkflowManager()
    recorder = Recorder(interval=0.02)

    @workflow.on("start")
    async def waits(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("wait", "first")
        yield WorkflowEvent.progress("wait", "second")
        await asyncio.sleep(0.2)
        yield WorkflowEvent("done")

    await drain(workflow, recorder)
    [panel] = recorder.drawn
    assert any(
        text.startswith("start running") and "wait: active - second" in text for text in panel
    )


async def test_observer_that_cannot_draw_warns_once_and_the_run_goes_on() -> None:
    class Broken(Recorder):
        def _draw(self, panel: list[str], state: RunProgress, changed: list[StepState]) -> None:
            raise ConnectionError("front end gone")

    workflow = WorkflowManager()

    @workflow.on("start")
    async def busy(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for done in range(5):
            yield WorkflowEvent.progress("busy", str(done))
        yield WorkflowEvent("done")

    broken = Broken(interval=0)
    with pytest.warns(ObserverWarning, match="front end gone") as caught:
        names = [
            event.name
            async for event in workflow.process(WorkflowEvent("start"), observers=[broken])
        ]
    assert len(caught) == 1
    assert names == ["start", *["progress"] * 5, "done"]
    assert broken.states[0].status == "ok"
    assert repr(broken).startswith("start ok: 2 events, 5 progress")


def test_observer_rejects_a_negative_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        Recorder(interval=-1)


# Handler calls that overlap ------------------------------------------------------


def step_statuses(state: RunProgress) -> dict[str, str]:
    return {name: step.status for name, step in state.steps.items()}


async def test_overlapping_calls_keep_their_steps_active_at_once() -> None:
    workflow = WorkflowManager(concurrency=3)
    recorder = Recorder(interval=0)
    all_reported = asyncio.Barrier(3)
    seen: list[dict[str, str]] = []

    for step in ("search", "fetch", "rank"):

        async def work(event: WorkflowEvent, step: str = step) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent.progress(step, "working")
            await all_reported.wait()
            if step == "rank":
                seen.append(step_statuses(recorder.states[0]))
            await all_reported.wait()

        workflow.register("start", work, sequential=False)

    await drain(workflow, recorder)

    assert seen == [{"search": "active", "fetch": "active", "rank": "active"}]
    assert step_statuses(recorder.states[0]) == {"search": "done", "fetch": "done", "rank": "done"}


async def test_a_call_moving_to_its_next_step_closes_only_its_own() -> None:
    workflow = WorkflowManager(concurrency=2)
    recorder = Recorder(interval=0)
    reported, moved_on = asyncio.Event(), asyncio.Event()
    seen: list[dict[str, str]] = []

    @workflow.on("start", sequential=False)
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("download", "waiting for the server")
        reported.set()
        await moved_on.wait()
        seen.append(step_statuses(recorder.states[0]))

    @workflow.on("start", sequential=False)
    async def quick(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await reported.wait()
        yield WorkflowEvent.progress("parse", "reading")
        yield WorkflowEvent.progress("index", "writing")
        moved_on.set()

    await drain(workflow, recorder)

    assert seen == [{"download": "active", "parse": "done", "index": "active"}]
    assert step_statuses(recorder.states[0]) == {
        "download": "done",
        "parse": "done",
        "index": "done",
    }


async def test_a_step_two_calls_report_stays_active_until_the_last_of_them_ends() -> None:
    workflow = WorkflowManager(concurrency=2)
    recorder = Recorder(interval=0)
    both_reported = asyncio.Barrier(2)
    seen: list[str] = []

    @workflow.on("start", sequential=False)
    async def first(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await both_reported.wait()
        yield WorkflowEvent.progress("retrieve", "index A")
        await both_reported.wait()

    @workflow.on("start", sequential=False)
    async def second(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("retrieve", "index B")
        await both_reported.wait()
        await both_reported.wait()
        await asyncio.sleep(0.01)  # the first call ends meanwhile
        seen.append(recorder.states[0].steps["retrieve"].status)

    await drain(workflow, recorder)

    assert seen == ["active"]
    assert recorder.states[0].steps["retrieve"].status == "done"


async def test_a_step_of_a_call_that_fails_all_its_attempts_stays_failed() -> None:
    workflow = WorkflowManager()

    @workflow.on("start", retry=Retry(attempts=2, backoff=0, on=ConnectionError))
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "trying")
        raise ConnectionError("reset by peer")

    @workflow.on("fetch-failed")
    async def never(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "a step of another handler's call")

    state = await run_state(workflow)

    assert (state.steps["fetch"].status, state.status) == ("failed", "error")
    assert state.steps["fetch"].updates == 2


async def test_a_retried_attempt_leaves_its_step_active_until_the_call_succeeds() -> None:
    workflow = WorkflowManager()
    recorder = Recorder(interval=0)
    step_at_each_attempt: list[str | None] = []

    @workflow.on("start", retry=Retry(attempts=3, backoff=0, on=ConnectionError))
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        step = recorder.states[0].steps.get("fetch") if recorder.states else None
        step_at_each_attempt.append(None if step is None else step.status)
        yield WorkflowEvent.progress("fetch", f"attempt {len(step_at_each_attempt)}")
        if len(step_at_each_attempt) < 3:
            raise ConnectionError("backend busy")

    await drain(workflow, recorder)
    state = recorder.states[0]
    # Between attempts the step stays active: the call goes on.
    assert step_at_each_attempt == [None, "active", "active"]
    assert (state.status, state.style, state.last_error) == ("ok", "success", None)
    assert state.steps["fetch"].status == "done"
