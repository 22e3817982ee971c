"""baxiflow: event-driven async workflows for notebooks and production.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> WorkflowManager().register("start", lambda event: event)
Traceback (most recent call last):
...
baxiflow.exceptions.HandlerTypeError: handler '<lambda>' is a callable that is not an async generator function; expected an async generator function (an `async def` that uses `yield`)
"""

from baxiflow.event import WorkflowEvent
from baxiflow.exceptions import (
    BaxiflowError,
    BaxiflowWarning,
    EventNameError,
    HandlerTypeError,
    MissingDependencyError,
    ObserverWarning,
)
from baxiflow.manager import WorkflowManager
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, WorkflowObserver
from baxiflow.registry import EventHandler, HandlerRegistration

__all__ = [
    "BaxiflowError",
    "BaxiflowWarning",
    "EmittedEvent",
    "EventHandler",
    "EventNameError",
    "HandlerCall",
    "HandlerRegistration",
    "HandlerTypeError",
    "MissingDependencyError",
    "ObserverWarning",
    "RunInfo",
    "WorkflowEvent",
    "WorkflowManager",
    "WorkflowObserver",
]
