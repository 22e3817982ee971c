"""The observers of one run, called in order, each only for the hooks it overrides.

Like trio's instrumentation, a hook that no observer overrides costs the run nothing: the
group keeps, per hook, only the observers that override it, and the run loop asks
:attr:`ObserverGroup.hears_events` and :attr:`ObserverGroup.tracks_calls` before doing the
work only they need. A :class:`~baxiflow._recording.Recorder` hears events and ended calls
through its sinks, in its place in the order. An observer that raises is reported once per
run as an :class:`~baxiflow.exceptions.ObserverWarning`; the run goes on.

>>> from baxiflow.observe import RunInfo, WorkflowObserver
>>> from baxiflow.event import WorkflowEvent
>>> class Starts(WorkflowObserver):
...     def run_started(self, run):
...         print("started", run.run_id)
>>> group = ObserverGroup([Starts(), WorkflowObserver()])
>>> group.notify("run_started", RunInfo("r-1", WorkflowEvent("start"), 0.0))
started r-1
>>> group.hears_events, group.tracks_calls
(False, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from baxiflow._recording import Recorder, call_fields, event_fields
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import ObserverWarning, warn_from_caller
from baxiflow.observe import (
    EmittedEvent,
    HandlerCall,
    RunInfo,
    WorkflowObserver,
    _CallableObserver,
)

__all__ = ["ObserverGroup"]

HOOKS: Final = (
    "run_started",
    "event_emitted",
    "handler_started",
    "handler_finished",
    "run_finished",
)

Listener: TypeAlias = tuple[WorkflowObserver, Callable[[Any], object], bool]
"""``(observer, what to call, whether it takes fields rather than the object)``."""


def _overrides(
    observer: WorkflowObserver, hook: str, base: type[WorkflowObserver] = WorkflowObserver
) -> bool:
    # Looked up on the class, so an observer answering every attribute overrides nothing.
    return getattr(type(observer), hook) is not getattr(base, hook)


def _listener(observer: WorkflowObserver, hook: str) -> Listener | None:
    """How ``observer`` hears ``hook``: through its sink, its method, or not at all."""
    sinkable = hook in ("event_emitted", "handler_finished")
    if sinkable and isinstance(observer, Recorder) and not _overrides(observer, hook, Recorder):
        sink = observer.recording_sinks()[hook == "handler_finished"]
        return None if sink is None else (observer, sink, True)
    if not _overrides(observer, hook):
        return None
    if hook == "event_emitted" and isinstance(observer, _CallableObserver):
        return (observer, observer.callback, False)  # without its wrapper's frame
    return (observer, getattr(observer, hook), False)


class ObserverGroup:
    """The observers of one run, in order; calls each safely and warns once per failing one.

    Attributes:
        observers: The observers, in the order they are told.
        hears_events: Whether anyone hears of events (``event_emitted``).
        hears_call_starts: Whether anyone hears of handler calls starting.
        tracks_calls: Whether handler calls need to be made: someone hears of calls, or of
            events (an :class:`EmittedEvent` names its call).
    """

    __slots__ = (
        "_hooks",
        "_wants_fields",
        "_wants_objects",
        "_warned",
        "hears_call_starts",
        "hears_events",
        "observers",
        "tracks_calls",
    )

    def __init__(self, observers: Iterable[WorkflowObserver]) -> None:
        self.observers = tuple(observers)
        self._warned: set[int] = set()
        self._hooks: dict[str, tuple[Listener, ...]] = {
            hook: tuple(filter(None, (_listener(o, hook) for o in self.observers)))
            for hook in HOOKS
        }
        self._wants_fields = {
            hook: any(fields for _, _, fields in listeners)
            for hook, listeners in self._hooks.items()
        }
        self._wants_objects = {
            hook: any(not fields for _, _, fields in listeners)
            for hook, listeners in self._hooks.items()
        }
        self.hears_events = bool(self._hooks["event_emitted"])
        self.hears_call_starts = bool(self._hooks["handler_started"])
        self.tracks_calls = self.hears_events or any(
            self._hooks[hook] for hook in ("handler_started", "handler_finished")
        )

    def notify(self, hook: str, argument: object) -> None:
        """Tell every observer that overrides ``hook``, in order."""
        for observer, method, _ in self._hooks[hook]:
            try:
                method(argument)
            except Exception as exc:
                self.report(observer, hook, exc)

    def emitted(
        self,
        event: WorkflowEvent,
        seq: int,
        parent_seq: int | None,
        depth: int,
        handler_name: str | None,
        elapsed: float,
        run: RunInfo,
        call: HandlerCall | None,
    ) -> None:
        """Tell every observer of events, in order; the arguments are an EmittedEvent's."""
        emitted = fields = None
        if self._wants_objects["event_emitted"]:
            emitted = _new_emitted(
                EmittedEvent, (event, seq, parent_seq, depth, handler_name, elapsed, run, call)
            )
        if self._wants_fields["event_emitted"]:
            fields = event_fields(event, seq, parent_seq, depth, handler_name, elapsed, run)
        for observer, method, takes_fields in self._hooks["event_emitted"]:
            try:
                method(fields if takes_fields else emitted)
            except Exception as exc:
                self.report(observer, "event_emitted", exc)

    def finished(self, call: HandlerCall) -> None:
        """Tell every observer of handler calls, in order, that ``call`` ended."""
        fields = call_fields(call) if self._wants_fields["handler_finished"] else None
        for observer, method, takes_fields in self._hooks["handler_finished"]:
            try:
                method(fields if takes_fields else call)
            except Exception as exc:
                self.report(observer, "handler_finished", exc)

    def report(self, observer: WorkflowObserver, method: str, exc: Exception) -> None:
        """Warn, once per observer and run, that ``observer`` raised ``exc`` in ``method``."""
        if id(observer) in self._warned:
            return
        self._warned.add(id(observer))
        target = observer.callback if isinstance(observer, _CallableObserver) else observer
        warn_from_caller(
            f"observer {target!r} raised in {method}: {type(exc).__name__}: {exc}; "
            "the run goes on (further errors of this observer in this run are not reported)",
            ObserverWarning,
        )


_new_emitted = tuple.__new__
"""Makes an :class:`EmittedEvent` from a tuple of all its fields without the Python-level
``__new__`` of a named tuple; ``tests/test_engine.py`` checks that every field is set."""
