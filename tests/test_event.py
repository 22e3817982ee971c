"""WorkflowEvent constructors check what they are given."""

from __future__ import annotations

import math
from typing import Any

import pytest

from baxiflow import WorkflowEvent


def test_progress_with_a_fraction_carries_current_and_total() -> None:
    event = WorkflowEvent.progress("load", "2 of 4", current=2, total=4, metadata={"s": 1})
    assert (event.name, event.data, event.metadata) == (
        "progress",
        {"step": "load", "description": "2 of 4", "current": 2, "total": 4},
        {"s": 1},
    )
    assert event.is_progress and not event.is_error


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"current": math.nan, "total": 4}, ValueError, "current must be a finite number >= 0"),
        ({"current": -1, "total": 4}, ValueError, "current must be a finite number >= 0"),
        ({"current": 1, "total": 0}, ValueError, "total must be a finite number > 0"),
        ({"current": 1, "total": math.inf}, ValueError, "total must be a finite number > 0"),
        ({"current": "1", "total": 4}, TypeError, "current must be a number, got str"),
        ({"current": True, "total": 4}, TypeError, "current must be a number, got bool"),
    ],
)
def test_progress_rejects_amounts_a_bar_cannot_show(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        WorkflowEvent.progress("load", "loading", **kwargs)


def test_progress_rejects_a_missing_step_or_a_non_text_description() -> None:
    with pytest.raises(ValueError, match="step must be a non-empty string"):
        WorkflowEvent.progress("", "loading")
    with pytest.raises(TypeError, match="description must be a string, got NoneType"):
        WorkflowEvent.progress("load", None)  # type: ignore[arg-type]


def test_failure_and_from_exception_make_error_events() -> None:
    failure = WorkflowEvent.failure("down", data={"tool": "calendar"}, metadata={"s": 1})
    assert (failure.name, failure.error, failure.data, failure.is_error) == (
        "error",
        "down",
        {"tool": "calendar"},
        True,
    )
    from_exc = WorkflowEvent.from_exception(KeyError("query"), metadata={"s": 2})
    assert (from_exc.error, from_exc.data, from_exc.metadata) == (
        "'query'",
        {"type": "KeyError", "traceback": "KeyError: 'query'\n"},
        {"s": 2},
    )
