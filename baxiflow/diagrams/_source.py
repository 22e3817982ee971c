"""Build the text of a workflow diagram, DOT or Mermaid, from its flow graph and an optional trace.

Pure functions, no I/O: the same input always gives the same text.

>>> from baxiflow.diagrams import FlowGraph, HandlerNode
>>> graph = FlowGraph((HandlerNode("start", 0, "greet", ("done",), "declared", True),))
>>> print(to_mermaid(diagram_spec(graph), legend=False), end="")
flowchart TB
    n0(["done"])
    n1(["start"])
    n2["greet"]
    n1 --> n2
    n2 --> n0
    classDef terminal fill:#e8f0fe,stroke:#4a6fa5,stroke-width:3px
    classDef event fill:#e8f0fe,stroke:#4a6fa5
    classDef handler fill:#fff4d6,stroke:#b08800
    class n0 terminal
    class n1 event
    class n2 handler
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from baxiflow._text import format_duration
from baxiflow.diagrams._flowgraph import FlowGraph, HandlerNode
from baxiflow.diagrams._overlay import TraceOverlay
from baxiflow.trace import HandlerStats

__all__ = [
    "FAST_LAYOUT_NODES",
    "RANKDIRS",
    "STRAIGHT_EDGES_NODES",
    "DiagramSpec",
    "Edge",
    "EdgeKind",
    "Node",
    "NodeStyle",
    "diagram_spec",
    "event_id",
    "handler_id",
    "to_dot",
    "to_mermaid",
]

NodeStyle: TypeAlias = Literal[
    "event", "terminal", "handler", "unreachable", "never_called", "raised"
]
"""How a node is drawn: an event, an event no handler serves, a handler, a handler no path
from the start event reaches, and with a trace, a handler that never ran or one that raised."""

EdgeKind: TypeAlias = Literal["handles", "declared", "inferred", "observed"]
"""Why an edge exists: an event goes to its handler, or a handler emits an event it
declared, that its source names, or that only the trace shows."""

RANKDIRS: Final = ("TB", "LR", "BT", "RL")
"""Valid layout directions: top to bottom, left to right, and their reverses."""

_FONT = "Helvetica"
_TIMES = "\N{MULTIPLICATION SIGN}"
_EVENT = {"shape": "ellipse", "style": "filled", "fillcolor": "#e8f0fe", "color": "#4a6fa5"}
_HANDLER = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "#fff4d6",
    "color": "#b08800",
    # Wider than the default: viewers without Helvetica draw text wider than dot measured it.
    "margin": "0.3,0.055",
}
_NODE_ATTRS: Final[Mapping[NodeStyle, Mapping[str, str]]] = {
    "event": _EVENT,
    "terminal": {**_EVENT, "peripheries": "2"},
    "handler": _HANDLER,
    "unreachable": {
        **_HANDLER,
        "style": "rounded,dashed",
        "color": "#999999",
        "fontcolor": "#777777",
    },
    "never_called": {
        **_HANDLER,
        "style": "rounded,filled,dashed",
        "fillcolor": "#f4f4f4",
        "color": "#aaaaaa",
        "fontcolor": "#888888",
    },
    "raised": {
        **_HANDLER,
        "style": "rounded,filled,bold",
        "fillcolor": "#fde2e1",
        "color": "#d62728",
        "fontcolor": "#a50f15",
    },
}
_EDGE_ATTRS: Final[Mapping[EdgeKind, Mapping[str, str]]] = {
    "handles": {"color": "#4a6fa5"},
    "declared": {"color": "#b08800"},
    "inferred": {"color": "#b08800", "style": "dashed"},
    "observed": {"color": "#2ca02c", "style": "dotted"},
}
# Graphviz decodes HTML entities such as `&amp;` in labels (not in node ids), so every `&` of
# a label is escaped to draw a name that holds one as written.
_DECODED: Final = frozenset({"label", "xlabel"})
_SEEN = {"penwidth": "2"}
_UNSEEN = {"color": "#bbbbbb", "fontcolor": "#999999"}

FAST_LAYOUT_NODES: Final = 100
"""Past this many nodes dot bounds the passes that place nodes (``nslimit``): a 100-handler
registry renders in under 2 s instead of 20 s or more. Smaller diagrams keep the full layout."""

STRAIGHT_EDGES_NODES: Final = 300
"""Past this many nodes edges are straight lines (``splines=line``), sparing dot's edge
routing: a 200-handler registry renders in seconds instead of minutes (bench_diagram.py)."""

# Short words: a sample's shape and colour say the rest ("raised" in a red handler box), so
# the legend stays one row under the drawing.
_NODE_LEGEND: Final[Mapping[NodeStyle, str]] = {
    "event": "event",
    "terminal": "end event",
    "handler": "handler",
    "unreachable": "unreachable",
    "never_called": "never called",
    "raised": "raised",
}
_EDGE_LEGEND: Final[Mapping[EdgeKind, str]] = {
    "handles": "handles",
    "declared": "emits",
    "inferred": "emits (inferred)",
    "observed": "trace only",
}
_RUN_ORDER: Final = " (1, 2: order)"
"""Added to the ``handles`` sample when an event's handlers are numbered in run order."""
_UNSEEN_LEGEND: Final = "not in trace"

_MERMAID_ARROWS: Final[Mapping[EdgeKind, str]] = {
    "handles": "-->",
    "declared": "-->",
    "inferred": "-.->",
    "observed": "==>",
}
_MERMAID_CLASSES: Final[Mapping[str, str]] = {
    "event": "fill:#e8f0fe,stroke:#4a6fa5",
    "terminal": "fill:#e8f0fe,stroke:#4a6fa5,stroke-width:3px",
    "handler": "fill:#fff4d6,stroke:#b08800",
    "unreachable": "fill:#ffffff,stroke:#999999,color:#777777,stroke-dasharray:4",
    "never_called": "fill:#f4f4f4,stroke:#aaaaaa,color:#888888,stroke-dasharray:4",
    "raised": "fill:#fde2e1,stroke:#d62728,color:#a50f15",
    "blank": "fill:none,stroke:none",
}

# Mermaid reads more than quotes and HTML in a label: `#name;` and `#123;` as entity codes,
# a backslash and `n` as a line break, a label opening with a backtick as Markdown, and it
# drops the last `;` of a line holding `style`, a colon and a `#`. An entity code for each of
# those characters shows every name as written, so no two names look alike.
_MERMAID_ESCAPES: Final = str.maketrans(
    {
        "&": "#amp;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "#": "#35;",
        "\\": "#92;",
        "`": "#96;",
        ":": "#58;",
        "\n": "<br>",
        "\r": "#13;",  # the HTML a browser draws turns a bare carriage return into \n
    }
)
# What JavaScript's String.trim() removes, which Mermaid applies to every label.
_JS_TRIMMED: Final = "\t\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_LABEL_ENDS: Final = re.compile(f"^[{_JS_TRIMMED}]+|[{_JS_TRIMMED}]+$")


@dataclass(frozen=True, slots=True)
class Node:
    """One node: ``id`` is unique and stable, ``label`` may hold newlines."""

    id: str
    label: str
    style: NodeStyle


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge; ``seen`` says whether the trace used it, ``None`` without a trace."""

    tail: str
    head: str
    kind: EdgeKind
    label: str = ""
    seen: bool | None = None


@dataclass(frozen=True, slots=True)
class DiagramSpec:
    """Everything a diagram shows, in a fixed order: event nodes by name, then handler
    nodes by event and position; edges in the order of their tails."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    start: str | None = None
    """The node id of the start event, drawn at the top; ``None`` when no handler serves it."""

    @property
    def traced(self) -> bool:
        """True when a trace is overlaid."""
        return any(edge.seen is not None for edge in self.edges)


def event_id(name: str) -> str:
    """The node id of event ``name``."""
    return f"event:{name}"


def handler_id(event: str, position: int) -> str:
    """The node id of the handler at ``position`` among the handlers of ``event``."""
    return f"handler:{event}:{position}"


def diagram_spec(
    graph: FlowGraph, overlay: TraceOverlay | None = None, *, start: str | None = "start"
) -> DiagramSpec:
    """Lay out ``graph`` as nodes and edges, with ``overlay``'s figures when given.

    When a handler serves ``start``, handlers no path from it reaches are drawn
    ``unreachable`` (as :func:`~baxiflow.diagrams.validate` reports them).

    >>> from baxiflow.diagrams._flowgraph import FlowGraph, HandlerNode
    >>> spec = diagram_spec(FlowGraph((HandlerNode("start", 0, "go", ("next",), "inferred", True),)))
    >>> [(e.tail, e.head, e.kind) for e in spec.edges]
    [('event:start', 'handler:start:0', 'handles'), ('handler:start:0', 'event:next', 'inferred')]
    """
    served = set(graph.served_events)
    events = set(graph.events)
    if overlay is not None:
        events.update(overlay.events)
        events.update(name for (_, _, name) in overlay.emitted)
    nodes = [
        Node(event_id(name), name, "event" if name in served else "terminal")
        for name in sorted(events)
    ]
    edges = []
    served_start = start is not None and start in served
    reached = graph.reached_from(start) if start is not None and served_start else None
    for handler in graph.handlers:
        stats = None if overlay is None else overlay.handlers.get(handler.key)
        node = _handler_node(handler, stats, traced=overlay is not None)
        if reached is not None and handler.key not in reached:
            node = Node(node.id, node.label, "unreachable")
        nodes.append(node)
        edges.append(_handles_edge(handler, len(graph.handlers_for(handler.event)), stats, overlay))
        edges.extend(_emits_edges(handler, overlay))
    start_id = event_id(start) if start is not None and served_start else None
    return DiagramSpec(tuple(nodes), tuple(edges), start_id)


def _handler_node(handler: HandlerNode, stats: HandlerStats | None, *, traced: bool) -> Node:
    node_id = handler_id(handler.event, handler.position)
    label = _short_name(handler.name)
    if not traced:
        return Node(node_id, label, "handler")
    if stats is None:
        return Node(node_id, f"{label}\nnever called", "never_called")
    figures = f"{stats.calls} call{'s' if stats.calls != 1 else ''}"
    if stats.failures:
        figures += f", {stats.failures} failed"
    if stats.retried:
        figures += f", {stats.retried} retried"
    if stats.mean_duration is not None:
        figures += f", mean {format_duration(stats.mean_duration)}"
    return Node(node_id, f"{label}\n{figures}", "raised" if stats.failures else "handler")


def _handles_edge(
    handler: HandlerNode, siblings: int, stats: HandlerStats | None, overlay: TraceOverlay | None
) -> Edge:
    parts = [str(handler.position + 1)] if siblings > 1 else []
    seen = None
    if overlay is not None:
        seen = stats is not None
        if stats is not None:
            parts.append(f"{_TIMES}{stats.calls}")
    tail, head = event_id(handler.event), handler_id(handler.event, handler.position)
    return Edge(tail, head, "handles", " ".join(parts), seen)


def _emits_edges(handler: HandlerNode, overlay: TraceOverlay | None) -> list[Edge]:
    tail = handler_id(handler.event, handler.position)
    kind: EdgeKind = "declared" if handler.source == "declared" else "inferred"
    counts = {} if overlay is None else overlay.emitted
    names = set(handler.emits)
    observed = sorted(name for (e, p, name) in counts if (e, p) == handler.key) if counts else []
    edges = []
    for name in sorted(names.union(observed)):
        count = counts.get((handler.event, handler.position, name), 0)
        edge_kind: EdgeKind = kind if name in names else "observed"
        label = f"{_TIMES}{count}" if count else ""
        seen = None if overlay is None else count > 0
        edges.append(Edge(tail, event_id(name), edge_kind, label, seen))
    return edges


def _short_name(qualname: str) -> str:
    # Handlers defined inside functions (tests, notebooks' factories) read better without the
    # enclosing function's name; traces and registrations keep the full qualified name.
    return qualname.rpartition(".<locals>.")[2]


# DOT --------------------------------------------------------------------------------------


def to_dot(spec: DiagramSpec, *, legend: bool = True, rankdir: str = "TB") -> str:
    """The DOT source of ``spec``: a ``digraph`` with one statement per line.

    Args:
        spec: What to draw.
        legend: Add a legend cluster naming the node and edge styles used.
        rankdir: Layout direction, one of :data:`RANKDIRS`.

    >>> from baxiflow.diagrams._flowgraph import FlowGraph
    >>> for line in to_dot(diagram_spec(FlowGraph(())), legend=False).splitlines():
    ...     print(line.strip())
    digraph {
    graph [fontname="Helvetica" fontsize="10" rankdir="TB"]
    node [fontname="Helvetica" fontsize="11"]
    edge [arrowsize="0.7" fontname="Helvetica" fontsize="9"]
    }
    """
    return "digraph {\n" + "".join(_dot_lines(spec, legend=legend, rankdir=rankdir)) + "}\n"


def _dot_lines(spec: DiagramSpec, *, legend: bool = True, rankdir: str = "TB") -> list[str]:
    """The lines between ``digraph {`` and ``}`` of :func:`to_dot`, each ending in a newline."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}; got {rankdir!r}")
    graph = {"fontname": _FONT, "fontsize": "10", "rankdir": rankdir}
    if len(spec.nodes) > FAST_LAYOUT_NODES:
        graph["nslimit"] = "2"
    if len(spec.nodes) > STRAIGHT_EDGES_NODES:
        graph["splines"] = "line"
    lines = [
        _statement("graph", graph),
        _statement("node", {"fontname": _FONT, "fontsize": "11"}),
        _statement("edge", {"arrowsize": "0.7", "fontname": _FONT, "fontsize": "9"}),
    ]
    if spec.start is not None:
        # The start event alone on the top rank, even when a loop leads back to it; the
        # edges into it then leave the ranking to the others (drawn upwards).
        lines.append(f'\t{{ rank="source" {_quote(spec.start)} }}\n')
    lines.extend(_statement(_quote(n.id), _node_attrs(n.style, n.label)) for n in spec.nodes)
    lines.extend(
        _statement(
            f"{_quote(e.tail)} -> {_quote(e.head)}",
            {**_edge_attrs(e), "constraint": "false"} if e.head == spec.start else _edge_attrs(e),
        )
        for e in spec.edges
    )
    if legend and spec.nodes:
        lines.extend(_legend(spec))
    return lines


def _node_attrs(style: NodeStyle, label: str) -> dict[str, str]:
    return {"label": label, **_NODE_ATTRS[style]}


def _edge_attrs(edge: Edge) -> dict[str, str]:
    # An external label: a `label` makes dot lay each labelled edge out as an extra node,
    # which triples the time of the embedded renderer on a 50-handler registry.
    attrs = {"xlabel": edge.label} if edge.label else {}
    attrs.update(_EDGE_ATTRS[edge.kind])
    if edge.seen is not None:
        attrs.update(_SEEN if edge.seen else _UNSEEN)
    return attrs


def _edge_legend(spec: DiagramSpec) -> list[tuple[EdgeKind | Literal["unseen"], str]]:
    """The edge samples a legend of ``spec`` shows, each a kind and its words."""
    kinds = {edge.kind for edge in spec.edges}
    samples: list[tuple[EdgeKind | Literal["unseen"], str]] = []
    for kind, text in _EDGE_LEGEND.items():
        if kind in kinds:
            numbered = kind == "handles" and any(
                edge.kind == "handles" and edge.label[:1].isdigit() for edge in spec.edges
            )
            samples.append((kind, text + _RUN_ORDER if numbered else text))
    # A trace's counts are edge labels; only the edges it never used look different.
    if any(edge.seen is False for edge in spec.edges):
        samples.append(("unseen", _UNSEEN_LEGEND))
    return samples


_LEGEND_ROW: Final = 7
"""Samples a legend row holds: one row under most drawings, two for a trace of every kind."""


def _legend(spec: DiagramSpec) -> list[str]:
    """One row of samples in a light box under the drawing, only of what the drawing uses."""
    styles = {node.style for node in spec.nodes}
    lines = [
        "\tsubgraph cluster_legend {\n",
        "\t" + _statement("graph", {"color": "#cccccc", "margin": "4"}),
        "\t" + _statement("node", {"fontsize": "9", "height": "0.3", "width": "0.3"}),
    ]
    # Each sample is one or two nodes, left to right.
    samples: list[list[str]] = []
    for style, text in _NODE_LEGEND.items():
        if style in styles:
            name = _quote(f"legend:{style}")
            attrs = {**_node_attrs(style, text), "margin": "0.08,0.02"}
            lines.append("\t" + _statement(name, attrs))
            samples.append([name])
    seen = _SEEN if spec.traced else {}
    for key, text in _edge_legend(spec):
        attrs = dict(_UNSEEN) if key == "unseen" else {**_EDGE_ATTRS[key], **seen}
        tail, head = _quote(f"legend:{key}"), _quote(f"legend:{key}:end")
        # Its words above the arrow, which is as long as they are wide: long enough to show
        # a dash pattern, and no wider than the words.
        end = {"height": "0.01", "label": "", "shape": "point", "style": "invis", "width": "0.01"}
        lines.append("\t" + _statement(tail, end))
        lines.append("\t" + _statement(head, end))
        lines.append("\t" + _statement(f"{tail} -> {head}", {"label": text, **attrs}))
        samples.append([tail, head])
    # Rows of equal length, as few as hold every sample; each row under the middle of the
    # one above, the first under the middle of the drawing's ends.
    per_row = -(-len(samples) // -(-len(samples) // _LEGEND_ROW))
    rows = [samples[i : i + per_row] for i in range(0, len(samples), per_row)]
    # Invisible edges keep the samples in order, left to right; at length 0 they add no
    # space to the row's, which holds its nodes nodesep apart.
    order = {"minlen": "0", "style": "invis"}
    for row in rows:
        names = [name for sample in row for name in sample]
        lines.append(f'\t\t{{ rank="same" {" ".join(names)} }}\n')
        for left, right in itertools.pairwise(row):
            lines.append("\t" + _statement(f"{left[-1]} -> {right[0]}", order))
    middles = [row[len(row) // 2][0] for row in rows]
    for above, below in itertools.pairwise(middles):
        lines.append("\t" + _statement(f"{above} -> {below}", {"style": "invis"}))
    lines.append("\t}\n")
    tails = {edge.tail for edge in spec.edges}
    ends = [node.id for node in spec.nodes if node.id not in tails] or [n.id for n in spec.nodes]
    lines.extend(_statement(f"{_quote(end)} -> {middles[0]}", {"style": "invis"}) for end in ends)
    return lines


def _statement(target: str, attrs: Mapping[str, str]) -> str:
    if not attrs:
        return f"\t{target}\n"
    listed = " ".join(
        f"{key}={_quote(value.replace('&', '&amp;') if key in _DECODED else value)}"
        for key, value in _ordered(attrs)
    )
    return f"\t{target} [{listed}]\n"


def _ordered(attrs: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    # The label first, where a reader looks; the rest sorted so the text never depends on
    # the order styles were merged in.
    if "label" in attrs:
        yield "label", attrs["label"]
    yield from sorted((k, v) for k, v in attrs.items() if k != "label")


def _quote(text: str) -> str:
    """A DOT double-quoted string; newlines become Graphviz's ``\\n`` line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# Mermaid ----------------------------------------------------------------------------------


def to_mermaid(spec: DiagramSpec, *, legend: bool = True, rankdir: str = "TB") -> str:
    """Mermaid ``flowchart`` text of ``spec``, for Markdown docs.

    Inferred edges are dotted (``-.->``), edges seen only in a trace thick (``==>``);
    edges a trace never used are grey. The legend, a ``Legend`` subgraph, shows the node
    styles and edge kinds the drawing uses.

    >>> spec = DiagramSpec((Node("e", "start", "event"), Node("h", "greet", "handler")),
    ...                    (Edge("e", "h", "handles"),))
    >>> print(to_mermaid(spec))
    flowchart TB
        n0(["start"])
        n1["greet"]
        n0 --> n1
        subgraph key [Legend]
            key0(["event"])
            key1["handler"]
            key2[" "] -->|"handles"| key3[" "]
        end
        classDef event fill:#e8f0fe,stroke:#4a6fa5
        classDef handler fill:#fff4d6,stroke:#b08800
        classDef blank fill:none,stroke:none
        class n0,key0 event
        class n1,key1 handler
        class key2,key3 blank
    <BLANKLINE>
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}; got {rankdir!r}")
    ids = {node.id: f"n{index}" for index, node in enumerate(spec.nodes)}
    lines = [f"flowchart {rankdir}"]
    for node in spec.nodes:
        label = _mermaid_text(node.label)
        shape = f'(["{label}"])' if node.style in ("event", "terminal") else f'["{label}"]'
        lines.append(f"    {ids[node.id]}{shape}")
    unseen = []
    for index, edge in enumerate(spec.edges):
        arrow = _MERMAID_ARROWS[edge.kind]
        if edge.label:
            arrow += f'|"{_mermaid_text(edge.label)}"|'
        lines.append(f"    {ids[edge.tail]} {arrow} {ids[edge.head]}")
        if edge.seen is False:
            unseen.append(str(index))
    members: dict[str, list[str]] = {}
    for node in spec.nodes:
        members.setdefault(node.style, []).append(ids[node.id])
    if legend and spec.nodes:
        samples, unseen_sample = _mermaid_legend(spec, members, first_edge=len(spec.edges))
        lines.extend(samples)
        if unseen_sample is not None:
            unseen.append(unseen_sample)
    lines.extend(f"    classDef {style} {_MERMAID_CLASSES[style]}" for style in members)
    lines.extend(f"    class {','.join(ids)} {style}" for style, ids in members.items())
    if unseen:
        lines.append(f"    linkStyle {','.join(unseen)} stroke:#bbbbbb")
    return "\n".join(lines) + "\n"


def _mermaid_legend(
    spec: DiagramSpec, members: dict[str, list[str]], first_edge: int
) -> tuple[list[str], str | None]:
    """The legend subgraph's lines, and the link index of its "not seen" sample, if any.

    Adds the legend's nodes to ``members`` (a sample node to its style's class, the blank
    ends of edge samples to the ``blank`` class).
    """
    # Ids that never end in "end", which Mermaid's lexer may take for the keyword.
    lines = ["    subgraph key [Legend]"]
    names = (f"key{index}" for index in itertools.count())
    for style, text in _NODE_LEGEND.items():
        if style in members:
            name = next(names)
            label = _mermaid_text(text)
            shape = f'(["{label}"])' if style in ("event", "terminal") else f'["{label}"]'
            lines.append(f"        {name}{shape}")
            members[style].append(name)
    legend = _edge_legend(spec)
    samples = [(_MERMAID_ARROWS["handles" if k == "unseen" else k], text) for k, text in legend]
    # The "not seen" sample, always last, is grey like the edges a trace never used.
    unseen = str(first_edge + len(samples) - 1) if legend and legend[-1][0] == "unseen" else None
    blank = members.setdefault("blank", []) if samples else []
    for arrow, text in samples:
        tail, head = next(names), next(names)
        lines.append(f'        {tail}[" "] {arrow}|"{_mermaid_text(text)}"| {head}[" "]')
        blank.extend((tail, head))
    lines.append("    end")
    return lines, unseen


def _mermaid_text(text: str) -> str:
    escaped = text.translate(_MERMAID_ESCAPES)
    # Mermaid trims every label; coded, the whitespace at its ends shows as written.
    return _LABEL_ENDS.sub(lambda ends: "".join(f"#{ord(c)};" for c in ends[0]), escaped)
