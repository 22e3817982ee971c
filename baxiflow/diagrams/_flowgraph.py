"""The static shape of a workflow: which handlers serve each event and which events they emit.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start", emits=["done"])
... async def finish(event):
...     yield WorkflowEvent("done")
>>> graph = flow_graph(workflow)
>>> [(h.event, h.name, h.emits, h.source) for h in graph.handlers]
[('start', 'finish', ('done',), 'declared')]
>>> graph.events, graph.terminal_events
(('done', 'start'), ('done',))
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from baxiflow.diagrams._emits import infer_emits
from baxiflow.event import ERROR
from baxiflow.registry import HandlerRegistration

__all__ = ["EmitsSource", "FlowGraph", "HandlerNode", "Registrations", "flow_graph"]

EmitsSource: TypeAlias = Literal["declared", "inferred", "unknown"]
"""Where a handler's emitted events are known from: its ``emits=`` declaration, its
source code, or nowhere (no declaration and the source could not be read or inference is off)."""


class Registrations(Protocol):
    """Anything that lists its handler registrations, such as a ``WorkflowManager``."""

    def registrations(self, event_name: str | None = None) -> tuple[HandlerRegistration, ...]:
        """Every registration, grouped by event in registration order."""
        ...


@dataclass(frozen=True, slots=True)
class HandlerNode:
    """One registration and the events it emits.

    Attributes:
        event: The event it handles.
        position: Its place among that event's handlers (0 runs first).
        name: The handler's qualified name.
        emits: The event names it emits, sorted.
        source: Where ``emits`` comes from.
        complete: ``False`` when it may emit events not in ``emits`` (see
            :class:`~baxiflow.diagrams.Inference`); a declaration counts as complete.
    """

    event: str
    position: int
    name: str
    emits: tuple[str, ...]
    source: EmitsSource
    complete: bool

    @property
    def key(self) -> tuple[str, int]:
        """``(event, position)``: unique within one workflow."""
        return (self.event, self.position)


@dataclass(frozen=True, slots=True)
class FlowGraph:
    """Every handler of a workflow with its emitted events, sorted by event then position."""

    handlers: tuple[HandlerNode, ...]

    @property
    def served_events(self) -> tuple[str, ...]:
        """Events with at least one handler, sorted."""
        return tuple(sorted({h.event for h in self.handlers}))

    @property
    def events(self) -> tuple[str, ...]:
        """Every event served or emitted, sorted."""
        return tuple(
            sorted({h.event for h in self.handlers}.union(*(h.emits for h in self.handlers)))
        )

    @property
    def terminal_events(self) -> tuple[str, ...]:
        """Emitted events that no handler serves, sorted: where the flow ends."""
        served = set(self.served_events)
        return tuple(e for e in self.events if e not in served)

    def handlers_for(self, event: str) -> tuple[HandlerNode, ...]:
        """The handlers of ``event`` in the order they run."""
        return tuple(h for h in self.handlers if h.event == event)

    def reached_from(self, start: str) -> set[tuple[str, int]]:
        """The keys of the handlers some path of emitted events from ``start`` reaches.

        A failing handler's ``error`` event counts as emitted by every handler.
        """
        reached: set[tuple[str, int]] = set()
        seen = {start}
        queue = deque([start])
        while queue:
            for handler in self.handlers_for(queue.popleft()):
                reached.add(handler.key)
                for name in (*handler.emits, ERROR):
                    if name not in seen:
                        seen.add(name)
                        queue.append(name)
        return reached


def flow_graph(workflow: Registrations, *, infer: bool = True) -> FlowGraph:
    """Build the :class:`FlowGraph` of ``workflow``.

    Args:
        workflow: A ``WorkflowManager`` (or anything with its ``registrations()``).
        infer: Read the source of handlers that declared no ``emits`` (see
            :func:`~baxiflow.diagrams.infer_emits`); a declaration always wins.
    """
    nodes = sorted((_node(r, infer=infer) for r in workflow.registrations()), key=lambda h: h.key)
    return FlowGraph(tuple(nodes))


def _node(registration: HandlerRegistration, *, infer: bool) -> HandlerNode:
    event, position, name = registration.event_name, registration.position, registration.name
    if registration.emits is not None:
        emits = tuple(sorted(set(registration.emits)))
        return HandlerNode(event, position, name, emits, "declared", True)
    inference = infer_emits(registration.handler) if infer else None
    if inference is None:
        return HandlerNode(event, position, name, (), "unknown", False)
    return HandlerNode(event, position, name, inference.names, "inferred", inference.complete)
