"""Static inference reads the events a handler emits from literal names in its source."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import baxiflow
from baxiflow import WorkflowEvent
from baxiflow import WorkflowEvent as Ev
from baxiflow.diagrams import Inference, infer_emits


async def route(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    yield WorkflowEvent.progress("route", "choosing a branch")
    kind = (event.data or {}).get("kind")
    if kind == "search":
        yield WorkflowEvent("search_requested", data={"q": 1})
    elif kind == "chat":
        yield WorkflowEvent(name="chat_requested", metadata=event.metadata)
    else:
        yield baxiflow.WorkflowEvent("fallback" if kind else "clarify")
    try:
        pass
    except Exception as exc:
        yield WorkflowEvent.from_exception(exc)


def test_inference_finds_every_branch_of_a_handler_and_leaves_out_progress() -> None:
    assert infer_emits(route) == Inference(
        ("chat_requested", "clarify", "error", "fallback", "search_requested"), complete=True
    )


def test_inference_reports_failure_events_as_error() -> None:
    async def guard(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.failure("not allowed")

    assert infer_emits(guard) == Inference(("error",), complete=True)


def test_inference_is_incomplete_when_a_name_is_computed_or_an_event_passes_through() -> None:
    async def computed(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("known")
        yield WorkflowEvent(f"{event.name}_done")

    async def passthrough(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield event

    assert infer_emits(computed) == Inference(("known",), complete=False)
    assert infer_emits(passthrough) == Inference((), complete=False)


def test_inference_follows_import_aliases_and_ignores_other_classes_of_the_same_name() -> None:
    class Note:
        def __init__(self, name: str) -> None:
            self.name = name

    def make() -> Callable[[WorkflowEvent], AsyncIterator[WorkflowEvent]]:
        WorkflowEvent = Note  # a different class that only shares the name

        async def handler(event: Any) -> AsyncIterator[Any]:
            WorkflowEvent("not_an_event")
            yield Ev("aliased")

        return handler

    assert infer_emits(make()) == Inference(("aliased",), complete=True)


def test_inference_reads_through_partials_decorators_and_callable_objects() -> None:
    async def with_option(event: WorkflowEvent, *, loud: bool) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("shouted" if loud else "said")

    def logged(function: Any) -> Any:
        @functools.wraps(function)
        async def wrapper(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            async for item in function(event):
                yield item

        return wrapper

    @logged
    async def decorated(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("logged")

    class Searcher:
        async def __call__(self, event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent("searched")

    assert infer_emits(functools.partial(with_option, loud=True)) == Inference(
        ("said", "shouted"), complete=True
    )
    assert infer_emits(decorated) == Inference(("logged",), complete=True)
    assert infer_emits(Searcher()) == Inference(("searched",), complete=True)


def test_inference_ignores_decorator_arguments() -> None:
    def tag(_: object) -> Callable[[Any], Any]:
        return lambda function: function

    @tag(WorkflowEvent("decoration"))
    async def handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("real")

    assert infer_emits(handler) == Inference(("real",), complete=True)


def test_inference_gives_none_when_the_source_cannot_be_read() -> None:
    namespace: dict[str, Any] = {"WorkflowEvent": WorkflowEvent}
    exec(
        compile("async def hidden(event):\n    yield WorkflowEvent('x')\n", "<generated>", "exec"),
        namespace,
    )
    assert infer_emits(namespace["hidden"]) is None
