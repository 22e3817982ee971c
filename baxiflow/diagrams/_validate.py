"""Check a workflow's registry before running it: unreachable handlers, terminal events, cycles.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def ask(event):
...     yield WorkflowEvent("answered")
>>> @workflow.on("answered")
... async def check(event):
...     yield WorkflowEvent("start" if event.data else "done")
>>> @workflow.on("never_emitted")
... async def orphan(event):
...     yield WorkflowEvent("done")
>>> report = validate(workflow)
>>> report.ok
False
>>> print(report)
Validation from 'start' of 3 handlers: 1 error, 1 warning, 1 note
  error    unreachable  orphan (handles 'never_emitted'): no path from 'start' reaches it
  warning  cycle        answered -> start -> answered: a loop; fine if intended, max_events stops it otherwise
  info     terminal     done: emitted, but no handler serves it (the flow ends there)
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from baxiflow._text import plural
from baxiflow.diagrams._flowgraph import FlowGraph, Registrations, flow_graph
from baxiflow.event import check_event_name

__all__ = ["Finding", "Severity", "ValidationReport", "validate"]

Severity: TypeAlias = Literal["error", "warning", "info"]
"""``error``: the registry is broken; ``warning``: maybe intended; ``info``: worth knowing."""

_ORDER: Mapping[Severity, int] = {"error": 0, "warning": 1, "info": 2}
_NOUNS: Mapping[Severity, str] = {"error": "error", "warning": "warning", "info": "note"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one check.

    Attributes:
        check: ``"unreachable"``, ``"terminal"`` or ``"cycle"``.
        severity: How much it matters.
        subject: What it is about: a handler, an event, or a cycle as ``a -> b -> a``.
        message: What is wrong or notable.
    """

    check: str
    severity: Severity
    subject: str
    message: str


@dataclass(frozen=True, slots=True, repr=False)
class ValidationReport:
    """What :func:`validate` found; text in a terminal, an HTML table in Jupyter.

    Attributes:
        start: The event the checks start from.
        handlers: How many handlers the workflow has.
        unreachable_handlers: ``(event, handler name)`` of handlers no path from
            ``start`` reaches.
        terminal_events: Events some handler emits and none serves, sorted.
        cycles: Each loop of events, starting and ending at its alphabetically first event.
        findings: All of the above as :class:`Finding` rows, most severe first.
    """

    start: str
    handlers: int
    unreachable_handlers: tuple[tuple[str, str], ...]
    terminal_events: tuple[str, ...]
    cycles: tuple[tuple[str, ...], ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when no finding is an error (warnings and notes allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    def __str__(self) -> str:
        lines = [f"Validation from {self.start!r} of {plural(self.handlers, 'handler')}: "]
        if not self.findings:
            lines[0] += "no findings"
        else:
            counts = [
                plural(sum(f.severity == s for f in self.findings), _NOUNS[s])
                for s in _ORDER
                if any(f.severity == s for f in self.findings)
            ]
            lines[0] += ", ".join(counts)
        lines.extend(
            f"  {f.severity:<8} {f.check:<12} {f.subject}: {f.message}" for f in self.findings
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = html.escape(str(self).splitlines()[0])
        if not self.findings:
            return f"<p>{head}</p>"
        colors = {"error": "#d62728", "warning": "#b08800", "info": "#4a6fa5"}
        rows = "".join(
            "<tr>"
            f'<td style="color:{colors[f.severity]};font-weight:bold">{f.severity}</td>'
            f"<td>{html.escape(f.check)}</td>"
            f"<td><code>{html.escape(f.subject)}</code></td>"
            f"<td>{html.escape(f.message)}</td>"
            "</tr>"
            for f in self.findings
        )
        return (
            f"<table><caption>{head}</caption>"
            "<tr><th>severity</th><th>check</th><th>subject</th><th>message</th></tr>"
            f"{rows}</table>"
        )


def validate(
    workflow: Registrations,
    start: str = "start",
    *,
    unreachable: bool = True,
    terminal: bool = True,
    cycles: bool = True,
    infer: bool = True,
) -> ValidationReport:
    """Check which handlers ``start`` reaches, where the flow ends, and where it loops.

    Edges come from each handler's ``emits=`` declaration, else from its source (see
    :func:`~baxiflow.diagrams.infer_emits`). Any handler may raise, so ``"error"`` handlers
    count as reached once any handler is.

    Args:
        workflow: The ``WorkflowManager`` to check.
        start: The event runs start from.
        unreachable: Report handlers no path from ``start`` reaches (errors; warnings
            when some reached handler may emit events its source does not name).
        terminal: Report events emitted that no handler serves (notes: that is where
            the flow ends, often on purpose).
        cycles: Report loops between events (warnings: loops can be intended).
        infer: Read handler sources for undeclared ``emits``.

    Raises:
        EventNameError: ``start`` is not a non-empty string (a ``ValueError``).
    """
    check_event_name(start)
    graph = flow_graph(workflow, infer=infer)
    reached = graph.reached_from(start)
    findings: list[Finding] = []
    unreached = tuple((h.event, h.name) for h in graph.handlers if h.key not in reached)
    if unreachable:
        findings.extend(_unreachable_findings(graph, start, reached))
    if terminal:
        findings.extend(
            Finding(
                "terminal", "info", name, "emitted, but no handler serves it (the flow ends there)"
            )
            for name in graph.terminal_events
        )
    loops = tuple(_cycles(graph))
    if cycles:
        findings.extend(
            Finding(
                "cycle",
                "warning",
                " -> ".join(loop),
                "a loop; fine if intended, max_events stops it otherwise",
            )
            for loop in loops
        )
    findings.sort(key=lambda f: _ORDER[f.severity])
    return ValidationReport(
        start,
        len(graph.handlers),
        unreached if unreachable else (),
        graph.terminal_events if terminal else (),
        loops if cycles else (),
        tuple(findings),
    )


def _unreachable_findings(
    graph: FlowGraph, start: str, reached: set[tuple[str, int]]
) -> Iterator[Finding]:
    if not graph.handlers_for(start):
        served = ", ".join(repr(e) for e in graph.served_events) or "none"
        yield Finding(
            "unreachable", "error", start, f"no handler serves the start event (served: {served})"
        )
    uncertain = sorted({h.name for h in graph.handlers if h.key in reached and not h.complete})
    severity: Severity = "warning" if uncertain else "error"
    why = (
        f"; but {', '.join(uncertain)} may emit events not declared or named in its source"
        if uncertain
        else ""
    )
    for handler in graph.handlers:
        if handler.key not in reached:
            yield Finding(
                "unreachable",
                severity,
                f"{handler.name} (handles {handler.event!r})",
                f"no path from {start!r} reaches it{why}",
            )


def _cycles(graph: FlowGraph) -> Iterator[tuple[str, ...]]:
    """Each strongly connected group of events, as one loop through its first event."""
    successors: dict[str, set[str]] = {}
    for handler in graph.handlers:
        successors.setdefault(handler.event, set()).update(handler.emits)
    for group in _strongly_connected(successors):
        first = min(group)
        if len(group) > 1 or first in successors.get(first, ()):
            yield _loop_through(first, group, successors)


def _strongly_connected(successors: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so deep registries cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(successors):
        if root in index:
            continue
        work = [(root, iter(sorted(successors.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return sorted(groups, key=min)


def _loop_through(
    first: str, group: set[str], successors: Mapping[str, set[str]]
) -> tuple[str, ...]:
    """The shortest loop from ``first`` back to itself inside ``group``."""
    previous: dict[str, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for child in sorted(successors.get(node, ())):
            if child == first:
                path = [node]
                while path[-1] != first:
                    path.append(previous[path[-1]])
                return (*reversed(path), first)
            if child in group and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{first!r} is in a strongly connected group but on no loop")
