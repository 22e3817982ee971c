"""The observer that appends a durable run to its store, committing as its durability says."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from baxiflow._durable import Durability, occurrences
from baxiflow.exceptions import StoreError
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, RunStatus, WorkflowObserver

if TYPE_CHECKING:
    from baxiflow.store._sqlite import SQLStore

from baxiflow.store._codec import encode

__all__ = ["BATCH_SECONDS", "RunLog", "store_status"]

BATCH_SECONDS = 0.1
"""In ``"batched"`` durability, the longest a logged event waits for its commit."""


def store_status(status: RunStatus) -> str:
    """A run's status in the store, from how it ended.

    ``finished`` when the stream ended by itself (error events included); ``failed`` when a
    guard ended it; ``waiting`` when it was left while it waited for answers; ``interrupted``
    when the consumer stopped or the task was cancelled otherwise.
    """
    if status in ("ok", "error"):
        return "finished"
    if status == "waiting":
        return "waiting"
    if status in ("max_events", "timeout"):
        return "failed"
    return "interrupted"


class RunLog(WorkflowObserver):
    """Appends one run's events and ended handler calls to ``store``, in order.

    Rows wait in memory and are written and committed together, as the durability says
    (a commit is the unit a crash keeps or loses). The first write that fails raises
    :class:`~baxiflow.exceptions.StoreError`, which stops the run with a final error event;
    the log writes nothing after that, so the run is never marked finished with events
    missing. The same holds when another run's failed write on a shared store dropped this
    run's uncommitted writes.

    Args:
        store: Where the log goes.
        run_id: The run's id (the engine runs under the same id).
        durability: ``"sync"``, ``"batched"`` or ``"exit"``.
        begin: Called once when the run starts (it creates or takes over the run's row).
        fingerprint: The registry the run runs on (:func:`baxiflow._durable.fingerprint`),
            which says the occurrence of each call.
    """

    def __init__(
        self,
        store: SQLStore,
        run_id: str,
        durability: Durability,
        begin: Callable[[], None],
        fingerprint: str,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self._durability = durability
        self._begin = begin
        self._repeats = occurrences(fingerprint)
        self._no_text = store.no_text
        self._last_commit = 0.0
        self._events: list[tuple[Any, ...]] = []
        self._calls: list[tuple[Any, ...]] = []
        self._rollbacks = store.rollbacks
        self._uncommitted = False  # the run's row, written at its start, not committed yet
        self._ended = False  # the run's end is written (when its queue ran dry)
        self._waiting = False  # the run's row says it waits for answers
        self.failed = False
        """True once a write failed: nothing more is written."""

    def run_started(self, run: RunInfo) -> None:
        self._write(self._begin)
        self._uncommitted = True
        # Committed with the first events ("sync": the first one), so a logged run always
        # holds the event it started from; a crash before that loses the run as a whole.
        self._last_commit = time.monotonic()

    def event_emitted(self, emitted: EmittedEvent) -> None:
        if self._waiting:
            self._waiting = False
            self._write(self._store.mark_run, self.run_id, "running")
        event, seq, parent_seq, depth, handler_name, elapsed, _, call = emitted
        checked, data, metadata = self._store.encoded  # by check_event, just before
        if checked is not event:
            data, metadata = encode(event.data), encode(event.metadata)
        position = occurrence = None
        if call is not None:
            position = call.position
            occurrence = self._repeats.get((call.trigger.name, position), 0) if self._repeats else 0
        none, error = self._no_text, event.error
        self._events.append(
            (self.run_id, seq, parent_seq, depth, event.name, handler_name, position, occurrence,
             none if error is None else error, elapsed, none if data is None else data,
             none if metadata is None else metadata)
        )  # fmt: skip
        if self._durability == "exit":
            return
        now = time.monotonic()
        if self._durability == "sync" or now - self._last_commit >= BATCH_SECONDS:
            self._last_commit = now
            self._flush()

    def handler_finished(self, call: HandlerCall) -> None:
        position = call.position
        occurrence = self._repeats.get((call.trigger.name, position), 0) if self._repeats else 0
        error = call.error
        self._calls.append(
            (self.run_id, call.trigger_seq, position, call.handler_name, occurrence, call.started,
             call.finished, call.status, self._no_text if error is None else error, call.emitted)
        )  # fmt: skip

    def run_idle(self, run: RunInfo, ending: bool) -> None:
        # Commit while the run can still report a failure with its final event: when it
        # ends (its end written too), or when it waits ("whenever the queue is empty").
        if ending:
            self._write(self._store.end_run, self.run_id, "finished")
            self._ended = True
        elif run.status == "waiting":
            # The request is logged; the wait is the run's status until an answer comes.
            self._write(self._store.mark_run, self.run_id, "waiting")
            self._waiting = True
        if self._durability != "exit" or ending:
            self._flush()

    def run_finished(self, run: RunInfo) -> None:
        if self.failed or (self._ended and store_status(run.status) == "finished"):
            return
        try:
            self._write(self._store.end_run, self.run_id, store_status(run.status))
            self._flush()
        except StoreError as exc:
            # The run has ended: its last commit failing can only be reported.
            raise RuntimeError(f"the run's end was not logged: {exc}") from exc

    def _flush(self) -> None:
        """Write and commit what the run appended since the last commit."""
        events, calls = self._events, self._calls
        self._events, self._calls = [], []
        # An ended run's row holds no lease any more: there is none to renew.
        renew = None if self._ended else self.run_id
        self._write(lambda: self._store.write(events, calls, renew=renew))
        self._uncommitted = False

    def _write(self, write: Callable[..., object], *arguments: object) -> None:
        """Write unless a write failed before; mark the log failed when this one does."""
        if self.failed:
            return
        try:
            if self._store.rollbacks != self._rollbacks:
                self._rollbacks = self._store.rollbacks
                if not self._uncommitted:
                    write(*arguments)
                    return
                raise StoreError(
                    f"the store at {self._store.where} dropped run {self.run_id!r}'s "
                    "uncommitted writes after another run's error; the run is left to be resumed"
                )
            write(*arguments)
        except StoreError:
            self.failed = True
            raise
