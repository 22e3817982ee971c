"""The Mermaid text, read by Mermaid itself.

Runs Mermaid's own parser under Node.js (``tests/mermaid/parse.mjs``), so it needs ``node``
and ``npm ci --prefix tests/mermaid``; ``.ci/run`` does both and runs these tests with
``pytest -m mermaid``. The drawing tests in ``test_diagram.py`` model Mermaid; these check
the model's conclusions against the real parser.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_diagram import TRICKY_NAMES, fixed_registry, traced_registry, tricky_registry, two_runs

from baxiflow import diagram
from baxiflow.diagrams import DiagramSpec, Edge, Node, to_mermaid

pytestmark = pytest.mark.mermaid

PARSER = Path(__file__).parent / "mermaid"


def read_by_mermaid(texts: list[str]) -> list[dict[str, Any]]:
    """What Mermaid reads in each text: vertices, edges and subgraphs, or an error."""
    node = shutil.which("node")
    if node is None or not (PARSER / "node_modules" / "mermaid").is_dir():
        pytest.fail("needs Node.js and `npm ci --prefix tests/mermaid` (as .ci/run does)")
    done = subprocess.run(
        [node, str(PARSER / "parse.mjs")],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


async def test_mermaid_reads_every_node_edge_class_and_the_legend_as_drawn() -> None:
    workflow = traced_registry()
    pictures = [
        diagram(fixed_registry()),
        diagram(fixed_registry(), rankdir="LR", legend=False),
        diagram(workflow, trace=await two_runs(workflow)),
        diagram(tricky_registry()),
    ]

    results = read_by_mermaid([picture.to_mermaid() for picture in pictures])

    for picture, read in zip(pictures, results, strict=True):
        assert "error" not in read, read
        spec = picture.spec
        vertices = {id_: (text, classes) for id_, text, classes in read["vertices"]}
        for index, node in enumerate(spec.nodes):
            assert vertices.pop(f"n{index}") == (node.label, [node.style])
        drawn_edges = read["edges"][: len(spec.edges)]
        ids = {node.id: f"n{index}" for index, node in enumerate(spec.nodes)}
        assert [(e[0], e[1], e[2]) for e in drawn_edges] == [
            (ids[edge.tail], ids[edge.head], edge.label) for edge in spec.edges
        ]
        if not vertices:  # legend=False
            assert read["subgraphs"] == [] and len(read["edges"]) == len(spec.edges)
            continue
        ((key, title, members),) = read["subgraphs"]
        assert (key, title, sorted(members)) == ("key", "Legend", sorted(vertices))
        samples = {text for text, classes in vertices.values() if classes != ["blank"]}
        assert "event" in samples and "handler" in samples


async def test_mermaid_greys_exactly_the_edges_a_trace_never_used() -> None:
    workflow = traced_registry()
    picture = diagram(workflow, trace=await two_runs(workflow))

    (read,) = read_by_mermaid([picture.to_mermaid()])

    grey = ["stroke:#bbbbbb", "fill:none"]
    unused = [edge.seen is False for edge in picture.spec.edges]
    assert [edge[4] == grey for edge in read["edges"][: len(unused)]] == unused
    assert read["edges"][-1][2] == "not in trace" and read["edges"][-1][4] == grey


def names_to_try() -> list[str]:
    """The tricky names, then random ones over the characters Mermaid treats specially."""
    special = [*"\"'`#;:&<>\\/|[](){}-=.,!?*%_~^ \n\t", "br", "end", "amp", "quot", "35"]
    spaces = ["\r", "\v", "\u00a0", "\u2003", "\u3000", "\ufeff", "\u2028"]
    letters = ["a", "Z", "0", "\N{SNOWMAN}", "\N{COMBINING ACUTE ACCENT}", "\u00e9"]
    alphabet = [*special, *spaces, *letters]
    rng = random.Random(20261129)
    randoms = ["".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(300)]
    return [*TRICKY_NAMES, "end", "graph", "style", "click", "o", "x", *randoms]


def test_mermaid_itself_draws_every_name_as_written() -> None:
    names = names_to_try()
    texts = [
        to_mermaid(
            DiagramSpec(
                (Node("e", name, "event"), Node("h", name, "handler")),
                (Edge("e", "h", "handles", name),),
            ),
            legend=False,
        )
        for name in names
    ]

    results = read_by_mermaid(texts)

    # Each name as an event, a handler and an edge label: (name, what Mermaid drew).
    drawn = [
        (
            name,
            read.get("error") or [text for _, text, _ in read["vertices"]] + [read["edges"][0][2]],
        )
        for name, read in zip(names, results, strict=True)
    ]
    wrong = [(name, got) for name, got in drawn if got != [name] * 3]
    assert not wrong, f"{len(wrong)} names drawn otherwise, e.g. {wrong[:10]!r}"
