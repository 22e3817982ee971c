"""Temporary: the old path of :func:`baxiflow.validate`, kept for ``WorkflowManager.validate``.

``WorkflowManager.validate`` imports this module lazily; it is removed with that method.
Use ``baxiflow.validate(workflow)`` or :mod:`baxiflow.diagrams`.
"""

from baxiflow.diagrams import Finding as Finding
from baxiflow.diagrams import ValidationReport as ValidationReport
from baxiflow.diagrams import validate as validate

__all__: list[str] = []
