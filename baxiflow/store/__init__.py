"""Durable runs: an append-only event log in SQLite (the default) or PostgreSQL.

``SQLiteStore(path)`` keeps the log in one file; ``PostgresStore(dsn)`` (the ``postgres``
extra) in a PostgreSQL database that several processes or machines share.

Pass a store to ``process`` (or to ``WorkflowManager(store=...)``) and every event and
handler call of the run is appended to its log as it happens. A run that did not finish
(the consumer stopped, or the process died) goes on with ``workflow.resume(run_id, store)``;
any run can be forked from any of its events with ``workflow.replay(...)``, on the handlers
registered now.

>>> import asyncio, os, tempfile
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> from baxiflow.store import SQLiteStore
>>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "runs.db"))
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent("greeted", {"name": event.data["name"]})
>>> async def main():
...     return [e.name async for e in workflow.process(
...         WorkflowEvent("start", {"name": "Ada"}), store=store, run_id="first")]
>>> asyncio.run(main())
['start', 'greeted']
>>> [(row["run_id"], row["status"]) for row in store.runs()]
[('first', 'finished')]
>>> [e.event.name for e in store.logged("first")]
['start', 'greeted']
>>> store.close()
"""

from baxiflow.store._postgres import PostgresStore
from baxiflow.store._sqlite import SQLiteStore, SQLStore

__all__ = ["PostgresStore", "SQLStore", "SQLiteStore"]
