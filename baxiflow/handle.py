"""A run you can talk to: ``run = workflow.start(event)``, its events, and answers to its requests.

A handler asks with :meth:`WorkflowEvent.input_required
<baxiflow.event.WorkflowEvent.input_required>`; the request is an event like any other. A
run started with :meth:`WorkflowManager.start <baxiflow.WorkflowManager.start>` keeps it
open: when its queue is empty and a request is open, the run waits for the answer instead of
ending. The answer is an event too, sent with :meth:`WorkflowRun.answer` or
:meth:`WorkflowRun.send` and dispatched to the handlers of the request's ``reply``; nothing
of the asking handler runs again.

>>> import asyncio
>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> workflow = WorkflowManager()
>>> @workflow.on("ticket")
... async def ask(event):
...     yield WorkflowEvent.input_required("Book an engineer?", reply="approval", choices=["yes", "no"])
>>> @workflow.on("approval")
... async def book(event):
...     yield WorkflowEvent("booked" if event.data["value"] == "yes" else "closed")
>>> async def main():
...     run = workflow.start(WorkflowEvent("ticket"))
...     names = []
...     async for event in run:
...         names.append(event.name)
...         if event.is_request:
...             await run.answer(event, "yes")
...     return names
>>> asyncio.run(main())
['ticket', 'input_required', 'approval', 'booked']
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator
from typing import Any

from baxiflow._engine import WAITING, Engine
from baxiflow.event import INPUT_REQUIRED, WorkflowEvent

__all__ = ["WorkflowRun", "find_run"]

_LIVE: weakref.WeakValueDictionary[str, WorkflowRun] = weakref.WeakValueDictionary()
"""The handles of this process, by run id, for displays that answer (a notebook's buttons)."""


def find_run(run_id: str) -> WorkflowRun | None:
    """The handle of run ``run_id`` in this process, while someone holds it; else ``None``."""
    return _LIVE.get(run_id)


class WorkflowRun:
    """One run started with ``workflow.start`` (or ``workflow.resume``): its events and its requests.

    ``async for event in run`` yields every event, as :meth:`WorkflowManager.process
    <baxiflow.WorkflowManager.process>` does; nothing runs until you iterate. While a request
    is open and the queue is empty, the iteration waits for an answer: from
    :meth:`answer` or :meth:`send` (from the loop itself, another task or a widget), until
    ``wait_timeout`` ends the wait with an error event naming the unanswered prompts.

    Stopping the iteration (``break``, :meth:`aclose`, cancellation) stops the run, as with
    ``process``. A durable run stopped while it waits is left ``waiting`` in its store and goes
    on in any process with ``workflow.resume(run_id, store, answers=[...])``.
    """

    __slots__ = ("__weakref__", "_engine", "_stream")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stream = engine.stream()
        _LIVE[engine.run_id] = self

    def __repr__(self) -> str:
        state = "waiting" if self.waiting else "ended" if self._engine.ended else "running"
        pending = len(self.pending)
        noun = "request" if pending == 1 else "requests"
        return f"<WorkflowRun {self.id!r} {state}: {pending} open {noun}>"

    @property
    def id(self) -> str:
        """The run's id (the ``run_id`` of a durable run)."""
        return self._engine.run_id

    @property
    def pending(self) -> list[WorkflowEvent]:
        """The open requests (``"input_required"`` events), oldest first."""
        return self._engine.requests

    @property
    def waiting(self) -> bool:
        """Whether the run's queue is empty and it waits for an answer."""
        return self._engine.waiting

    def __aiter__(self) -> WorkflowRun:
        return self

    async def __anext__(self) -> WorkflowEvent:
        while True:
            event = await self._stream.__anext__()
            if event is not WAITING:
                return event

    async def until_waiting(self) -> AsyncGenerator[WorkflowEvent, None]:
        """The events up to the moment the run waits for an answer (or ends).

        Then :attr:`pending` lists what it waits for: answer and go on iterating the run, or
        leave it (a durable run stays ``waiting`` in its store).
        """
        async for event in self._stream:
            if event is WAITING:
                return
            yield event

    async def send(self, event: WorkflowEvent) -> WorkflowEvent:
        """Send ``event`` as the answer to the open request whose ``reply`` it is named after.

        It is emitted, and dispatched like any event, once the run's queue is empty.

        Returns:
            The request it answers, which is no longer open.

        Raises:
            AnswerError: No open request is answered by an event of that name, the request
                has ``choices`` and ``event.data["value"]`` is not one of them, or the run
                has ended. Nothing changes.
        """
        return self.send_nowait(event)

    async def answer(self, request: WorkflowEvent, value: Any) -> WorkflowEvent:
        """Answer ``request`` with ``value``: sends ``WorkflowEvent(reply, {"value": value})``.

        The answer carries the request's metadata (session ids and the like).

        Raises:
            AnswerError: ``request`` is not open in this run, or ``value`` is not one of its
                ``choices``. Nothing changes.
        """
        return self.answer_nowait(request, value)

    def send_nowait(self, event: WorkflowEvent) -> WorkflowEvent:
        """:meth:`send` for code that cannot ``await`` (a widget's callback), in the thread
        of the run's event loop (from another thread it raises ``RuntimeError``: hand it to
        the loop with ``loop.call_soon_threadsafe(run.send_nowait, event)``)."""
        return self._engine.answer(event)

    def answer_nowait(self, request: WorkflowEvent, value: Any) -> WorkflowEvent:
        """:meth:`answer` for code that cannot ``await`` (a widget's callback), in the thread
        of the run's event loop (from another thread it raises ``RuntimeError``, as
        :meth:`send_nowait` does)."""
        if not isinstance(request, WorkflowEvent) or request.name != INPUT_REQUIRED:
            raise TypeError(
                f"answer() takes a request (an 'input_required' event), got {request!r:.80}"
            )
        reply = (request.data or {}).get("reply")
        answer = WorkflowEvent(str(reply), {"value": value}, request.metadata)
        return self._engine.answer(answer, request)

    async def aclose(self) -> None:
        """Stop the run (its running handler's ``finally`` runs), as ``break`` does."""
        await self._stream.aclose()
