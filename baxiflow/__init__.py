"""baxiflow: event-driven async workflows for notebooks and production.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> WorkflowManager().register("start", lambda event: event)
Traceback (most recent call last):
...
baxiflow.exceptions.HandlerTypeError: handler '<lambda>' is a callable that is not an async generator function; expected an async generator function (an `async def` that uses `yield`)
"""

from baxiflow.batch import BatchResult, run_many, run_many_sync
from baxiflow.diagrams import Diagram, Finding, ValidationReport, diagram, validate
from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import (
    AnswerError,
    BaxiflowError,
    BaxiflowWarning,
    EventNameError,
    HandlerTypeError,
    HandlerWarning,
    MissingDependencyError,
    ObserverWarning,
    RenderError,
    StoreError,
    TraceFormatError,
    WorkflowError,
)
from baxiflow.handle import WorkflowRun
from baxiflow.manager import WorkflowManager
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, WorkflowObserver
from baxiflow.progress import ProgressObserver, ProgressView, TerminalProgress, progress_view
from baxiflow.registry import EventHandler, HandlerRegistration
from baxiflow.retry import Retry
from baxiflow.runner import RunResult, run, run_sync
from baxiflow.trace import Trace, record

__all__ = [
    "AnswerError",
    "BatchResult",
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
    "HandlerWarning",
    "MissingDependencyError",
    "ObserverWarning",
    "ProgressObserver",
    "ProgressView",
    "RenderError",
    "Retry",
    "RunInfo",
    "RunResult",
    "StoreError",
    "TerminalProgress",
    "Trace",
    "TraceFormatError",
    "ValidationReport",
    "WorkflowError",
    "WorkflowEvent",
    "WorkflowManager",
    "WorkflowObserver",
    "WorkflowRun",
    "diagram",
    "progress_view",
    "record",
    "run",
    "run_many",
    "run_many_sync",
    "run_sync",
    "validate",
]
