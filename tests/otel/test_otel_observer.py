"""OpenTelemetryObserver: the span tree of a run, its attributes, and a run that never breaks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from baxiflow import (
    EmittedEvent,
    MissingDependencyError,
    ObserverWarning,
    Retry,
    WorkflowEvent,
    WorkflowManager,
)
from baxiflow.otel import OpenTelemetryObserver


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def drain(
    workflow: WorkflowManager, event: WorkflowEvent, **options: Any
) -> list[WorkflowEvent]:
    return [each async for each in workflow.process(event, **options)]


def run_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith("invoke_workflow ")]


def handler_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith("run_handler ")]


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def chain_workflow() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def greet(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greet", "hello", current=1, total=2)
        yield WorkflowEvent("process")

    @workflow.on("process")
    async def process(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("completed")

    return workflow


async def test_a_chain_is_one_run_span_with_a_child_span_per_handler_call(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[EmittedEvent] = []
    workflow = chain_workflow()
    await drain(
        workflow,
        WorkflowEvent("start"),
        observers=[OpenTelemetryObserver(provider), seen.append],
    )
    spans = exporter.get_finished_spans()
    [run] = run_spans(spans)
    greet, process = handler_spans(spans)
    assert len(spans) == 3
    assert run.name == "invoke_workflow start"
    assert run.parent is None
    assert dict(run.attributes or {}) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "start",
        "baxiflow.run_id": seen[0].run.run_id,
        "baxiflow.initial_event": "start",
        "baxiflow.events": 4,
        "baxiflow.errors": 0,
        "baxiflow.status": "ok",
    }
    assert run.status.status_code is StatusCode.UNSET
    assert [parent_id(greet), parent_id(process)] == [span_id(run), span_id(run)]
    assert {trace_id(greet), trace_id(process)} == {trace_id(run)}
    assert greet.name.endswith(".greet")
    assert greet.attributes is not None and process.attributes is not None
    assert greet.attributes["baxiflow.event"] == "start"
    assert greet.attributes["baxiflow.emitted"] == 2
    assert process.attributes["baxiflow.event"] == "process"
    assert process.attributes["baxiflow.event_seq"] == 2
    assert greet.attributes["baxiflow.status"] == "ok"
    assert run.start_time is not None and greet.start_time is not None
    assert run.start_time <= greet.start_time


async def test_progress_events_are_span_events_of_the_call_that_yielded_them(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    await drain(
        chain_workflow(), WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)]
    )
    greet, process = handler_spans(exporter.get_finished_spans())
    [progress] = greet.events
    assert progress.name == "progress"
    assert dict(progress.attributes or {}) == {
        "baxiflow.seq": 1,
        "baxiflow.step": "greet",
        "baxiflow.description": "hello",
        "baxiflow.current": 1,
        "baxiflow.total": 2,
    }
    assert process.events == ()


async def test_progress_events_can_be_switched_off(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = OpenTelemetryObserver(provider, progress_events=False)
    await drain(chain_workflow(), WorkflowEvent("start"), observers=[observer])
    assert all(span.events == () for span in exporter.get_finished_spans())


async def test_a_progress_event_outside_any_handler_goes_on_the_run_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = OpenTelemetryObserver(provider)
    await drain(WorkflowManager(), WorkflowEvent.progress("s", "d"), observers=[observer])
    [run] = exporter.get_finished_spans()
    assert run.name == "invoke_workflow progress"
    assert [event.name for event in run.events] == ["progress"]


async def test_a_fan_out_gives_sibling_spans_under_the_run_in_order(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager()

    async def split(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for index in range(3):
            yield WorkflowEvent("part", {"index": index})

    async def first(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    async def second(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    workflow.register("start", split).register("part", first).register("part", second)
    await drain(workflow, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)])
    spans = exporter.get_finished_spans()
    [run] = run_spans(spans)
    calls = handler_spans(spans)
    assert [span.name.rsplit(".", 1)[-1] for span in calls] == ["split"] + ["first", "second"] * 3
    assert {parent_id(span) for span in calls} == {span_id(run)}
    assert [span.attributes["baxiflow.position"] for span in calls if span.attributes] == [0] + [
        0,
        1,
    ] * 3
    assert calls[0].attributes is not None and calls[0].attributes["baxiflow.emitted"] == 3
    assert run.attributes is not None and run.attributes["baxiflow.events"] == 1 + 3 + 6


async def test_a_failing_handler_marks_its_span_and_the_run_as_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fail(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("partial")
        raise ValueError("bad input")

    @workflow.on("error")
    async def recover(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("recovered")

    await drain(workflow, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)])
    spans = exporter.get_finished_spans()
    [run] = run_spans(spans)
    failed, recovered = handler_spans(spans)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "bad input"
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "ValueError"
    assert failed.attributes["baxiflow.status"] == "error"
    assert failed.attributes["baxiflow.emitted"] == 1
    assert recovered.status.status_code is StatusCode.UNSET
    assert recovered.attributes is not None and "error.type" not in recovered.attributes
    assert parent_id(recovered) == span_id(run)
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None
    assert run.attributes["error.type"] == "ValueError"
    assert run.attributes["baxiflow.errors"] == 1
    assert run.attributes["baxiflow.status"] == "error"
    assert failed.end_time is not None and recovered.start_time is not None
    assert failed.end_time <= recovered.start_time


async def test_a_handler_that_yields_a_non_event_fails_with_a_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def wrong(event: WorkflowEvent) -> AsyncIterator[Any]:
        yield "not an event"

    await drain(workflow, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)])
    [wrong_span] = handler_spans(exporter.get_finished_spans())
    assert wrong_span.status.status_code is StatusCode.ERROR
    assert wrong_span.attributes is not None
    assert wrong_span.attributes["error.type"] not in ("", None)


async def test_a_handler_timeout_marks_the_call_and_the_run_as_timed_out(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager(handler_timeout=0.05)

    @workflow.on("start")
    async def slow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(10)
        yield WorkflowEvent("never")

    events = await drain(
        workflow, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)]
    )
    assert events[-1].data is not None and events[-1].data["reason"] == "handler_timeout"
    spans = exporter.get_finished_spans()
    [run] = run_spans(spans)
    [slow_span] = handler_spans(spans)
    assert slow_span.status.status_code is StatusCode.ERROR
    assert slow_span.attributes is not None
    assert slow_span.attributes["error.type"] == "timeout"
    assert slow_span.attributes["baxiflow.status"] == "timeout"
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None
    assert run.attributes["baxiflow.status"] == "timeout"
    assert run.attributes["error.type"] == "handler_timeout"


async def test_max_events_marks_the_run_as_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager(max_events=5)

    @workflow.on("loop")
    async def again(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("loop")

    await drain(workflow, WorkflowEvent("loop"), observers=[OpenTelemetryObserver(provider)])
    [run] = run_spans(exporter.get_finished_spans())
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["error.type"] == "max_events"


async def test_concurrent_runs_never_mix_parents(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager(observers=[OpenTelemetryObserver(provider)])

    @workflow.on("start")
    async def step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        assert event.data is not None
        for index in range(5):
            await asyncio.sleep(0)
            yield WorkflowEvent.progress("step", f"{event.data['who']} {index}")
            yield WorkflowEvent("next", event.data)

    @workflow.on("next")
    async def follow(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0)
        yield WorkflowEvent("done", event.data)

    await asyncio.gather(
        *(drain(workflow, WorkflowEvent("start", {"who": who})) for who in ("a", "b", "c"))
    )
    spans = exporter.get_finished_spans()
    runs = {
        span.attributes["baxiflow.run_id"]: span for span in run_spans(spans) if span.attributes
    }
    assert len(runs) == 3
    assert len({trace_id(span) for span in runs.values()}) == 3
    by_run: dict[int, list[ReadableSpan]] = {span_id(run): [] for run in runs.values()}
    for call in handler_spans(spans):
        assert parent_id(call) in by_run
        by_run[parent_id(call)].append(call)  # type: ignore[index]
    for run in runs.values():
        calls = by_run[span_id(run)]
        assert len(calls) == 6
        assert {trace_id(call) for call in calls} == {trace_id(run)}
        [stepping] = [call for call in calls if call.name.endswith(".step")]
        descriptions = {
            str(event.attributes["baxiflow.description"])[0]
            for event in stepping.events
            if event.attributes
        }
        assert len(descriptions) == 1


async def test_a_run_inside_the_callers_span_nests_under_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    workflow = chain_workflow().observe(OpenTelemetryObserver(provider))

    async def request(label: str) -> None:
        with tracer.start_as_current_span(f"request {label}"):
            await drain(workflow, WorkflowEvent("start"))

    await asyncio.gather(request("a"), request("b"))
    spans = exporter.get_finished_spans()
    callers = {span.name: span for span in spans if span.name.startswith("request ")}
    runs = run_spans(spans)
    assert sorted(parent_id(run) for run in runs) == sorted(  # type: ignore[type-var]
        span_id(caller) for caller in callers.values()
    )
    for run in runs:
        assert trace_id(run) in {trace_id(caller) for caller in callers.values()}
        calls = [span for span in handler_spans(spans) if parent_id(span) == span_id(run)]
        assert len(calls) == 2


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector unreachable")


async def test_an_exporter_that_raises_never_breaks_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RaisingExporter()))
    observer = OpenTelemetryObserver(provider)
    plain = await drain(chain_workflow(), WorkflowEvent("start"))
    with caplog.at_level(logging.ERROR):
        observed = await drain(chain_workflow(), WorkflowEvent("start"), observers=[observer])
    assert observed == plain
    assert "collector unreachable" in caplog.text
    assert observer._runs == {}


class RaisingProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor broke")


async def test_a_span_processor_that_raises_is_warned_about_once_and_the_run_goes_on() -> None:
    provider = TracerProvider()
    provider.add_span_processor(RaisingProcessor())
    observer = OpenTelemetryObserver(provider)
    plain = await drain(chain_workflow(), WorkflowEvent("start"))
    with pytest.warns(ObserverWarning, match="processor broke") as warned:
        observed = await drain(chain_workflow(), WorkflowEvent("start"), observers=[observer])
    assert observed == plain
    assert len(warned) == 1
    assert observer._runs == {}


async def test_stopping_early_ends_every_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = chain_workflow().observe(OpenTelemetryObserver(provider))
    async with contextlib.aclosing(workflow.process(WorkflowEvent("start"))) as stream:
        async for event in stream:
            if event.name == "progress":
                break
    spans = exporter.get_finished_spans()
    [run] = run_spans(spans)
    [greet] = handler_spans(spans)
    assert run.attributes is not None and run.attributes["baxiflow.status"] == "stopped"
    assert run.status.status_code is StatusCode.UNSET
    assert greet.attributes is not None and greet.attributes["baxiflow.status"] == "cancelled"


async def test_the_workflow_name_comes_from_the_observer_then_the_manager(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    named = WorkflowManager(name="support_pipeline")
    await drain(named, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)])
    await drain(
        named, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider, name="chosen")]
    )
    assert [span.name for span in exporter.get_finished_spans()] == [
        "invoke_workflow support_pipeline",
        "invoke_workflow chosen",
    ]


async def test_the_default_no_op_tracer_records_nothing_and_breaks_nothing() -> None:
    observer = OpenTelemetryObserver()
    plain = await drain(chain_workflow(), WorkflowEvent("start"))
    assert await drain(chain_workflow(), WorkflowEvent("start"), observers=[observer]) == plain
    assert observer._runs == {}


def test_a_missing_opentelemetry_names_the_otel_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(MissingDependencyError, match=r"opentelemetry-api.*baxiflow\[otel\]"):
        OpenTelemetryObserver()


def test_importing_baxiflow_otel_does_not_import_opentelemetry() -> None:
    code = "import sys, baxiflow, baxiflow.otel\nprint('opentelemetry' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


async def test_each_attempt_of_a_retried_call_is_a_span_the_retried_ones_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowManager()
    failures = iter([ConnectionError("busy"), ConnectionError("still busy")])

    @workflow.on("start", retry=Retry(attempts=3, backoff=0, on=ConnectionError))
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        if (failure := next(failures, None)) is not None:
            raise failure
        yield WorkflowEvent("fetched")

    await drain(workflow, WorkflowEvent("start"), observers=[OpenTelemetryObserver(provider)])
    spans = handler_spans(exporter.get_finished_spans())
    assert [
        (s.attributes["baxiflow.attempt"], s.attributes["baxiflow.status"], s.status.status_code,
         s.attributes.get("error.type"), s.status.description)
        for s in spans if s.attributes
    ] == [
        (1, "retried", StatusCode.ERROR, "retried", "busy"),
        (2, "retried", StatusCode.ERROR, "retried", "still busy"),
        (3, "ok", StatusCode.UNSET, None, None),
    ]  # fmt: skip
