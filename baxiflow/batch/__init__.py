"""Run one workflow over many inputs, with one live view for the batch, here or on Dask.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> from baxiflow.batch import run_many_sync
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def check(event):
...     if event.data["n"] == 2:
...         raise ValueError("two is not allowed")
...     yield WorkflowEvent("done")
>>> batch = run_many_sync(workflow, [WorkflowEvent("start", {"n": n}) for n in range(4)], view=False)
>>> batch.ok, [index for index, _ in batch.failed], batch.records[2]["error"]
(False, [2], 'two is not allowed')
"""

from baxiflow.batch._result import OUTCOME_COLUMNS, BatchResult
from baxiflow.batch._run import run_many, run_many_sync
from baxiflow.batch._state import BatchState
from baxiflow.batch._view import BatchDisplay, BatchView, TerminalBatchView, batch_view

__all__ = [
    "OUTCOME_COLUMNS",
    "BatchDisplay",
    "BatchResult",
    "BatchState",
    "BatchView",
    "TerminalBatchView",
    "batch_view",
    "run_many",
    "run_many_sync",
]
