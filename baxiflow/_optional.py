"""Import an optional dependency at first use, with an error that says what to install.

>>> import_optional("json", feature="Reading traces").__name__
'json'
>>> import_optional("no_such_module_xyz", feature="The demo", package="no-such-package")
Traceback (most recent call last):
...
baxiflow.exceptions.MissingDependencyError: The demo needs the 'no-such-package' package, which is not installed. Install it with `uv add no-such-package` or `pip install 'baxiflow[notebook]'`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from baxiflow.exceptions import MissingDependencyError

__all__ = ["import_optional"]


def import_optional(
    module: str, *, feature: str, package: str | None = None, extra: str = "notebook"
) -> ModuleType:
    """Import ``module``; if it is missing raise :class:`MissingDependencyError`.

    Args:
        module: Module to import, e.g. ``"ipywidgets"``.
        feature: What needs it, for the message, e.g. ``"ProgressView"``.
        package: Distribution name when it differs from the module name.
        extra: The baxiflow extra that installs it, e.g. ``"otel"``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise MissingDependencyError(
            package or module, feature, module=module, extra=extra
        ) from exc
