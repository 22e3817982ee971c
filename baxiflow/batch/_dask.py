"""A batch on a Dask cluster: chunks of inputs, each run on an event loop of its own on a worker.

The workflow (and the batch's observers) is pickled once with cloudpickle and scattered
to the cluster, so handlers defined in a notebook or in ``__main__``, closures included,
reach the workers. Each chunk is one Dask task; the worker thread that runs it starts a
fresh event loop (``asyncio.run``), never the worker's communication loop, and runs the
chunk's inputs ``concurrency`` at a time through the same :class:`LocalBatch` as a local
batch. While it runs, it sends the outcome rows of ended runs and its runs per step to the
client as Dask events (``Worker.log_event`` / ``Client.subscribe_topic``), at most every
0.1 s, so the view moves while the batch runs (a batch without a view streams nothing). A task whose worker dies is run again
by the scheduler (its ``allowed-failures``); one that fails for good turns each of its
inputs into a failed run that names the reason: no input goes missing.

A ``store=`` travels with the workflow: each worker thread unpickles it once per batch,
which opens it again (a ``PostgresStore`` from its DSN, an ``SQLiteStore`` from its path,
on this machine only), and closes it when the batch ends (:func:`release`). Each chunk's
trace comes back as the compact fields its rows are built from; the batch's trace builds
them when it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import pickle
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

from baxiflow._optional import import_optional
from baxiflow.batch._result import BatchResult, failed_result
from baxiflow.batch._run import (
    Inputs,
    LocalBatch,
    Settings,
    max_failures_reason,
    not_an_event,
    outcome_row,
)
from baxiflow.batch._state import BatchState
from baxiflow.batch._view import BatchDisplay
from baxiflow.event import WorkflowEvent
from baxiflow.manager import WorkflowManager
from baxiflow.observe import WorkflowObserver
from baxiflow.runner import RunResult
from baxiflow.trace import Trace

__all__ = ["ChunkResult", "check_client", "release", "run_chunk", "run_on_dask"]

TASK_SECONDS: Final = 0.25
"""How long a chunk should last, so Dask's per-task cost (scheduling, shipping, the
client's and the scheduler's work) stays small against the runs; the last chunks of an
input of known length are smaller (see :meth:`_DaskBatch._next_size`)."""

MAX_CHUNK: Final = 10_000
"""The most inputs in one chunk, whatever the rate."""

STREAM_INTERVAL: Final = 0.1
"""Least seconds between two messages from one chunk to the client."""

_FEATURE: Final = "run_many(client=...)"


def _distributed() -> ModuleType:
    return import_optional("distributed", feature=_FEATURE, extra="dask")


def check_client(client: object) -> None:
    """Raise unless ``client`` is a ``distributed.Client``.

    Raises:
        MissingDependencyError: ``distributed`` is not installed (the ``dask`` extra).
        TypeError: ``client`` is something else.
    """
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a distributed.Client (synchronous or asynchronous), "
            f"got {type(client).__name__}"
        )


# Worker side ------------------------------------------------------------------------

_loaded: dict[tuple[str, int], tuple[WorkflowManager, list[WorkflowObserver], Any]] = {}
"""What each worker thread unpickled of a batch, by ``(batch token, thread)``: the workflow,
the observers and the store, each unpickled (a store: opened) once per thread and batch."""
_loading = threading.Lock()


_released: set[str] = set()
"""Batches that have ended: a chunk of one that starts late opens no store again."""


def _shipped(payload: bytes, token: str) -> tuple[WorkflowManager, list[WorkflowObserver], Any]:
    """This thread's copy of the batch's workflow, observers and store (``None`` for none)."""
    key = (token, threading.get_ident())
    loaded = _loaded.get(key)
    if loaded is None:
        loaded = pickle.loads(payload)
        with _loading:
            ended = token in _released
            if not ended:
                _loaded[key] = loaded
        if ended:
            if loaded[2] is not None:
                loaded[2].close()
            raise RuntimeError("this batch has ended; its chunk was not run")
    return loaded


def release(token: str) -> None:
    """The batch ``token`` has ended: forget its workflow here and close its stores."""
    with _loading:
        _released.add(token)
        ended = [_loaded.pop(key) for key in list(_loaded) if key[0] == token]
    for _, _, store in ended:
        if store is not None:
            store.close()


@dataclass(slots=True)
class ChunkResult:
    """What one chunk sends back: its outcomes in input order, its trace, its time."""

    outcomes: list[tuple[dict[str, Any], RunResult]]
    trace: Trace | None
    elapsed: float


class _StreamState(BatchState):
    """A chunk's state that also keeps the outcome rows not yet sent."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.unsent: list[dict[str, Any]] = []

    def outcome(self, row: Any, *, ran: bool = True) -> None:
        super().outcome(row, ran=ran)
        self.unsent.append(dict(row))


class _Streamer(BatchDisplay):
    """The chunk's "view": sends new rows and runs per step to the client, throttled."""

    def __init__(self, state: _StreamState, send: Callable[[dict[str, Any]], None], chunk: int):
        super().__init__(state, interval=STREAM_INTERVAL)
        self.stream_state = state
        self.send = send
        self.chunk = chunk

    def changed(self) -> None:
        if self.throttle.due():
            self.draw()

    def draw(self) -> None:
        state = self.stream_state
        rows, state.unsent = state.unsent, []
        self.send(
            {
                "chunk": self.chunk,
                "rows": rows,
                "steps": dict(state.steps),
                "running": state.running,
            }
        )


class _Pairs:
    """A chunk's numbered inputs as :meth:`LocalBatch.run` reads them."""

    def __init__(self, pairs: list[tuple[int, WorkflowEvent]]) -> None:
        self._pairs = iter(pairs)

    async def next(self) -> tuple[int, Any] | None:
        return next(self._pairs, None)

    async def aclose(self) -> None:
        pass


def run_chunk(
    payload: bytes,
    token: str,
    pairs: list[tuple[int, WorkflowEvent]],
    settings: Settings,
    topic: str | None,
    chunk: int,
) -> ChunkResult:
    """Run one chunk on a Dask worker, on a new event loop in this worker thread.

    Progress streams to ``topic``; ``None`` when the batch shows no view: then nothing is
    sent while the chunk runs, and runs per step are not counted.
    """
    workflow, observers, store = _shipped(payload, token)
    if store is not None:
        settings = dataclasses.replace(settings, limits={**settings.limits, "store": store})
    started = time.perf_counter()
    state = BatchState(len(pairs)) if topic is None else _StreamState(len(pairs))
    streamer = None
    if isinstance(state, _StreamState):
        worker = _distributed().get_worker()

        def send(message: dict[str, Any]) -> None:
            worker.log_event(topic, message)

        streamer = _Streamer(state, send, chunk)
    batch = LocalBatch(workflow, settings, state, streamer, observers)
    asyncio.run(batch.run(_Pairs(pairs)))
    outcomes = [batch.outcomes[index] for index, _ in pairs]
    return ChunkResult(outcomes, batch.trace, time.perf_counter() - started)


# Client side ------------------------------------------------------------------------


class _Stream:
    """Applies the chunks' messages to the batch's state, on the batch's event loop."""

    def __init__(self, state: BatchState, display: BatchDisplay | None) -> None:
        self.state = state
        self.display = display
        self.counted: set[int] = set()
        self.chunks: dict[int, tuple[dict[str, int], int]] = {}
        self.ended: set[int] = set()
        self.messages = 0

    def apply(self, message: dict[str, Any]) -> None:
        self.messages += 1
        for row in message["rows"]:
            self.count(row)
        chunk = message["chunk"]
        if chunk not in self.ended:
            self.chunks[chunk] = message["steps"], message["running"]
            self._resum()
        self.changed()

    def count(self, row: dict[str, Any]) -> None:
        if row["index"] not in self.counted:
            self.counted.add(row["index"])
            self.state.outcome(row, ran=False)

    def end_chunk(self, chunk: int) -> None:
        self.ended.add(chunk)
        if self.chunks.pop(chunk, None) is not None:
            self._resum()

    def _resum(self) -> None:
        steps: Counter[str] = Counter()
        running = 0
        for chunk_steps, chunk_running in self.chunks.values():
            steps.update(chunk_steps)
            running += chunk_running
        self.state.set_steps(steps, running)

    def changed(self) -> None:
        if self.display is not None:
            self.display.changed()


async def _call(client: Any, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a client method that blocks on a synchronous client and is awaited on an asynchronous one."""
    if client.asynchronous:
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


async def _result(client: Any, future: Any) -> Any:
    """Wait for a Dask future without blocking the event loop, then fetch its result."""
    if client.asynchronous:
        return await future
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def wake(_: Any) -> None:
        loop.call_soon_threadsafe(settle)

    future.add_done_callback(wake)
    await done
    return await asyncio.to_thread(future.result)


class _DaskBatch:
    """The client's side of a Dask batch: cuts chunks, submits them, gathers their outcomes."""

    def __init__(
        self,
        client: Any,
        settings: Settings,
        state: BatchState,
        display: BatchDisplay | None,
        chunk_size: int | None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.state = state
        self.stream = _Stream(state, display)
        self.fixed_size = chunk_size
        self.size = chunk_size or settings.concurrency
        self.threads = 1
        self.trace = Trace() if settings.keep == "all" else None
        self.empty = Trace()
        self.outcomes: dict[int, tuple[dict[str, Any], RunResult]] = {}
        self.stopped: str | None = None
        self.token = uuid.uuid4().hex
        # Progress streams back only to a view.
        self.topic = None if display is None else f"baxiflow-batch-{self.token}"

    async def run(self, inputs: Inputs, payload: bytes) -> None:
        client = self.client
        loop = asyncio.get_running_loop()
        apply = self.stream.apply
        if self.topic is not None:
            client.subscribe_topic(
                self.topic, lambda event: loop.call_soon_threadsafe(apply, event[1])
            )
        # A key of its own (hash=False): the same workflow shipped again by a later batch must
        # not share a key that this batch releases when it ends.
        shipped = await _call(client, client.scatter, payload, hash=False)
        self.threads = max(1, sum((await _call(client, client.nthreads)).values()))
        most_in_flight = max(2, 2 * self.threads)
        waiting: dict[asyncio.Task[Any], tuple[int, list[tuple[int, WorkflowEvent]], Any]] = {}
        number = 0
        exhausted = False
        try:
            while True:
                while not exhausted and self.stopped is None and len(waiting) < most_in_flight:
                    pairs, exhausted = await self._take(inputs)
                    if pairs:
                        future = client.submit(
                            run_chunk,
                            shipped,
                            self.token,
                            pairs,
                            self.settings,
                            self.topic,
                            number,
                            pure=False,
                            key=f"baxiflow-chunk-{number}-{self.token}",
                        )
                        waiting[asyncio.create_task(_result(client, future))] = (
                            number,
                            pairs,
                            future,
                        )
                        number += 1
                if not waiting:
                    break
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    chunk, pairs, _future = waiting.pop(task)
                    self._gather(chunk, pairs, task)
        finally:
            if self.topic is not None:
                client.unsubscribe_topic(self.topic)
            for task in waiting:
                task.cancel()
            if waiting:
                await asyncio.wait(waiting)
                futures = [future for _, _, future in waiting.values()]
                await _call(client, client.cancel, futures)
            with contextlib.suppress(Exception):  # a worker that is gone has nothing to free
                await _call(client, client.run, release, self.token)
            await inputs.aclose()

    async def _take(self, inputs: Inputs) -> tuple[list[tuple[int, WorkflowEvent]], bool]:
        """Read up to one chunk of events; a non-event ends at once as a failed run."""
        pairs: list[tuple[int, WorkflowEvent]] = []
        size = self._next_size(inputs)
        while len(pairs) < size:
            item = await inputs.next()
            if item is None:
                return pairs, True
            index, event = item
            if isinstance(event, WorkflowEvent):
                pairs.append((index, event))
            else:
                self._record(index, not_an_event(index, event))
        return pairs, False

    def _gather(
        self, chunk: int, pairs: list[tuple[int, WorkflowEvent]], task: asyncio.Task[Any]
    ) -> None:
        self.stream.end_chunk(chunk)
        try:
            outcome: ChunkResult = task.result()
        except Exception as exc:
            first, last = pairs[0][0], pairs[-1][0]
            reason = (
                f"the Dask task running inputs {first}..{last} failed and was not retried "
                f"again: {type(exc).__name__}: {exc}"
            )
            for index, event in pairs:
                self._record(index, failed_result(event, reason, type(exc).__name__))
            return
        if self.trace is not None and outcome.trace is not None:
            self.trace.extend(outcome.trace)
        for row, result in outcome.outcomes:
            kept = RunResult(self.trace or self.empty, result.events, result.info)
            self._record(row["index"], kept, row)
        if self.fixed_size is None and outcome.elapsed > 0:
            wanted = math.ceil(len(pairs) / outcome.elapsed * TASK_SECONDS)
            self.size = min(max(self.size, wanted), MAX_CHUNK)

    def _next_size(self, inputs: Inputs) -> int:
        """Inputs for the next chunk: ``chunk_size``, or what lasts :data:`TASK_SECONDS` at
        the rate seen so far; near the end of an input of known length, fewer, so that the
        workers run out of work at about the same time (guided self-scheduling)."""
        if self.fixed_size is not None or inputs.total is None:
            return self.size
        left = inputs.total - inputs.read
        return max(1, min(self.size, math.ceil(left / (2 * self.threads))))

    def _record(self, index: int, result: RunResult, row: dict[str, Any] | None = None) -> None:
        row = outcome_row(index, result) if row is None else row
        self.outcomes[index] = row, result
        self.stream.count(row)
        limit = self.settings.max_failures
        if limit is not None and self.stopped is None and self.state.failed >= limit:
            self.stopped = max_failures_reason(limit)
        self.stream.changed()

    def result(self, wall: float) -> BatchResult:
        ordered = [self.outcomes[index] for index in sorted(self.outcomes)]
        records = [row for row, _ in ordered]
        state = self.state
        # The final counts come from the final rows: a chunk lost after it streamed some
        # rows has its inputs reported failed.
        state.done = len(records)
        state.ok = sum(row["status"] == "ok" for row in records)
        state.failed = state.done - state.ok
        return BatchResult(
            results=[result for _, result in ordered],
            records=records,
            trace=self.trace or Trace(),
            stopped=self.stopped,
            wall=wall,
            keep=self.settings.keep,
        )


async def run_on_dask(
    client: Any,
    workflow: WorkflowManager,
    inputs: Inputs,
    settings: Settings,
    state: BatchState,
    display: BatchDisplay | None,
    observers: list[WorkflowObserver],
    chunk_size: int | None,
    started: float,
) -> BatchResult:
    """Run the batch on ``client``'s cluster; see the module docstring."""
    cloudpickle = import_optional("cloudpickle", feature=_FEATURE, extra="dask")
    # The store goes once with the workflow, not with every chunk: each worker thread opens
    # it once (a PostgresStore from its DSN, an SQLiteStore from its path).
    store = settings.limits.get("store")
    if store is not None:
        limits = {name: value for name, value in settings.limits.items() if name != "store"}
        settings = dataclasses.replace(settings, limits=limits)
    try:
        payload = cloudpickle.dumps((workflow, observers, store))
    except Exception as exc:
        if store is None or not _pickles(cloudpickle, (workflow, observers)):
            raise
        raise TypeError(
            f"store= on Dask: a {type(store).__name__} cannot be shipped to the workers "
            f"({exc}); a PostgresStore can (each worker opens it from its DSN), and an "
            "SQLiteStore on a LocalCluster of this machine (from its path)"
        ) from exc
    batch = _DaskBatch(client, settings, state, display, chunk_size)
    await batch.run(inputs, payload)
    return batch.result(time.perf_counter() - started)


def _pickles(cloudpickle: ModuleType, value: object) -> bool:
    try:
        cloudpickle.dumps(value)
    except Exception:
        return False
    return True
