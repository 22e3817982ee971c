"""Validation finds unreachable handlers, terminal events and cycles, each check switchable."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.diagrams import Finding, validate
from baxiflow.exceptions import EventNameError


async def step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    yield event


def healthy() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def classify(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("search" if event.data else "clarify")

    @workflow.on("search", emits=["answered"])
    async def search(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("answered")

    @workflow.on("error", emits=[])
    async def report(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("report", "logging the error")

    return workflow


def test_the_start_event_must_be_an_event_name() -> None:
    with pytest.raises(EventNameError, match="non-empty string, got 3"):
        validate(WorkflowManager(), start=3)  # type: ignore[arg-type]


def test_a_healthy_registry_is_ok_and_lists_its_terminal_events_as_notes() -> None:
    report = validate(healthy())

    assert report.ok
    assert report.unreachable_handlers == ()
    assert report.terminal_events == ("answered", "clarify")
    assert report.cycles == ()
    assert str(report) == (
        "Validation from 'start' of 3 handlers: 2 notes\n"
        "  info     terminal     answered: emitted, but no handler serves it (the flow ends there)\n"
        "  info     terminal     clarify: emitted, but no handler serves it (the flow ends there)"
    )


def test_error_handlers_count_as_reached_because_any_handler_may_raise() -> None:
    assert ("error", "healthy.<locals>.report") not in validate(healthy()).unreachable_handlers


def test_a_broken_registry_reports_unreachable_handlers_and_cycles() -> None:
    workflow = healthy()
    workflow.register("never_emitted", step, emits=["answered"])
    workflow.register("answered", step, emits=["review"])
    workflow.register("review", step, emits=["answered", "search"])

    report = validate(workflow)

    assert not report.ok
    assert report.unreachable_handlers == (("never_emitted", "step"),)
    assert report.cycles == (("answered", "review", "answered"),)
    assert report.findings[0] == Finding(
        "unreachable",
        "error",
        "step (handles 'never_emitted')",
        "no path from 'start' reaches it",
    )
    assert [f.severity for f in report.findings] == ["error", "warning", "info"]


def test_a_missing_start_handler_is_an_error_that_lists_the_served_events() -> None:
    report = validate(healthy(), start="begin")

    assert not report.ok
    assert report.findings[0] == Finding(
        "unreachable",
        "error",
        "begin",
        "no handler serves the start event (served: 'error', 'search', 'start')",
    )


def test_unreachable_is_only_a_warning_when_a_reached_handler_may_emit_unnamed_events() -> None:
    workflow = WorkflowManager().register("start", step).register("later", step, emits=[])

    report = validate(workflow)

    assert report.ok
    assert report.findings == (
        Finding(
            "unreachable",
            "warning",
            "step (handles 'later')",
            "no path from 'start' reaches it; but step may emit events not declared "
            "or named in its source",
        ),
    )


def test_a_handler_that_emits_its_own_event_is_a_cycle_of_one() -> None:
    workflow = WorkflowManager().register("start", step, emits=["start", "done"])

    assert validate(workflow).cycles == (("start", "start"),)


def test_each_check_can_be_switched_off() -> None:
    workflow = healthy()
    workflow.register("orphan", step, emits=["orphan"])

    report = validate(workflow, unreachable=False, terminal=False, cycles=False)

    assert report.findings == ()
    assert report.ok
    assert str(report) == "Validation from 'start' of 4 handlers: no findings"
    assert validate(workflow, terminal=False, cycles=False).unreachable_handlers == (
        ("orphan", "step"),
    )


def test_without_inference_undeclared_handlers_reach_nothing() -> None:
    report = validate(healthy(), infer=False)

    assert report.unreachable_handlers == (("search", "healthy.<locals>.search"),)


def test_the_report_displays_as_an_escaped_html_table_in_jupyter() -> None:
    workflow = healthy()
    workflow.register("<orphan>", step, emits=[])

    page = validate(workflow)._repr_html_()

    assert page.startswith("<table><caption>Validation from &#x27;start&#x27; of 4 handlers")
    assert "<code>step (handles &#x27;&lt;orphan&gt;&#x27;)</code>" in page
    assert page.count("<tr>") == 1 + 3
    assert validate(healthy(), terminal=False)._repr_html_() == (
        "<p>Validation from &#x27;start&#x27; of 3 handlers: no findings</p>"
    )


def test_a_long_chain_closing_into_one_loop_is_found_without_deep_recursion() -> None:
    workflow = WorkflowManager()
    length = 3000
    for index in range(length):
        workflow.register(f"e{index:04d}", step, emits=[f"e{(index + 1) % length:04d}"])

    (loop,) = validate(workflow, start="e0000").cycles

    assert len(loop) == length + 1
    assert loop[0] == loop[-1] == "e0000"


edges = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20)


@given(edges)
def test_every_reported_loop_follows_real_edges_and_an_acyclic_registry_has_none(
    pairs: list[tuple[int, int]],
) -> None:
    targets: dict[int, set[int]] = {}
    for tail, head in pairs:
        targets.setdefault(tail, set()).add(head)
    workflow = WorkflowManager()
    for tail, heads in targets.items():
        workflow.register(f"e{tail}", step, emits=[f"e{h}" for h in sorted(heads)])

    loops = validate(workflow, start="e0").cycles

    for loop in loops:
        assert loop[0] == loop[-1]
        for tail_name, head_name in itertools.pairwise(loop):
            assert int(head_name[1:]) in targets[int(tail_name[1:])]
    if all(head > tail for tail, head in pairs):
        assert loops == ()
    if any(head == tail for tail, head in pairs) or any(
        (head, tail) in pairs for tail, head in pairs
    ):
        assert loops
