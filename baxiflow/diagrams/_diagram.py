"""Draw a workflow's handler registry, with an observed run overlaid, as a Graphviz diagram.

In a notebook the diagram shows as SVG; it renders with no system Graphviz and no network
(see :mod:`baxiflow.diagrams._render`), and when rendering fails anyway it shows its DOT source and
the reason instead of raising.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent("greeted")
>>> picture = diagram(workflow)
>>> picture
<Diagram: 2 events, 1 handler, 2 edges>
>>> '"handler:start:0" -> "event:greeted"' in picture.source
True
>>> sorted(picture._repr_mimebundle_())
['image/svg+xml', 'text/plain']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from baxiflow._optional import import_optional
from baxiflow._text import plural
from baxiflow.diagrams._flowgraph import Registrations, flow_graph
from baxiflow.diagrams._overlay import TraceLike, trace_overlay
from baxiflow.diagrams._png import PNG_DPI
from baxiflow.diagrams._render import RENDERERS, Rendered, Renderer, render
from baxiflow.diagrams._source import DiagramSpec, diagram_spec, to_dot, to_mermaid

__all__ = ["Diagram", "diagram"]

_SVG = "image/svg+xml"
_SVG_SIZE = re.compile(
    r'<svg\b[^>]*?(?P<size>width="(?P<width>[\d.]+)pt" height="(?P<height>[\d.]+)pt")'
)
_TEXT_SUFFIXES = ("dot", "gv", "mmd")


def diagram(
    workflow: Registrations,
    trace: TraceLike | None = None,
    *,
    infer: bool = True,
    legend: bool = True,
    rankdir: str = "TB",
    renderer: Renderer = "auto",
    start: str | None = "start",
    scale: float = 1.0,
) -> Diagram:
    """Draw ``workflow``'s events and handlers, with ``trace``'s runs overlaid when given.

        Event nodes are ellipses, handler nodes rounded boxes. An event points to its handlers
        (numbered in run order when it has several); a handler points to the events it emits,
        known from its ``emits=`` declaration (solid), else from its source (dashed, see
        :func:`~baxiflow.diagrams.infer_emits`), or only from the trace (dotted). With a trace,
        edges carry counts, handlers their calls and mean duration; handlers that raised are
        red and handlers never called grey. Events no handler serves have a double border.
    The ``start`` event is drawn at the top, and handlers no path from it reaches are dashed.

    In a notebook the drawing keeps its natural size, where labels are 12 to 15 px high; a
    drawing wider than the output area scrolls rather than shrinking its text. ``scale``
    resizes the shown drawing (``0.5`` for an overview); saved files keep the natural size.

        Args:
            workflow: The ``WorkflowManager`` to draw.
            trace: Recorded runs (a :class:`baxiflow.trace.Trace`, or any object with its
                ``records`` and ``spans`` rows).
            infer: Read handler sources for undeclared ``emits``.
            legend: Add a legend of the styles used.
            rankdir: Layout direction: ``"TB"``, ``"LR"``, ``"BT"`` or ``"RL"``.
            renderer: ``"auto"``, ``"dot"`` or ``"embedded"`` (see :mod:`baxiflow.diagrams._render`).
            start: The event runs start from; ``None`` to mark no start event.
            scale: How much to enlarge (above 1) or shrink (below 1) the drawing shown.

        Raises:
            TypeError: ``workflow`` has no ``registrations()`` or ``trace`` lacks its rows.
            ValueError: ``rankdir`` or ``renderer`` is not one of the valid choices, or
                ``scale`` is not a positive number.
    """
    if not callable(getattr(workflow, "registrations", None)):
        raise TypeError(f"diagram() takes a WorkflowManager, got {type(workflow).__name__}")
    graph = flow_graph(workflow, infer=infer)
    overlay = None if trace is None else trace_overlay(trace, graph)
    return Diagram(
        diagram_spec(graph, overlay, start=start),
        legend=legend,
        rankdir=rankdir,
        renderer=renderer,
        scale=scale,
    )


class Diagram:
    """A drawn workflow: DOT source, a ``graphviz.Digraph`` to adjust, SVG in Jupyter.

    Build one with :func:`diagram`. Rendering happens on display, :meth:`pipe`,
    :meth:`svg` or :meth:`save`; the last result is kept while the source is unchanged.

    Attributes:
        spec: What is drawn (nodes and edges), see :mod:`baxiflow.diagrams._source`.
        renderer: Which renderer to use, see :mod:`baxiflow.diagrams._render`.
        scale: The size shown in a notebook, relative to the natural size.
    """

    __slots__ = ("_digraph", "_dot", "_last", "_legend", "_rankdir", "renderer", "scale", "spec")

    def __init__(
        self,
        spec: DiagramSpec,
        *,
        legend: bool = True,
        rankdir: str = "TB",
        renderer: Renderer = "auto",
        scale: float = 1.0,
    ) -> None:
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}; got {renderer!r}")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise ValueError(f"scale must be a positive number, such as 0.5 or 2; got {scale!r}")
        self.scale = float(scale)
        self.spec = spec
        self.renderer: Renderer = renderer
        self._dot = to_dot(spec, legend=legend, rankdir=rankdir)
        self._rankdir = rankdir
        self._legend = legend
        self._digraph: Any = None
        self._last: tuple[tuple[str, str, float], Rendered] | None = None

    def __repr__(self) -> str:
        events = sum(1 for n in self.spec.nodes if n.style in ("event", "terminal"))
        handlers = len(self.spec.nodes) - events
        edges = len(self.spec.edges)
        traced = ", trace overlaid" if self.spec.traced else ""
        return (
            f"<Diagram: {plural(events, 'event')}, {plural(handlers, 'handler')}, "
            f"{plural(edges, 'edge')}{traced}>"
        )

    def __str__(self) -> str:
        """The flow as text, for ``print(diagram)`` in a terminal: one line per edge.

        Events read ``(name)``, handlers ``[name]``; an edge's label (its order, or the
        trace's counts) follows in brackets.
        """
        shown = {
            node.id: (f"({first})" if node.style in ("event", "terminal") else f"[{first}]")
            for node in self.spec.nodes
            for first in [node.label.splitlines()[0] if node.label else node.id]
        }
        lines = [repr(self)]
        for edge in self.spec.edges:
            if edge.tail not in shown or edge.head not in shown:
                continue  # the legend's sample edges
            label = " ".join(edge.label.split())
            lines.append(
                f"  {shown[edge.tail]} -> {shown[edge.head]}" + (f"  [{label}]" if label else "")
            )
        return "\n".join(lines)

    @property
    def source(self) -> str:
        """The DOT source, including any change made through :attr:`digraph`."""
        if self._digraph is not None:
            source: str = self._digraph.source
            return source
        return self._dot

    @property
    def digraph(self) -> Any:
        """The ``graphviz.Digraph`` holding this diagram's statements; change it to restyle.

        Raises:
            MissingDependencyError: The ``graphviz`` package is not installed.
        """
        if self._digraph is None:
            graphviz = import_optional("graphviz", feature="Diagram.digraph")
            # The statements between `digraph {` and `}`, so both give the same source.
            self._digraph = graphviz.Digraph(body=self._dot.splitlines(keepends=True)[1:-1])
        return self._digraph

    def to_mermaid(self) -> str:
        """The diagram as Mermaid ``flowchart`` text, for Markdown docs."""
        return to_mermaid(self.spec, legend=self._legend, rankdir=self._rankdir)

    def pipe(self, format: str = "svg", *, dpi: float = PNG_DPI) -> bytes:
        """Render to ``format`` and return the bytes; ``dpi`` sets a PNG's pixels per inch.

        Raises:
            RenderError: No renderer could make it (without ``dot``: SVG and PNG only).
            MissingDependencyError: PNG needs resvg-py (the ``notebook`` extra).
        """
        key = (self.source, format, float(dpi))
        if self._last is None or self._last[0] != key:
            rendered = render(key[0], format=format, renderer=self.renderer, dpi=dpi)
            self._last = (key, rendered)
        return self._last[1].data

    @property
    def rendered_by(self) -> str | None:
        """``"dot"`` or ``"embedded"``: the renderer of the last render, ``None`` before one."""
        return None if self._last is None else self._last[1].renderer

    def svg(self) -> str:
        """Render as SVG text.

        Raises:
            RenderError: No renderer could make it.
        """
        return self.pipe("svg").decode("utf-8")

    def save(self, path: str | Path, *, format: str | None = None, dpi: float = PNG_DPI) -> Path:
        """Write the diagram to ``path`` and return it.

        The format comes from ``format`` or else the file's suffix: ``svg``, ``png`` (the SVG
        rasterised by resvg at ``dpi`` pixels per inch, offline, with or without Graphviz),
        any other format the ``dot`` program makes (such as ``pdf``), ``dot``/``gv`` for the
        DOT source, ``mmd`` for Mermaid text. Files keep the natural size, whatever ``scale``.

        Raises:
            ValueError: No format given and ``path`` has no suffix, or ``dpi`` is not positive.
            RenderError: The format needs rendering and no renderer could make it.
            MissingDependencyError: PNG needs resvg-py (the ``notebook`` extra).
        """
        target = Path(path)
        chosen = format or target.suffix.lstrip(".").lower()
        if not chosen:
            raise ValueError(
                f"cannot tell the format of {str(target)!r}: give a suffix or format=, "
                f"such as svg, png, {', '.join(_TEXT_SUFFIXES)}"
            )
        if chosen in ("dot", "gv"):
            target.write_text(self.source, encoding="utf-8")
        elif chosen == "mmd":
            target.write_text(self.to_mermaid(), encoding="utf-8")
        else:
            target.write_bytes(self.pipe(chosen, dpi=dpi))
        return target

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, str]:
        bundle = {"text/plain": repr(self)}
        if (include is not None and _SVG not in include) or (exclude and _SVG in exclude):
            return bundle
        # Display must never raise: a broken diagram still shows what it would have drawn.
        try:
            bundle[_SVG] = _scaled(self.svg(), self.scale)
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            bundle["text/plain"] = f"Diagram not rendered: {reason}\n{self._safe_source()}"
        return bundle

    def _safe_source(self) -> str:
        try:
            return self.source
        except Exception:
            return self._dot


def _scaled(svg: str, scale: float) -> str:
    """The drawing shown ``scale`` times its natural size; the ``viewBox`` keeps it whole.

    JupyterLab shows SVG output as an image at its own size, in an output area that scrolls
    sideways, so a wide drawing stays readable instead of shrinking its labels.

    >>> _scaled('<svg width="960pt" height="300pt" viewBox="0 0 960 300">', 0.5)
    '<svg width="480pt" height="150pt" viewBox="0 0 960 300">'
    >>> _scaled('<svg width="200pt" height="100pt" viewBox="0 0 200 100">', 1.0)
    '<svg width="200pt" height="100pt" viewBox="0 0 200 100">'
    """
    root = _SVG_SIZE.search(svg)
    if root is None or scale == 1:
        return svg
    width, height = float(root["width"]) * scale, float(root["height"]) * scale
    size = f'width="{width:.4g}pt" height="{height:.4g}pt"'
    return svg[: root.start("size")] + size + svg[root.end("size") :]
