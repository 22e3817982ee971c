"""The tutorial notebooks are tests too: committed outputs, assert cells, a sanitizer, nbval."""

from __future__ import annotations

import ast
import configparser
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IGNORE = "# NBVAL_IGNORE_OUTPUT"


def code_cells(path: Path) -> list[dict[str, Any]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [cell for cell in cells if cell["cell_type"] == "code"]


def source(cell: dict[str, Any]) -> str:
    return "".join(cell["source"])


def test_there_are_the_eight_tutorials_in_reading_order() -> None:
    assert [path.name[:3] for path in NOTEBOOKS] == [
        "01_",
        "02_",
        "03_",
        "04_",
        "05_",
        "06_",
        "07_",
        "08_",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_each_tutorial_is_committed_executed_in_order_with_outputs_and_no_errors(
    path: Path,
) -> None:
    cells = code_cells(path)

    counts = [cell["execution_count"] for cell in cells]
    assert counts == list(range(1, len(cells) + 1))
    assert not [o for cell in cells for o in cell["outputs"] if o["output_type"] == "error"]
    assert any(cell["outputs"] for cell in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_each_tutorial_asserts_what_it_shows(path: Path) -> None:
    assert any(
        line.lstrip().startswith("assert ")
        for cell in code_cells(path)
        for line in source(cell).splitlines()
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_output_ignore_markers_stand_alone_on_their_first_line(path: Path) -> None:
    for cell in code_cells(path):
        lines = source(cell).splitlines()
        marked = [line for line in lines if "NBVAL" in line]
        if marked:
            assert marked == [IGNORE], lines[:3]
            assert lines[0] == IGNORE, lines[:3]


def sanitize(text: str) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "notebooks" / "nbval_sanitize.cfg", encoding="utf-8")
    for section in parser.sections():
        text = re.sub(parser[section]["regex"], parser[section]["replace"], text)
    return text


@pytest.mark.parametrize(
    ("variable", "masked"),
    [
        ("run 9f3a1c07d2e4b865-12 ended", "run RUN_ID ended"),
        (
            "workflow ok: 7 events, 0 errors, elapsed=0.02s",
            "workflow ok: 7 events, 0 errors, elapsed=DURATION",
        ),
        ("search: 2 calls, mean 12.5 ms", "search: 2 calls, mean DURATION"),
        ("workflow ok: 3 events, elapsed=840 µs", "workflow ok: 3 events, elapsed=DURATION"),
        # A column of times is as wide as its longest: 98.7 ms, then 103.2 ms, shifts it.
        ("  fetch  51.0 ms\n  runs   98.7 ms", "  fetch DURATION\n  runs DURATION"),
        ("  fetch   51.0 ms\n  runs   103.2 ms", "  fetch DURATION\n  runs DURATION"),
        ("started_at 1764150000.25", "started_at TIMESTAMP"),
        ("saved to /tmp/pytest-of-me/trace.jsonl", "saved to PATH"),
        ("<Trace object at 0x7f4aa4e97f10>", "<Trace object at 0xADDRESS>"),
    ],
)
def test_the_nbval_sanitizer_masks_times_ids_and_paths(variable: str, masked: str) -> None:
    assert sanitize(variable) == masked


def test_the_sanitizer_leaves_deterministic_counts_alone() -> None:
    text = "workflow error: 8 events, 1 errors\n  download: done 4/4 (100%) - 4 of 4 files"
    assert sanitize(text) == text


def test_the_readme_test_command_runs_the_notebooks_under_nbval() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_config = config["tool"]["pytest"]["ini_options"]
    assert "notebooks" in pytest_config["testpaths"]
    assert "--nbval" in pytest_config["addopts"]
    assert "--nbval-sanitize-with=notebooks/nbval_sanitize.cfg" in pytest_config["addopts"]


def statements(cell: dict[str, Any]) -> list[ast.stmt]:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree: ast.Module = compile(source(cell), "<cell>", "exec", flags=flags)
    return tree.body


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_cells_that_only_check_outputs_are_folded_and_teaching_cells_hold_no_checks(
    path: Path,
) -> None:
    for cell in code_cells(path):
        body = statements(cell)
        checks_only = bool(body) and all(isinstance(node, ast.Assert) for node in body)
        folded = cell["metadata"].get("jupyter", {}).get("source_hidden", False)
        tagged = "check" in cell["metadata"].get("tags", [])
        assert (folded, tagged) == (checks_only, checks_only), source(cell)[:200]
        if not checks_only:
            assert not [node for node in body if isinstance(node, ast.Assert)], source(cell)[:200]
