"""The observer that turns runs and handler calls into OpenTelemetry spans."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from baxiflow._optional import import_optional
from baxiflow.event import ERROR, PROGRESS
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, WorkflowObserver

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["OpenTelemetryObserver"]

OTHER_ERROR = "_OTHER"
"""``error.type`` when an error names no type (the conventions' fallback value)."""

_PROGRESS_KEYS = ("step", "description", "current", "total")
_PRIMITIVE = (str, bool, int, float)


class _CallSpan:
    """The span of one handler call, and what is known of how it failed."""

    __slots__ = ("end_ns", "error", "error_type", "handler_name", "span", "trigger_seq")

    def __init__(self, span: Span, handler_name: str, trigger_seq: int) -> None:
        self.span = span
        self.handler_name = handler_name
        self.trigger_seq = trigger_seq
        # Set when the call failed or timed out: its message, then the error's type.
        self.error: str | None = None
        self.error_type: str | None = None
        self.end_ns: int | None = None


class _RunSpans:
    """The spans of one run: its own, its context for children, and its open calls."""

    __slots__ = ("calls", "context", "error_type", "failed", "span")

    def __init__(self, span: Span, context: Context) -> None:
        self.span = span
        self.context = context
        self.calls: dict[HandlerCall, _CallSpan] = {}
        # Failed calls wait for their error event, which names the exception's type.
        self.failed: list[_CallSpan] = []
        self.error_type: str | None = None


class OpenTelemetryObserver(WorkflowObserver):
    """Export every run as an OpenTelemetry trace: a span per run, a child per handler call.

    The run span follows the OpenTelemetry GenAI conventions for a workflow invocation: it is
    named ``invoke_workflow <name>``, has kind ``INTERNAL`` and carries
    ``gen_ai.operation.name = "invoke_workflow"`` and ``gen_ai.workflow.name``, plus
    baxiflow's own ``baxiflow.run_id``, ``baxiflow.initial_event``, ``baxiflow.events``,
    ``baxiflow.errors`` and ``baxiflow.status``. Its status is ``ERROR`` when the run's status is
    ``error``, ``max_events`` or ``timeout``, with ``error.type`` set to the exception type of
    the last error event (or the guard's reason, ``max_events``, ``timeout`` or
    ``handler_timeout``; ``_OTHER`` when an error event names none).

    Each handler call is a child span ``run_handler <handler>`` with ``baxiflow.handler``,
    ``baxiflow.event`` (the event it handled), ``baxiflow.event_seq``, ``baxiflow.position``,
    ``baxiflow.attempt``, ``baxiflow.emitted`` (events it yielded) and ``baxiflow.status``; a call that raised has
    status ``ERROR`` and ``error.type`` set to the exception's type name, one that timed out
    ``error.type = "timeout"``. Each attempt of a retried call is a span of its own
    (``baxiflow.attempt``); one that failed and was followed by another has status ``ERROR``,
    ``baxiflow.status = "retried"`` and ``error.type = "retried"``. Progress events become span events named ``progress`` on the
    span of the call that yielded them (``progress_events=False`` leaves them out).

    A run started inside an active span (``with tracer.start_as_current_span(...)``) nests
    under it; handler spans are parented explicitly, so concurrent runs never mix.
    Exporting is the SDK's business: an exporter that raises is logged by its span processor
    and never breaks the run.

    Args:
        tracer_provider: Where spans go; ``None`` for the global provider (which, until an SDK
            is configured, is OpenTelemetry's no-op).
        name: The workflow's name in span names and ``gen_ai.workflow.name``; by default
            the manager's ``name`` if it has one, else the initial event's name.
        progress_events: Record progress events as span events.

    Raises:
        MissingDependencyError: ``opentelemetry-api`` is not installed (the ``otel`` extra).

    >>> import asyncio
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> from baxiflow import WorkflowEvent, WorkflowManager
    >>> from baxiflow.otel import OpenTelemetryObserver
    >>> exporter = InMemorySpanExporter()
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> async def greet(event):
    ...     yield WorkflowEvent.progress("greet", "saying hello")
    ...     yield WorkflowEvent("done")
    >>> workflow = WorkflowManager().register("start", greet)
    >>> workflow.observe(OpenTelemetryObserver(provider, name="hello"))
    <WorkflowManager handlers={'start': 1}>
    >>> async def main():
    ...     async for _ in workflow.process(WorkflowEvent("start")):
    ...         pass
    >>> asyncio.run(main())
    >>> [span.name for span in exporter.get_finished_spans()]
    ['run_handler greet', 'invoke_workflow hello']
    >>> handler_span, run_span = exporter.get_finished_spans()
    >>> handler_span.parent.span_id == run_span.context.span_id
    True
    >>> run_span.attributes["gen_ai.operation.name"], run_span.attributes["baxiflow.events"]
    ('invoke_workflow', 3)
    >>> [(e.name, e.attributes["baxiflow.step"]) for e in handler_span.events]
    [('progress', 'greet')]
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        name: str | None = None,
        progress_events: bool = True,
    ) -> None:
        trace = import_optional(
            "opentelemetry.trace",
            feature="OpenTelemetryObserver",
            package="opentelemetry-api",
            extra="otel",
        )
        self._trace = trace
        self._tracer: Tracer = trace.get_tracer("baxiflow", tracer_provider=tracer_provider)
        self._internal = trace.SpanKind.INTERNAL
        self._error_code = trace.StatusCode.ERROR
        self._status = trace.Status
        self.name = name
        self.progress_events = progress_events
        self._runs: dict[str, _RunSpans] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetryObserver(name={self.name!r}, progress_events={self.progress_events})"

    def workflow_name(self, run: RunInfo) -> str:
        """The name this observer gives ``run``'s workflow (see the class docstring)."""
        if self.name is not None:
            return self.name
        return run.workflow_name or run.initial_event.name

    def run_started(self, run: RunInfo) -> None:
        name = self.workflow_name(run)
        # No context given: the caller's current one, so a run inside an active span nests.
        span = self._tracer.start_span(
            f"invoke_workflow {name}",
            kind=self._internal,
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": name,
                "baxiflow.run_id": run.run_id,
                "baxiflow.initial_event": run.initial_event.name,
            },
        )
        if not span.is_recording():
            # A no-op tracer, or a run the sampler dropped: its children would be dropped too.
            span.end()
            return
        self._runs[run.run_id] = _RunSpans(span, self._trace.set_span_in_context(span))

    def handler_started(self, call: HandlerCall) -> None:
        spans = self._runs.get(call.run.run_id)
        if spans is None:
            return
        if spans.failed:
            self._end_failed(spans)
        span = self._tracer.start_span(
            f"run_handler {call.handler_name}",
            context=spans.context,
            kind=self._internal,
            attributes={
                "baxiflow.handler": call.handler_name,
                "baxiflow.event": call.trigger.name,
                "baxiflow.event_seq": call.trigger_seq,
                "baxiflow.position": call.position,
                "baxiflow.attempt": call.attempt,
            },
        )
        spans.calls[call] = _CallSpan(span, call.handler_name, call.trigger_seq)

    def event_emitted(self, emitted: EmittedEvent) -> None:
        spans = self._runs.get(emitted.run.run_id)
        if spans is None:
            return
        event = emitted.event
        name = event.name
        if name == PROGRESS:
            if self.progress_events:
                self._add_progress(spans, emitted)
            return
        if name == ERROR:
            self._note_error(spans, emitted)
        if spans.failed:
            self._end_failed(spans)

    def handler_finished(self, call: HandlerCall) -> None:
        spans = self._runs.get(call.run.run_id)
        if spans is None:
            return
        state = spans.calls.pop(call, None)
        if state is None:
            return
        span = state.span
        status = call.status
        if span.is_recording():
            span.set_attribute("baxiflow.emitted", call.emitted)
            span.set_attribute("baxiflow.status", status)
        if status in ("timeout", "retried"):
            # A retried attempt emits no error event: its span ends now, and says why.
            state.error = call.error or status
            state.error_type = status
        elif status == "error":
            state.error = call.error or "error"
            if state.error_type is None:
                # The error event that names the exception's type comes right after.
                state.end_ns = time.time_ns()
                spans.failed.append(state)
                return
        self._end_call(state)

    def run_finished(self, run: RunInfo) -> None:
        spans = self._runs.pop(run.run_id, None)
        if spans is None:
            return
        leftover = [*spans.failed, *spans.calls.values()]
        spans.failed.clear()
        spans.calls.clear()
        for state in leftover:
            self._end_call(state)
        span = spans.span
        if span.is_recording():
            span.set_attribute("baxiflow.events", run.events)
            span.set_attribute("baxiflow.errors", run.errors)
            span.set_attribute("baxiflow.status", run.status)
            if run.status in ("error", "max_events", "timeout"):
                error_type = run.status if run.status == "max_events" else spans.error_type
                span.set_attribute("error.type", error_type or OTHER_ERROR)
                span.set_status(self._status(self._error_code, f"run ended with {run.status}"))
        span.end()

    def _add_progress(self, spans: _RunSpans, emitted: EmittedEvent) -> None:
        state = None if emitted.call is None else spans.calls.get(emitted.call)
        span = spans.span if state is None else state.span
        if not span.is_recording():
            return
        data = emitted.event.data or {}
        attributes: dict[str, Any] = {"baxiflow.seq": emitted.seq}
        for key in _PROGRESS_KEYS:
            value = data.get(key)
            if value is not None:
                attributes[f"baxiflow.{key}"] = (
                    value if isinstance(value, _PRIMITIVE) else repr(value)
                )
        span.add_event("progress", attributes)

    def _note_error(self, spans: _RunSpans, emitted: EmittedEvent) -> None:
        data = emitted.event.data or {}
        error_type = data.get("type") or data.get("reason")
        error_type = error_type if isinstance(error_type, str) and error_type else OTHER_ERROR
        spans.error_type = error_type
        # The call that failed: one already finished waiting for this event, or one still open.
        for state in [*spans.failed, *spans.calls.values()]:
            if (
                state.error_type is None
                and state.handler_name == emitted.handler_name
                and state.trigger_seq == emitted.parent_seq
            ):
                state.error_type = error_type
                break

    def _end_failed(self, spans: _RunSpans) -> None:
        failed = spans.failed[:]
        spans.failed.clear()
        for state in failed:
            self._end_call(state)

    def _end_call(self, state: _CallSpan) -> None:
        span = state.span
        if state.error is not None:
            span.set_attribute("error.type", state.error_type or OTHER_ERROR)
            span.set_status(self._status(self._error_code, state.error))
        span.end(end_time=state.end_ns)
