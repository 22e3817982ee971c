"""Record runs as rows for pandas, save them as JSONL, and summarise them.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> from baxiflow.trace import record
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent("done")
>>> trace = asyncio.run(record(workflow, WorkflowEvent("start")))
>>> [row["event"] for row in trace.records], trace.runs[0]["status"]
(['start', 'done'], 'ok')
"""

from baxiflow.trace._jsonable import ReprValue
from baxiflow.trace._stats import HandlerStats, handler_stats
from baxiflow.trace._trace import (
    RECORD_COLUMNS,
    RUN_COLUMNS,
    SPAN_COLUMNS,
    Trace,
    TraceFrames,
    flatten_records,
    record,
)

__all__ = [
    "RECORD_COLUMNS",
    "RUN_COLUMNS",
    "SPAN_COLUMNS",
    "HandlerStats",
    "ReprValue",
    "Trace",
    "TraceFrames",
    "flatten_records",
    "handler_stats",
    "record",
]
