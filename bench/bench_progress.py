"""Cost of the progress views on a run of 100,000 progress events, and the widget updates they send.

Run with ``uv run python bench/bench_progress.py``. One handler yields N progress events
without awaiting (the worst case: nothing else to hide the observer's cost). Prints wall
times (best of R) and ratios for two baselines:

* the bare run: no observer, then a do-nothing observer (the core's own cost of observing),
  then each view alone;
* the notebook run, ``baxiflow.run`` (which always records a Trace): without a view,
  then with each view. This is the cost a notebook user pays for the view (target <= 1.5x).

Then the widget state updates the widget view sends to the front end for one run (target
<= 200), counted with a comm that counts messages instead of sending them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import comm
from counting_comm import CountingComm

from baxiflow import WorkflowEvent, WorkflowManager, WorkflowObserver
from baxiflow.progress import ProgressView, TerminalProgress
from baxiflow.runner import run


def busy_workflow(count: int) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def busy(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for done in range(1, count + 1):
            yield WorkflowEvent.progress("busy", "working", current=done, total=count)
        yield WorkflowEvent("done")

    return workflow


async def drain(workflow: WorkflowManager, observers: list[Any]) -> None:
    async for _ in workflow.process(WorkflowEvent("start"), observers=observers):
        pass


def best_of(repeats: int, make: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    timings = []
    for _ in range(repeats):
        coroutine = make()
        gc.collect()
        start = time.perf_counter()
        asyncio.run(coroutine)
        timings.append(time.perf_counter() - start)
    return min(timings)


def report(title: str, rows: list[tuple[str, float]], events: int) -> None:
    print(title)
    base = rows[0][1]
    for label, seconds in rows:
        print(
            f"  {label:<34} {seconds * 1e3:8.1f} ms  {seconds / events * 1e6:6.2f} us/event  ratio {seconds / base:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    comm.create_comm = CountingComm
    workflow = busy_workflow(args.events)

    start = WorkflowEvent("start")
    repeats = args.repeats

    def widgets() -> ProgressView:
        return ProgressView(display=False)

    def terminal() -> TerminalProgress:
        return TerminalProgress(file=io.StringIO())

    report(
        f"{args.events:,} progress events, bare run (best of {repeats}, wall time)",
        [
            ("no observer", best_of(repeats, lambda: drain(workflow, []))),
            (
                "do-nothing observer",
                best_of(repeats, lambda: drain(workflow, [WorkflowObserver()])),
            ),
            ("ProgressView (ipywidgets)", best_of(repeats, lambda: drain(workflow, [widgets()]))),
            ("TerminalProgress (tqdm)", best_of(repeats, lambda: drain(workflow, [terminal()]))),
        ],
        args.events,
    )
    report(
        f"{args.events:,} progress events, notebook run() with its Trace (best of {repeats}, wall time)",
        [
            ("run(view=False)", best_of(repeats, lambda: run(workflow, start, view=False))),
            (
                "run(view=ProgressView)",
                best_of(repeats, lambda: run(workflow, start, view=widgets())),
            ),
            (
                "run(view=TerminalProgress)",
                best_of(repeats, lambda: run(workflow, start, view=terminal())),
            ),
        ],
        args.events,
    )

    CountingComm.sent = Counter()
    view = ProgressView(display=False)
    opened = Counter(CountingComm.sent)
    asyncio.run(drain(workflow, [view]))
    sent = CountingComm.sent - opened
    panel = view.panels[0]
    row = panel.rows["busy"]
    print(
        f"widget state updates sent for one run: {sent['update']} (target <= 200); "
        f"widgets opened: {sent['comm_open']}; final bar {row.bar.value:.0%} {row.bar.bar_style!r}"
    )


if __name__ == "__main__":
    main()
