"""Run one workflow over many inputs, with one live view for the batch, here or on Dask.

``events`` is read lazily, one input when a run can start, so a generator of a million
inputs is never held in memory: memory is bounded by ``concurrency`` plus what ``keep``
keeps. A failing run never stops the batch; an input that is not a :class:`WorkflowEvent`
becomes a failed run that says so. Cancelling the batch (interrupting the cell, cancelling
its task) cancels every running run, closes their handlers and returns only when they are
done. With ``client=`` a ``distributed.Client`` (synchronous or asynchronous), the inputs go
to the Dask workers in chunks sized so a task lasts about 250 ms (smaller at the end, so
the workers finish together); the workflow is shipped
once (cloudpickle, so handlers from a notebook work), each worker runs its chunk on an event
loop of its own, and progress and outcome rows stream back while the batch runs.

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
