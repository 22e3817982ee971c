"""Each module's ``__all__`` names its own public names; ``baxiflow.__all__`` is the public API."""

from __future__ import annotations

import ast
import importlib
import itertools
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import baxiflow

WINGS = (
    "baxiflow.batch",
    "baxiflow.diagrams",
    "baxiflow.otel",
    "baxiflow.progress",
    "baxiflow.store",
    "baxiflow.trace",
)


def modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(baxiflow.__path__, "baxiflow.")
        if not info.name.endswith("__main__")
    )


@pytest.mark.parametrize("name", modules())
def test_every_module_lists_only_names_it_defines_or_its_wing_re_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    for attribute in exported:
        assert not attribute.startswith("_"), f"{name}.__all__ lists private {attribute}"
        value = getattr(module, attribute)  # every listed name resolves
        if name == "baxiflow" or name in WINGS or isinstance(value, ModuleType):
            continue
        assert defines(module, attribute), f"{name}.__all__ lists {attribute}, defined elsewhere"


def defines(module: ModuleType, attribute: str) -> bool:
    """Whether ``module``'s own source binds ``attribute`` (not an import)."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == attribute:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if attribute in [t.id for t in targets if isinstance(t, ast.Name)]:
                return True
    return False


@pytest.mark.parametrize("wing", WINGS)
def test_a_wing_exports_exactly_what_its_private_modules_list(wing: str) -> None:
    package = importlib.import_module(wing)
    listed = set()
    for info in pkgutil.iter_modules(package.__path__, f"{wing}."):
        assert info.name.rpartition(".")[2].startswith("_"), f"{info.name} is not private"
        listed |= set(importlib.import_module(info.name).__all__)
    assert set(package.__all__) <= listed
    public = {name for name in vars(package) if not name.startswith("_")}
    submodules = {n for n in public if isinstance(getattr(package, n), ModuleType)}
    assert set(package.__all__) == public - submodules


def test_the_top_level_all_is_every_public_name_and_each_is_documented() -> None:
    public = {name for name in vars(baxiflow) if not name.startswith("_")}
    submodules = {n for n in public if isinstance(getattr(baxiflow, n), ModuleType)}
    assert set(baxiflow.__all__) == public - submodules
    assert baxiflow.__all__ == sorted(baxiflow.__all__)
    for name in baxiflow.__all__:
        value = getattr(baxiflow, name)
        assert documented(value, name), f"baxiflow.{name} has no docstring"


def documented(value: object, name: str) -> bool:
    """A docstring of its own, or, for a type alias, the string right after its assignment."""
    if getattr(value, "__doc__", None) and not isinstance(value, type(list[int])):
        return True
    for module in modules():
        path = importlib.import_module(module).__file__
        assert path is not None
        body = ast.parse(Path(path).read_text(encoding="utf-8")).body
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign | ast.Assign)
                and name
                in [
                    t.id
                    for t in getattr(node, "targets", [getattr(node, "target", None)])
                    if isinstance(t, ast.Name)
                ]
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                return True
    return False
