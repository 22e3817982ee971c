"""The observer that appends a durable run to its store, committing as its durability says."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from baxiflow._durable import Durability
from baxiflow.exceptions import StoreError
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, RunStatus, WorkflowObserver

if TYPE_CHECKING:
    from baxiflow.store._sqlite import SQLStore

__all__ = ["BATCH_SECONDS", "RunLog", "store_status"]

BATCH_SECONDS = 0.1
"""In ``"batched"`` durability, the longest a logged event waits for its commit."""


def store_status(status: RunStatus) -> str:
    """A run's status in the store, from how it ended.

    ``finished`` when the stream ended by itself (error events included); ``failed`` when a
    guard ended it; ``interrupted`` when the consumer stopped or the task was cancelled.
    """
    if status in ("ok", "error"):
        return "finished"
    if status in ("max_events", "timeout"):
        return "failed"
    return "interrupted"


class RunLog(WorkflowObserver):
    """Appends one run's events and handler calls to ``store``, in order.

    Args:
        store: Where the log goes.
        run_id: The run's id (the engine runs under the same id).
        durability: ``"sync"``, ``"batched"`` or ``"exit"``.
        begin: Called once when the run starts, inside the first transaction (it creates or
            takes over the run's row).

    Once a write or a commit fails (the database went away, the disk is full), the log
    writes nothing more for this run and never marks it ended: what was committed before
    stays a gap-free beginning of the run, which ``resume`` can go on from. The failure
    reaches the caller as an :class:`~baxiflow.exceptions.ObserverWarning`.
    """

    def __init__(
        self,
        store: SQLStore,
        run_id: str,
        durability: Durability,
        begin: object,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self._durability = durability
        self._begin = begin
        self._last_commit = 0.0
        self._failed = False
        self._dirty = False
        self._rollbacks = store.rollbacks

    def _write(self, write: Callable[..., None], *arguments: object) -> None:
        if self._failed:
            return
        try:
            if self._store.rollbacks != self._rollbacks:
                # Another run's failed write took this run's uncommitted ones with it.
                self._rollbacks = self._store.rollbacks
                if self._dirty:
                    raise StoreError(
                        f"the store at {self._store.where} dropped run {self.run_id!r}'s "
                        "uncommitted events after an error; the run is left to be resumed"
                    )
            self._dirty = True
            write(*arguments)
        except BaseException:
            self._failed = True
            raise

    def run_started(self, run: RunInfo) -> None:
        assert callable(self._begin)
        self._write(self._begin)
        # Committed with the first event, so a logged run always knows how it started.
        self._last_commit = -BATCH_SECONDS

    def event_emitted(self, emitted: EmittedEvent) -> None:
        self._write(self._append, emitted)

    def handler_started(self, call: HandlerCall) -> None:
        self._write(self._store.start_call, self.run_id, call)

    def handler_finished(self, call: HandlerCall) -> None:
        self._write(self._store.end_call, self.run_id, call)

    def run_finished(self, run: RunInfo) -> None:
        self._write(self._end, store_status(run.status))

    def _append(self, emitted: EmittedEvent) -> None:
        call = emitted.call
        self._store.append_event(self.run_id, emitted, None if call is None else call.position)
        self._maybe_commit()

    def _end(self, status: str) -> None:
        self._store.end_run(self.run_id, status)
        self._store.commit()

    def _maybe_commit(self) -> None:
        if self._durability == "exit":
            return
        now = time.monotonic()
        if self._durability == "sync" or now - self._last_commit >= BATCH_SECONDS:
            self._store.commit(renew=self.run_id)
            self._last_commit = now
            self._dirty = False
