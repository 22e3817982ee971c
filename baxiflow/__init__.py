"""baxiflow: event-driven async workflows for notebooks and production.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> WorkflowManager().register("start", lambda event: event)
Traceback (most recent call last):
...
baxiflow.exceptions.HandlerTypeError: handler '<lambda>' is a callable that is not an async generator function; expected an async generator function (an `async def` that uses `yield`)
"""

from baxiflow.diagram import Diagram, diagram
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import (
    BaxiflowError,
    BaxiflowWarning,
    EventNameError,
    HandlerTypeError,
    MissingDependencyError,
    ObserverWarning,
    RenderError,
    TraceFormatError,
)
from baxiflow.manager import WorkflowManager
from baxiflow.notebook import RunResult, run, run_sync
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, WorkflowObserver
from baxiflow.progress import ProgressView, progress_view
from baxiflow.registry import EventHandler, HandlerRegistration
from baxiflow.terminal import TerminalProgress
from baxiflow.trace import Trace
from baxiflow.validate import Finding, ValidationReport, validate

__all__ = [
    "BaxiflowError",
    "BaxiflowWarning",
    "Diagram",
    "EmittedEvent",
    "EventHandler",
    "EventNameError",
    "Finding",
    "HandlerCall",
    "HandlerRegistration",
    "HandlerTypeError",
    "MissingDependencyError",
    "ObserverWarning",
    "ProgressView",
    "RenderError",
    "RunInfo",
    "RunResult",
    "TerminalProgress",
    "Trace",
    "TraceFormatError",
    "ValidationReport",
    "WorkflowEvent",
    "WorkflowManager",
    "WorkflowObserver",
    "diagram",
    "progress_view",
    "run",
    "run_sync",
    "validate",
]
