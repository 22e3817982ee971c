"""Saving a diagram as PNG works offline without Graphviz: resvg rasterises the SVG, labels drawn."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from PIL import Image

from baxiflow import MissingDependencyError, WorkflowEvent, WorkflowManager, diagram
from baxiflow.diagrams._png import svg_to_png

SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide any system Graphviz, even where it is installed: PATH is one empty directory."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def helpdesk() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start", emits=["search"])
    async def classify_question(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("search")

    @workflow.on("search", emits=["answered"])
    async def search_the_manual(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("answered")

    return workflow


def labels(svg: str) -> list[tuple[str, float, float, float, str]]:
    """Each text of a Graphviz SVG: (text, x, y, font size, anchor) in page points."""
    root = ElementTree.fromstring(svg)
    graph = root.find(f"{SVG_NAMESPACE}g")
    assert graph is not None
    found = re.search(r"translate\(([-\d.]+) ([-\d.]+)\)", graph.attrib["transform"])
    assert found is not None
    shift_x, shift_y = float(found[1]), float(found[2])
    return [
        (
            text.text or "",
            float(text.attrib["x"]) + shift_x,
            float(text.attrib["y"]) + shift_y,
            float(text.attrib["font-size"]),
            text.attrib.get("text-anchor", "start"),
        )
        for text in root.iter(f"{SVG_NAMESPACE}text")
    ]


def dark_pixels(image: Image.Image, box: tuple[float, float, float, float]) -> int:
    """Pixels darker than any fill or stroke the diagram uses: only text is drawn that dark."""
    grey = image.convert("L").crop(tuple(round(edge) for edge in box))
    return sum(grey.histogram()[:110])


def test_a_diagram_saves_as_png_without_dot_with_every_label_drawn(tmp_path: Path) -> None:
    picture = diagram(helpdesk())

    path = picture.save(tmp_path / "flow.png")

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert picture.rendered_by == "embedded"
    svg = picture.svg()
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    assert size is not None
    image = Image.open(io.BytesIO(data))
    scale = 192 / 72  # the default dpi: twice a screen's, so 11 pt labels are ~29 px high
    assert image.size == pytest.approx((float(size[1]) * scale, float(size[2]) * scale), abs=1.5)
    texts = labels(svg)
    assert {"classify_question", "search_the_manual", "answered"} <= {t[0] for t in texts}
    for text, x, y, font_size, anchor in texts:
        width = len(text) * font_size * 0.5
        left = x - width / 2 if anchor == "middle" else x
        box = (left * scale, (y - font_size * 0.8) * scale, (left + width) * scale, y * scale)
        # A drawn label darkens a good share of its box; a missing font leaves it blank.
        assert dark_pixels(image, box) > len(text.strip()) * font_size * 0.8, text
    # Outside the labels the picture is mostly white background.
    assert dark_pixels(image, (0, 0, *image.size)) < image.size[0] * image.size[1] * 0.05


def test_dpi_sets_the_pixels_per_inch_of_a_saved_png(tmp_path: Path) -> None:
    picture = diagram(helpdesk())

    sharp = Image.open(io.BytesIO(picture.save(tmp_path / "sharp.png").read_bytes()))
    screen = Image.open(io.BytesIO(picture.save(tmp_path / "screen.png", dpi=96).read_bytes()))

    assert screen.size[0] == pytest.approx(sharp.size[0] / 2, abs=1)
    assert screen.size[1] == pytest.approx(sharp.size[1] / 2, abs=1)
    with pytest.raises(ValueError, match="dpi must be a positive number"):
        picture.save(tmp_path / "flat.png", dpi=0)


def test_labels_in_characters_beyond_latin_are_drawn_from_the_shipped_font() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200pt" height="40pt" '
        'viewBox="0 0 200 40"><text x="4" y="28" font-family="Helvetica,sans-Serif" '
        'font-size="20">µs → Ωmega…</text></svg>'
    )
    image = Image.open(io.BytesIO(svg_to_png(svg, dpi=72)))

    assert dark_pixels(image, (0, 0, *image.size)) > 200


def test_without_resvg_saving_png_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # as if not installed
    picture = diagram(helpdesk())

    with pytest.raises(MissingDependencyError, match=r"pip install 'baxiflow\[notebook\]'") as e:
        picture.save(tmp_path / "flow.png")

    assert "'resvg-py' package" in str(e.value)
    assert not (tmp_path / "flow.png").exists()
    assert picture.save(tmp_path / "flow.svg").read_text().lstrip().startswith("<?xml")
