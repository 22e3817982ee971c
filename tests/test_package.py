"""The package's front door: the seed's import path and the typing marker (exports and import
cost: tests/test_all_attributes.py and tests/test_layering.py)."""

from __future__ import annotations

from pathlib import Path

import baxiflow


def test_seed_import_line_for_the_manager_still_works() -> None:
    from baxiflow.event import WorkflowManager  # the spec's own import path

    assert WorkflowManager is baxiflow.WorkflowManager


def test_package_ships_its_typing_marker() -> None:
    assert (Path(baxiflow.__file__).parent / "py.typed").is_file()
