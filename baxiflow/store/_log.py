"""The observer that appends a durable run to its store, committing as its durability says."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baxiflow._durable import Durability, DurableLog, occurrences
from baxiflow.exceptions import StoreError
from baxiflow.observe import EmittedEvent, HandlerCall, RunInfo, RunStatus

if TYPE_CHECKING:
    from baxiflow.store._sqlite import SQLStore

from baxiflow.store._codec import encode

__all__ = [
    "BATCH_SECONDS",
    "LEASE_SECONDS",
    "RENEW_SECONDS",
    "RUN_SPAN",
    "NewRun",
    "RunLog",
    "store_status",
]

BATCH_SECONDS = 0.1
"""In ``"batched"`` durability, the longest a logged event waits for its commit."""

LEASE_SECONDS = 30.0
"""How long a running process holds its run without renewing (its commits renew it)."""

RUN_SPAN = 2**32
"""How many events, and how many calls, one durable run can log: event ``seq`` of run ``n``
is keyed by ``n * RUN_SPAN + seq`` in the store, its call row ``i`` by ``n * RUN_SPAN + i``."""

RENEW_SECONDS = LEASE_SECONDS / 10
"""How often a run's commits renew its lease at most: renewing at every commit would cost
a statement each time for nothing."""


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


@dataclass(slots=True)
class NewRun:
    """The row of a new run, which its first commit writes with its first events.

    Attributes:
        workflow_name: The manager's name.
        registry: The key of the registry the run runs on in ``baxiflow_registries``.
        parent: ``(run_id, fork_seq)`` for a fork.
        reused: For a fork, the log's rows of the events it reuses.
        created: When the run started (set when it does).
    """

    workflow_name: str | None
    registry: int
    parent: tuple[str, int] | None = None
    reused: Sequence[tuple[Any, ...]] = ()
    created: float = 0.0


class RunLog(DurableLog):
    """Appends one run's events and ended handler calls to ``store``, in order.

    Rows, and the changes of the run's row (its status, its lease), wait in memory and are
    written and committed together, as the durability says: a commit is the unit a crash
    keeps or loses, and nothing of the run sits uncommitted in the store between two of
    them, so another run's failed write on a shared store cannot drop any of it. The first
    write that fails raises :class:`~baxiflow.exceptions.StoreError`, which stops the run
    with a final error event; the log writes nothing after that, so the run is never marked
    finished with events missing.

    Args:
        store: Where the log goes.
        run_id: The run's id (the engine runs under the same id).
        run_no: Its number in the store, which keys its rows.
        durability: ``"sync"``, ``"batched"`` or ``"exit"``.
        fingerprint: The registry the run runs on (:func:`baxiflow._durable.fingerprint`),
            which says the occurrence of each call.
        new_run: The row a new run's first commit writes; ``None`` for a resumed run, whose
            row is in the store already (its lease taken).
        next_call: How many call rows the run's log holds already (a resumed run's).
    """

    def __init__(
        self,
        store: SQLStore,
        run_id: str,
        run_no: int,
        durability: Durability,
        fingerprint: str,
        new_run: NewRun | None = None,
        next_call: int = 0,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self.run_no = run_no
        self._first_key = run_no * RUN_SPAN
        self._end_key = self._first_key + RUN_SPAN  # the first key of the next run
        self._call_key = self._first_key + next_call  # the key of the next call row
        self._durability = durability
        # The longest an event waits for its commit: none in "sync", all the run in "exit".
        self._commit_every = {"sync": 0.0, "batched": BATCH_SECONDS, "exit": math.inf}[durability]
        self._new_run = new_run
        self._repeats = occurrences(fingerprint)
        self._no_text = store.no_text
        self._last_commit = 0.0
        self._renewed = time.monotonic()  # when the run's lease was last renewed
        self._events: list[tuple[Any, ...]] = []
        self._calls: list[tuple[Any, ...]] = []
        self._status: str | None = "running" if new_run is None else None  # for the next commit
        self._ended = False  # the run's end is written, or waits for the next commit
        self._waiting = False  # the run's row says it waits for answers
        self.failed = False
        """True once a write failed: nothing more is written."""

    def run_started(self, run: RunInfo) -> None:
        if self._new_run is not None:
            self._new_run.created = time.time()
        # The run's row is committed with the first events ("sync": the first one), so a
        # logged run always holds the event it started from; a crash before that loses the
        # run as a whole.
        self._last_commit = time.monotonic()

    def event_emitted(self, emitted: EmittedEvent) -> None:
        if self._waiting:
            self._waiting = False
            self._status = "running"
        event, seq, parent_seq, depth, handler_name, elapsed, _, call = emitted
        if seq >= RUN_SPAN and not self.failed:
            self._stop(f"a durable run logs at most {RUN_SPAN:,} events")
        checked, data, metadata = self._store.encoded  # by check_event, just before
        if checked is not event:
            data, metadata = encode(event.data), encode(event.metadata)
        position = occurrence = None
        if call is not None:
            position = call.position
            occurrence = self._repeats.get((call.trigger.name, position), 0) if self._repeats else 0
        none, error = self._no_text, event.error
        self._events.append(
            (self._first_key + seq, seq, parent_seq, depth, event.name, handler_name, position, occurrence,
             none if error is None else error, elapsed, none if data is None else data,
             none if metadata is None else metadata)
        )  # fmt: skip
        now = time.monotonic()
        if now - self._last_commit >= self._commit_every:
            self._last_commit = now
            self._flush()

    def handler_finished(self, call: HandlerCall) -> None:
        key = self._call_key
        if key >= self._end_key and not self.failed:
            self._stop(f"a durable run logs at most {RUN_SPAN:,} handler calls")
        self._call_key = key + 1
        position = call.position
        occurrence = self._repeats.get((call.trigger.name, position), 0) if self._repeats else 0
        error, status = call.error, call.status
        self._calls.append(
            (key, call.trigger_seq, position, call.handler_name, occurrence, call.attempt,
             call.started, call.finished, status, self._no_text if error is None else error,
             call.emitted)
        )  # fmt: skip
        if status == "retried" and self._durability != "exit":
            # The run pauses before the next attempt: a process killed in the pause resumes
            # the call from that attempt, not from the one that failed.
            self._last_commit = time.monotonic()
            self._flush()

    def run_idle(self, run: RunInfo, ending: bool) -> None:
        # Commit while the run can still report a failure with its final event: when it
        # ends (its end written too), or when it waits ("whenever the queue is empty").
        if ending:
            self._status, self._ended = "finished", True
        elif run.status == "waiting":
            # The request is logged; the wait is the run's status until an answer comes.
            self._status, self._waiting = "waiting", True
        if self._durability != "exit" or ending:
            self._flush()

    def run_finished(self, run: RunInfo) -> None:
        status = store_status(run.status)
        if self.failed or (self._ended and status == "finished"):
            return
        self._status, self._ended = status, True
        try:
            self._flush()
        except StoreError as exc:
            # The run has ended: its last commit failing can only be reported.
            raise RuntimeError(f"the run's end was not logged: {exc}") from exc

    def _stop(self, reason: str) -> None:
        """The run has used up its keys: what it logged so far is kept; nothing after it,
        whose key would be another run's (the run's final error event included)."""
        self._flush()
        self.failed = True
        raise StoreError(reason)

    def _flush(self) -> None:
        """Write and commit what the run appended since the last commit."""
        if self.failed:
            return
        events, calls, status, new_run = self._events, self._calls, self._status, self._new_run
        self._events, self._calls, self._status, self._new_run = [], [], None, None
        # A new row or a new status renews the lease too.
        now = time.monotonic()
        renew = now - self._renewed >= RENEW_SECONDS
        if renew or status is not None or new_run is not None:
            self._renewed = now
        try:
            self._store.write(
                self.run_id, self.run_no, events, calls,
                new_run=new_run, status=status, ended=self._ended, renew=renew,
            )  # fmt: skip
        except StoreError:
            self.failed = True
            raise
