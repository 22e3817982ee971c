"""The event that flows through a workflow.

>>> from baxiflow import WorkflowEvent
>>> WorkflowEvent(name="start", data={"name": "Alice"})
WorkflowEvent(name='start', data={'name': 'Alice'}, metadata=None, error=None)
>>> WorkflowEvent.progress("search", "Searching...").data
{'step': 'search', 'description': 'Searching...'}
>>> WorkflowEvent.input_required("Book it?", reply="approval", choices=["yes", "no"]).data
{'prompt': 'Book it?', 'reply': 'approval', 'choices': ['yes', 'no']}
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from baxiflow.exceptions import EventNameError

__all__ = [
    "ERROR",
    "INPUT_REQUIRED",
    "PROGRESS",
    "TracebackText",
    "WorkflowEvent",
    "check_event_name",
    "request_problem",
]

PROGRESS = "progress"
"""Name of progress events: yielded to the caller, never dispatched to handlers."""

ERROR = "error"
"""Name of error events: yielded, and dispatched to handlers registered for ``"error"``."""

INPUT_REQUIRED = "input_required"
"""Name of requests for input (:meth:`WorkflowEvent.input_required`): dispatched like any
event; the run keeps each open until its answer arrives from outside."""


def check_event_name(name: object) -> str:
    """Return ``name`` if it is a non-empty string, else raise :class:`EventNameError`.

    >>> check_event_name("start")
    'start'
    >>> check_event_name("")
    Traceback (most recent call last):
    ...
    baxiflow.exceptions.EventNameError: event name must be a non-empty string, got ''
    """
    if not isinstance(name, str) or not name:
        raise EventNameError(f"event name must be a non-empty string, got {name!r}")
    return name


_REQUEST_KEYS = frozenset({"prompt", "reply", "choices"})


def request_problem(data: object) -> str | None:
    """What is wrong with the data of an ``"input_required"`` event, or ``None``.

    >>> request_problem({"prompt": "Go on?", "reply": "error"})
    "a request's reply must name an event its answer is dispatched as, not 'error'"
    """
    if not isinstance(data, dict):
        return "a request's data must be a dict with 'prompt' and 'reply'"
    prompt, reply, choices = data.get("prompt"), data.get("reply"), data.get("choices")
    if not isinstance(prompt, str) or not prompt:
        return f"a request's prompt must be a non-empty string, got {prompt!r}"
    if not isinstance(reply, str) or not reply:
        return f"a request's reply must be a non-empty event name, got {reply!r}"
    if reply in (PROGRESS, ERROR, INPUT_REQUIRED):
        return f"a request's reply must name an event its answer is dispatched as, not {reply!r}"
    if choices is not None and (not isinstance(choices, list) or not choices):
        return f"a request's choices must be a non-empty list or None, got {choices!r}"
    return None


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class TracebackText(str):
    """A failed handler's traceback as Python prints it, holding the live exception too.

    It is the ``str`` in an error event's ``data["traceback"]``. While the run is in
    memory, :attr:`exception` is the exception itself (with its frames, for ``%debug``);
    copying, pickling or saving the text keeps only the text.

    >>> import copy
    >>> try:
    ...     int("x")
    ... except ValueError as error:
    ...     text = TracebackText.of(error)
    >>> print(text.splitlines()[-1])
    ValueError: invalid literal for int() with base 10: 'x'
    >>> type(text.exception).__name__, type(copy.copy(text)) is str
    ('ValueError', True)
    """

    exception: BaseException | None = None

    @classmethod
    def of(cls, exc: BaseException) -> TracebackText:
        """The traceback of ``exc`` from the first frame outside baxiflow, keeping ``exc``.

        The run loop's frames that called a failing handler come first in the traceback;
        they are cut, so the text starts at the handler's own line. An exception that was
        never raised gives its last line only (``"TypeError: ..."``).
        """
        tb: TracebackType | None = exc.__traceback__
        while (
            tb is not None
            and tb.tb_next is not None
            and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)
        ):
            tb = tb.tb_next
        text = cls("".join(traceback.format_exception(type(exc), exc, tb)))
        text.exception = exc
        return text

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        # Copies, pickles and saved traces carry the text alone, never the live frames.
        return (str, (str(self),))


def _check_text(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"progress {field} must be a string, got {type(value).__name__}")


def _check_amount(field: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress {field} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"progress {field} must be a finite number {bound}, got {value!r}")
    return value


def __getattr__(name: str) -> Any:
    # The original spec imports the manager from this module
    # (``from src.workflow.event import WorkflowManager``); keep that line working
    # without a circular import.
    if name == "WorkflowManager":
        from baxiflow.manager import WorkflowManager

        return WorkflowManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(slots=True)
class WorkflowEvent:
    """One event: a name that routes it, a payload, context, and an optional error.

    Args:
        name: Event type; handlers registered under this name receive the event.
        data: Payload for the handlers.
        metadata: Context carried along the workflow (session ids, user, ...).
        error: Error message; set on ``"error"`` events.

    >>> event = WorkflowEvent("completed", data={"result": "ok"}, metadata={"session_id": "1"})
    >>> event.name, event.is_progress, event.is_error
    ('completed', False, False)
    """

    name: str
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        check_event_name(self.name)

    @classmethod
    def progress(
        cls,
        step: str,
        description: str,
        *,
        current: float | None = None,
        total: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WorkflowEvent:
        """Make a ``"progress"`` event, a status update that never changes the flow.

        Args:
            step: Which step reports (one progress bar per step in a notebook).
            description: What is happening now.
            current: Units done so far, for a fraction; give it with ``total``.
            total: Units in all.
            metadata: Context, as on any event.

        Raises:
            TypeError: ``step`` or ``description`` is not a string, or ``current`` or
                ``total`` is not a number.
            ValueError: ``step`` is empty, ``current`` is negative or not finite, or
                ``total`` is not a finite positive number.

        >>> WorkflowEvent.progress("download", "3 of 10 files", current=3, total=10).data
        {'step': 'download', 'description': '3 of 10 files', 'current': 3, 'total': 10}
        >>> WorkflowEvent.progress("download", "?", current=float("nan"), total=10)
        Traceback (most recent call last):
        ...
        ValueError: progress current must be a finite number >= 0, got nan
        """
        if type(step) is not str or type(description) is not str:
            _check_text("step", step)
            _check_text("description", description)
        if not step:
            raise ValueError("progress step must be a non-empty string")
        data: dict[str, Any] = {"step": step, "description": description}
        if current is not None:
            data["current"] = _check_amount("current", current, positive=False)
        if total is not None:
            data["total"] = _check_amount("total", total, positive=True)
        return cls(PROGRESS, data, metadata)

    @classmethod
    def input_required(
        cls,
        prompt: str,
        *,
        reply: str,
        choices: Iterable[Any] | None = None,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WorkflowEvent:
        """Make an ``"input_required"`` event: a question to a person, answered by an event.

        A handler yields it and goes on or ends; nothing of it runs again when the answer
        comes. The answer is the event ``reply`` sent to the run from outside
        (``run.answer(request, value)`` sends ``WorkflowEvent(reply, {"value": value})``),
        dispatched to the handlers of ``reply`` like any event. While a request is open and
        the queue is empty, a run started with ``workflow.start`` waits for the answer.

        Args:
            prompt: The question, as a person reads it.
            reply: The name of the event that carries the answer; the run's open requests
                each have their own.
            choices: The values an answer may take (a button each in a notebook); ``None``
                for any value (a text box).
            data: More for the person to see (the booking, the extracted field); its keys
                join ``prompt``, ``reply`` and ``choices`` in the event's data.
            metadata: Context, as on any event; the error that gives the request up keeps it.

        Raises:
            ValueError: ``prompt`` is empty, ``reply`` is not an event name an answer can
                have, ``choices`` is empty, or ``data`` uses a key the request keeps.

        >>> WorkflowEvent.input_required("Which city?", reply="city", data={"ticket": 7}).data
        {'prompt': 'Which city?', 'reply': 'city', 'ticket': 7}
        >>> WorkflowEvent.input_required("Go on?", reply="progress")
        Traceback (most recent call last):
        ...
        ValueError: a request's reply must name an event its answer is dispatched as, not 'progress'
        """
        fields: dict[str, Any] = {"prompt": prompt, "reply": reply}
        if choices is not None:
            fields["choices"] = list(choices)
        if data:
            if clash := sorted(set(data) & _REQUEST_KEYS):
                raise ValueError(
                    f"a request's data= cannot set {', '.join(clash)}; pass them as arguments"
                )
            fields.update(data)
        problem = request_problem(fields)
        if problem is not None:
            raise ValueError(problem)
        return cls(INPUT_REQUIRED, fields, metadata)

    @property
    def is_request(self) -> bool:
        """True for ``"input_required"`` events."""
        return self.name == INPUT_REQUIRED

    @classmethod
    def failure(
        cls,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WorkflowEvent:
        """Make an ``"error"`` event carrying ``message``.

        >>> WorkflowEvent.failure("search backend down", metadata={"session_id": "1"})
        WorkflowEvent(name='error', data=None, metadata={'session_id': '1'}, error='search backend down')
        """
        return cls(ERROR, data, metadata, message)

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, metadata: dict[str, Any] | None = None
    ) -> WorkflowEvent:
        """Make an ``"error"`` event from an exception: its message, type and traceback.

        ``data["traceback"]`` is a :class:`TracebackText`, which keeps ``exc`` while the
        event is in memory (see :attr:`exception`).

        >>> event = WorkflowEvent.from_exception(ValueError("bad query"))
        >>> event.data
        {'type': 'ValueError', 'traceback': 'ValueError: bad query\\n'}
        >>> type(event.exception).__name__
        'ValueError'
        """
        data = {"type": type(exc).__name__, "traceback": TracebackText.of(exc)}
        return cls(ERROR, data, metadata, str(exc) or type(exc).__name__)

    @property
    def exception(self) -> BaseException | None:
        """The exception behind an error event, while the run that made it is in memory.

        It lives in ``data["traceback"]`` (a :class:`TracebackText`); an event read back
        from a saved trace, copied or built by hand has none.
        """
        text = self.data.get("traceback") if type(self.data) is dict else None
        return text.exception if isinstance(text, TracebackText) else None

    @property
    def is_progress(self) -> bool:
        """True for ``"progress"`` events."""
        return self.name == PROGRESS

    @property
    def is_error(self) -> bool:
        """True for ``"error"`` events."""
        return self.name == ERROR
