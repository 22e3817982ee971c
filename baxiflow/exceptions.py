"""Every exception and warning baxiflow raises, in one place.

Each leaf also subclasses the nearest built-in, so ``except TypeError`` keeps working:

>>> from baxiflow.exceptions import HandlerTypeError, BaxiflowError
>>> issubclass(HandlerTypeError, TypeError) and issubclass(HandlerTypeError, BaxiflowError)
True
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from baxiflow.event import WorkflowEvent

__all__ = [
    "AnswerError",
    "BaxiflowError",
    "BaxiflowWarning",
    "EventNameError",
    "HandlerTypeError",
    "MissingDependencyError",
    "ObserverWarning",
    "RenderError",
    "TraceFormatError",
    "WorkflowError",
]


class BaxiflowError(Exception):
    """Base class of every error baxiflow raises."""


class AnswerError(BaxiflowError, ValueError):
    """An answer was refused: no open request of the run takes it, or its value is not one
    of the request's choices. The run is left as it was; the message lists what it waits for."""


class HandlerTypeError(BaxiflowError, TypeError):
    """A handler is not an async generator function."""


class EventNameError(BaxiflowError, ValueError):
    """An event name is not a non-empty string."""


class MissingDependencyError(BaxiflowError, ImportError):
    """An optional dependency of a toolkit helper is not installed.

    The message says which package to install and which extra provides it.
    """

    def __init__(
        self, package: str, feature: str, *, module: str | None = None, extra: str = "notebook"
    ) -> None:
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed. "
            f"Install it with `uv add {package}` or `pip install 'baxiflow[{extra}]'`.",
            name=module or package,
        )
        self.package = package
        self.feature = feature
        self.extra = extra


class RenderError(BaxiflowError, RuntimeError):
    """A diagram could not be rendered by any available renderer."""


class TraceFormatError(BaxiflowError, ValueError):
    """A trace file is not in the format :meth:`Trace.from_jsonl` reads.

    Also raised by :meth:`Trace.to_jsonl` for a trace it cannot write in that format.
    """


class StoreError(BaxiflowError, RuntimeError):
    """A durable store could not be opened, read or written (see :mod:`baxiflow.store`)."""


class WorkflowError(BaxiflowError, RuntimeError):
    """A run ended with an error event that no exception stands behind.

    :meth:`RunResult.raise_for_error <baxiflow.RunResult.raise_for_error>` raises it for a
    timeout, ``max_events`` or an error event a handler yielded; a handler that raised is
    re-raised as its own exception instead. ``event`` is the error event.
    """

    def __init__(self, event: WorkflowEvent) -> None:
        super().__init__(event.error or "error event without a message")
        self.event = event


class BaxiflowWarning(UserWarning):
    """Base class of every warning baxiflow emits."""


class ObserverWarning(BaxiflowWarning, RuntimeWarning):
    """An observer raised; the run went on without that observer's result."""


class HandlerWarning(BaxiflowWarning, RuntimeWarning):
    """A handler would not stop when its time ran out; the run ended without it."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_from_caller(message: str, category: type[Warning]) -> None:
    """Warn as if from the first frame outside baxiflow: the user's code, where there is any.

    A warning raised deep in a run would otherwise point at baxiflow's own lines.
    """
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level - 1 if frame is None else level)
