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

import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from baxiflow._recording import Recorder, Sinks
from baxiflow._routing import Stop, log_error
from baxiflow.exceptions import ObserverWarning, StoreError, warn_from_caller
from baxiflow.observe import WorkflowObserver, _CallableObserver

__all__ = ["ObserverGroup"]

HOOKS: Final = (
    "run_started",
    "event_emitted",
    "handler_started",
    "handler_finished",
    "run_idle",
    "run_finished",
)

Listener: TypeAlias = tuple[WorkflowObserver, Callable[[Any], object], bool]
"""``(observer, what to call, whether it takes fields rather than the object)``."""


def _overrides(
    kind: type[WorkflowObserver], hook: str, base: type[WorkflowObserver] = WorkflowObserver
) -> bool:
    # Looked up on the class, so an observer answering every attribute overrides nothing.
    return getattr(kind, hook) is not getattr(base, hook)


_HEARD: weakref.WeakKeyDictionary[type[WorkflowObserver], tuple[tuple[str, bool], ...]] = (
    weakref.WeakKeyDictionary()
)


def _heard(kind: type[WorkflowObserver]) -> tuple[tuple[str, bool], ...]:
    """The hooks an observer class hears, each with whether through a recorder's sink.

    Worked out once per class (a group is made for every run), kept while the class lives.
    """
    known = _HEARD.get(kind)
    if known is not None:
        return known
    heard = []
    for hook in HOOKS:
        sinkable = hook in ("event_emitted", "handler_finished")
        if sinkable and issubclass(kind, Recorder) and not _overrides(kind, hook, Recorder):
            heard.append((hook, True))
        elif _overrides(kind, hook):
            heard.append((hook, False))
    _HEARD[kind] = result = tuple(heard)
    return result


Plan: TypeAlias = tuple[tuple[str, tuple[tuple[int, str], ...]], ...]
"""Per hook heard, who hears it: ``(observer's index, how)``, how being ``"sink"`` (through
its recorder's sink), ``"callback"`` (a wrapped callable, called without its wrapper's frame)
or ``"method"``."""

_PLANS: dict[tuple[type[WorkflowObserver], ...], Plan] = {}
_PLANS_KEPT: Final = 256  # distinct lists of observer classes; more, and the plans start over


def _plan(kinds: tuple[type[WorkflowObserver], ...]) -> Plan:
    """Who hears which hook, for observers of these classes in this order.

    Worked out once per list of classes: a group is made for every run, usually of the
    same observers' classes.
    """
    known = _PLANS.get(kinds)
    if known is not None:
        return known
    plan = []
    for hook in HOOKS:
        entries = []
        for index, kind in enumerate(kinds):
            for heard, sink in _heard(kind):
                if heard == hook:
                    callback = hook == "event_emitted" and issubclass(kind, _CallableObserver)
                    entries.append(
                        (index, "sink" if sink else "callback" if callback else "method")
                    )
        if entries:
            plan.append((hook, tuple(entries)))
    if len(_PLANS) >= _PLANS_KEPT:
        _PLANS.clear()
    _PLANS[kinds] = result = tuple(plan)
    return result


def _bind(observers: tuple[WorkflowObserver, ...], plan: Plan) -> dict[str, tuple[Listener, ...]]:
    """The listeners of each hook heard: ``plan`` applied to these very observers."""
    hooks: dict[str, tuple[Listener, ...]] = {}
    sinks: dict[int, Sinks] = {}
    for hook, entries in plan:
        listeners: list[Listener] = []
        for index, how in entries:
            observer = observers[index]
            if how == "method":
                listeners.append((observer, getattr(observer, hook), False))
            elif how == "callback":
                assert isinstance(observer, _CallableObserver)
                listeners.append((observer, observer.callback, False))
            else:
                assert isinstance(observer, Recorder)
                if index not in sinks:
                    sinks[index] = observer.recording_sinks()
                if (found := sinks[index][hook == "handler_finished"]) is not None:
                    listeners.append((observer, found, True))
        if listeners:
            hooks[hook] = tuple(listeners)
    return hooks


def _takes_fields(listeners: tuple[Listener, ...]) -> tuple[bool, bool]:
    """Whether some of ``listeners`` take fields, and whether some take the object."""
    fields = objects = False
    for _, _, takes_fields in listeners:
        if takes_fields:
            fields = True
        else:
            objects = True
    return fields, objects


class ObserverGroup:
    """The observers of one run, in order; calls each safely and warns once per failing one.

    Attributes:
        observers: The observers, in the order they are told.
        hears_events: Whether anyone hears of events (``event_emitted``).
        hears_call_starts: Whether anyone hears of handler calls starting.
        hears_idle: Whether anyone hears that the run's queue is empty.
        event_listeners: Who hears of events, in order: ``(observer, callable, takes_fields)``;
            a recorder's sink takes :data:`~baxiflow._recording.EventFields`, any other
            listener an :class:`EmittedEvent`.
        call_listeners: Who hears of ended handler calls, likewise (``CallFields`` or the
            :class:`HandlerCall`).
        event_fields_wanted / event_objects_wanted / call_fields_wanted: Whether any
            listener takes that form, so the run loop builds only what is heard.
        tracks_calls: Whether handler calls need to be made: someone hears of calls, or of
            events (an :class:`EmittedEvent` names its call).
    """

    __slots__ = (
        "_hooks",
        "_warned",
        "call_fields_wanted",
        "call_listeners",
        "event_fields_wanted",
        "event_listeners",
        "event_objects_wanted",
        "hears_call_starts",
        "hears_events",
        "hears_idle",
        "observers",
        "tracks_calls",
    )

    def __init__(self, observers: Iterable[WorkflowObserver]) -> None:
        self.observers = observers = tuple(observers)
        self._warned: set[int] | None = None
        self._hooks = hooks = _bind(observers, _plan(tuple(map(type, observers))))
        self.event_listeners = events = hooks.get("event_emitted", ())
        self.call_listeners = calls = hooks.get("handler_finished", ())
        self.event_fields_wanted, self.event_objects_wanted = _takes_fields(events)
        self.call_fields_wanted = _takes_fields(calls)[0]
        self.hears_events = bool(events)
        self.hears_call_starts = "handler_started" in hooks
        self.hears_idle = "run_idle" in hooks
        self.tracks_calls = bool(events or calls) or self.hears_call_starts

    def notify(self, hook: str, *arguments: object) -> None:
        """Tell every observer that overrides ``hook``, in order."""
        for observer, method, _ in self._hooks.get(hook, ()):
            try:
                method(*arguments)
            except Exception as exc:
                self.report(observer, hook, exc)

    def report(self, observer: WorkflowObserver, method: str, exc: Exception) -> None:
        """Warn, once per observer and run, that ``observer`` raised ``exc`` in ``method``.

        A durable log that fails (:class:`~baxiflow.exceptions.StoreError`) is not warned
        about: it stops the run, with a final error event, as a guard does.
        """
        if isinstance(exc, StoreError):
            raise Stop(log_error(exc)) from exc
        if self._warned is None:
            self._warned = set()
        elif id(observer) in self._warned:
            return
        self._warned.add(id(observer))
        target = observer.callback if isinstance(observer, _CallableObserver) else observer
        warn_from_caller(
            f"observer {target!r} raised in {method}: {type(exc).__name__}: {exc}; "
            "the run goes on (further errors of this observer in this run are not reported)",
            ObserverWarning,
        )
