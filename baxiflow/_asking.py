"""Requests for input: which are open, what answers one, and what a log or a display reads back.

A handler asks by yielding :meth:`WorkflowEvent.input_required
<baxiflow.event.WorkflowEvent.input_required>`; the request stays open until an event named
its ``reply`` is sent to the run from outside (``run.send`` / ``run.answer``), or until the
run gives it up (nothing can answer it, or ``wait_timeout`` passed), which it reports with
one error event. The open requests of a run have distinct reply names, so an answer names
the request it answers. Each rule is written here once: the run loop applies them as the
run goes, a durable log and a progress display replay them over the emitted events.

>>> from baxiflow.event import WorkflowEvent
>>> requests = Requests()
>>> ask = WorkflowEvent.input_required("Book an engineer?", reply="approval", choices=["yes", "no"])
>>> requests.ask(ask, seq=3)
>>> [request.data["prompt"] for request in requests.open()]
['Book an engineer?']
>>> requests.answer(WorkflowEvent("approval", {"value": "maybe"}))
Traceback (most recent call last):
...
baxiflow.exceptions.AnswerError: 'maybe' is not a choice of the request 'Book an engineer?'; the choices are 'yes', 'no'
>>> requests.answer(WorkflowEvent("approval", {"value": "yes"})).data["prompt"], bool(requests)
('Book an engineer?', False)
"""

from __future__ import annotations

from typing import Any, Final

from baxiflow.event import ERROR, INPUT_REQUIRED, WorkflowEvent, request_problem
from baxiflow.exceptions import AnswerError

__all__ = ["UNANSWERED", "Requests", "describe", "unanswered_error"]

UNANSWERED: Final = ("left_open", "wait_timeout")
"""``data["reason"]`` of the error event with which a run gives up its open requests."""


def describe(request: WorkflowEvent) -> str:
    """``"'Book an engineer?' (reply 'approval')"``: a request as messages name it."""
    data: dict[str, Any] = request.data or {}
    return f"{data.get('prompt')!r} (reply {data.get('reply')!r})"


def _choices_text(choices: list[Any]) -> str:
    return ", ".join(map(repr, choices))


class Requests:
    """The open requests of one run, in the order they were asked, one per reply name."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, tuple[int, WorkflowEvent]] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def __repr__(self) -> str:
        return f"<Requests open: {', '.join(map(describe, self.open())) or 'none'}>"

    def open(self) -> list[WorkflowEvent]:
        """The open requests, oldest first."""
        return [event for _, event in self._open.values()]

    def seqs(self) -> list[tuple[int, WorkflowEvent]]:
        """The open requests with their numbers in the run, oldest first."""
        return list(self._open.values())

    def ask(self, event: WorkflowEvent, seq: int) -> None:
        """Open the request ``event``, the run's event ``seq``.

        Raises:
            ValueError: Its data is not a request's, or a request with the same reply is open.
        """
        problem = request_problem(event.data)
        if problem is not None:
            raise ValueError(problem)
        assert event.data is not None
        reply = event.data["reply"]
        if reply in self._open:
            raise ValueError(
                f"a request answered by {reply!r} is already open "
                f"({describe(self._open[reply][1])}); give each open request a reply of its own"
            )
        self._open[reply] = (seq, event)

    def drop(self, seq: int) -> None:
        """Forget the request numbered ``seq`` (it was refused before it was emitted)."""
        self._open = {reply: item for reply, item in self._open.items() if item[0] != seq}

    def answer(self, answer: WorkflowEvent, request: WorkflowEvent | None = None) -> WorkflowEvent:
        """Close the request ``answer`` replies to (``request``, if given) and return it.

        Raises:
            AnswerError: No open request takes ``answer`` (or ``request`` is not open, or
                replies under another name), or its ``data["value"]`` is not one of the
                request's choices. Nothing changes then.
        """
        if not isinstance(answer, WorkflowEvent):
            raise TypeError(f"an answer is a WorkflowEvent, got {type(answer).__name__}")
        found = self._open.get(answer.name)
        if found is None or (request is not None and found[1] is not request):
            raise AnswerError(self._unmatched(answer, request))
        asked = found[1]
        choices = (asked.data or {}).get("choices")
        if choices is not None:
            value = answer.data.get("value") if isinstance(answer.data, dict) else None
            if not isinstance(answer.data, dict) or "value" not in answer.data:
                raise AnswerError(
                    f"the answer to {describe(asked)} must carry data['value'], one of "
                    f"{_choices_text(choices)}"
                )
            if value not in choices:
                raise AnswerError(
                    f"{value!r} is not a choice of the request {asked.data['prompt']!r}; "  # type: ignore[index]
                    f"the choices are {_choices_text(choices)}"
                )
        del self._open[answer.name]
        return asked

    def abandon(self) -> list[WorkflowEvent]:
        """Give up every open request; return them, oldest first."""
        given_up = self.open()
        self._open.clear()
        return given_up

    def follow(self, event: WorkflowEvent, seq: int, parent_seq: int | None) -> None:
        """Bring the requests up to date with an emitted event, as a log or a display reads a run.

        A request opens when it is emitted; an event from outside the run (no parent) named
        like an open reply closes it; the run's error event that gives requests up closes all.
        """
        name = event.name
        if name == INPUT_REQUIRED:
            if request_problem(event.data) is None:
                self._open[event.data["reply"]] = (seq, event)  # type: ignore[index]
        elif parent_seq is None and seq:
            if name in self._open:
                del self._open[name]
            elif (
                name == ERROR
                and isinstance(event.data, dict)
                and event.data.get("reason") in UNANSWERED
            ):
                self._open.clear()

    def _unmatched(self, answer: WorkflowEvent, request: WorkflowEvent | None) -> str:
        waiting = ", ".join(map(describe, self.open())) or "none"
        if request is not None and (request.data or {}).get("reply") != answer.name:
            return f"an answer to {describe(request)} must be named {(request.data or {}).get('reply')!r}, not {answer.name!r}"
        if request is not None:
            return (
                f"the request {describe(request)} is not open in this run; open requests: {waiting}"
            )
        return f"no open request takes an answer named {answer.name!r}; open requests: {waiting}"


def unanswered_error(
    requests: list[WorkflowEvent], reason: str, wait_timeout: float | None = None
) -> WorkflowEvent:
    """The error event with which a run gives up ``requests``: ``reason`` is one of
    :data:`UNANSWERED`."""
    named = ", ".join(map(describe, requests))
    if reason == "wait_timeout":
        message = f"no answer within {wait_timeout:g} s (wait_timeout) to {named}"
    else:
        message = (
            f"a request was left open: {named}. Nothing can answer a run started with "
            "process() or run_sync(): in a notebook use `await baxiflow.run(...)`; in code, "
            'workflow.start(...) and run.answer(...), or run_sync(..., input="stdin")'
        )
    data = {
        "reason": reason,
        "prompts": [(r.data or {}).get("prompt") for r in requests],
        "replies": [(r.data or {}).get("reply") for r in requests],
    }
    return WorkflowEvent(ERROR, data, requests[0].metadata if requests else None, message)
