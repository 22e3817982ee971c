"""The one place that knows resvg-py: a diagram's SVG rasterised to PNG, offline.

resvg draws text only in fonts it is given, and Graphviz names its font
``"Helvetica,sans-Serif"``; so the sans-serif family is DejaVu Sans, from a subset shipped in
``baxiflow/data/fonts`` (``tools/make_diagram_font.py``), and the system's fonts are loaded
too for characters the subset lacks. Labels render the same on a machine with no fonts.

>>> svg = (
...     '<svg xmlns="http://www.w3.org/2000/svg" width="72pt" height="36pt" viewBox="0 0 72 36">'
...     '<text x="4" y="24" font-family="Helvetica,sans-Serif" font-size="14">start</text></svg>'
... )
>>> png = svg_to_png(svg, dpi=144)
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", png_size(png)
(True, (144, 72))
"""

from __future__ import annotations

import re
import struct
from importlib.resources import as_file, files
from typing import Final

from baxiflow._optional import import_optional

__all__ = ["PNG_DPI", "png_size", "svg_to_png"]

PNG_DPI: Final = 192.0
"""Pixels per inch of a saved PNG: twice a screen's 96, so 11 pt labels are about 29 px high."""

_FONT_FAMILY: Final = "DejaVu Sans"
_FONT_FILE: Final = files("baxiflow") / "data" / "fonts" / "DejaVuSans-subset.ttf"
# CSS generic family names are case-insensitive, resvg matches only the lower-case ones.
_GENERIC_FAMILY: Final = re.compile(r"\b(sans-serif|serif|monospace)\b", re.IGNORECASE)


def svg_to_png(svg: str, *, dpi: float = PNG_DPI) -> bytes:
    """Rasterise ``svg`` to PNG bytes at ``dpi`` pixels per inch (72 pt to the inch).

    Raises:
        MissingDependencyError: resvg-py is not installed (the ``notebook`` extra brings it).
        ValueError: ``dpi`` is not a positive number, or resvg cannot read ``svg``.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, int | float) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, such as 96 or 192; got {dpi!r}")
    resvg = import_optional(
        "resvg_py", feature="Saving a diagram as PNG without the dot program", package="resvg-py"
    )
    with as_file(_FONT_FILE) as font:
        png: bytes = resvg.svg_to_bytes(
            svg_string=_GENERIC_FAMILY.sub(lambda found: found[1].lower(), svg),
            dpi=float(dpi),
            font_files=[str(font)],
            font_family=_FONT_FAMILY,
            sans_serif_family=_FONT_FAMILY,
            background="white",
        )
    return png


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height in pixels, read from a PNG's header."""
    width, height = struct.unpack(">II", png[16:24])
    return width, height
