"""Time per run of the same small workflows in baxiflow, LangGraph and LlamaIndex Workflows.

Run with ``uv run --group peers python bench/bench_peers.py`` (the ``peers`` dependency group
installs LangGraph and LlamaIndex Workflows; nothing else in the project needs them). Every
step is local computation, so the figures are each framework's own cost of routing events
between steps, with no model, network or I/O:

- ``chain``: 10 steps one after another, each passing a counter on;
- ``fan-out``: one step starts 10 work items, each handled by a worker step, and the run ends
  when all 10 are done (LangGraph joins at the end of its superstep, LlamaIndex with
  ``collect_events``, baxiflow when its queue runs dry);
- ``seed``: the spec's example without its prints: two steps, each reporting progress and
  passing the user on, with the progress events streamed to the caller (baxiflow's
  ``process()``, LangGraph's ``astream`` with a stream writer, LlamaIndex's ``stream_events``).

Each framework runs its idiomatic API on one event loop: baxiflow consumes ``process()``,
LangGraph awaits ``ainvoke`` on a graph compiled once, LlamaIndex awaits ``run()`` of one
workflow object. Rounds alternate the frameworks so load from elsewhere on the machine falls on
all alike; the figure is the best round's mean wall time per run, and the median round is
printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import platform
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from baxiflow import WorkflowEvent, WorkflowManager

CHAIN = 10
FAN_OUT = 10
TIMES = "\N{MULTIPLICATION SIGN}"

Run = Callable[[], Awaitable[Any]]


# baxiflow ------------------------------------------------------------------------------------


def baxiflow_chain() -> Run:
    workflow = WorkflowManager()
    for index in range(CHAIN):

        async def forward(event: WorkflowEvent, index: int = index) -> AsyncIterator[WorkflowEvent]:
            yield WorkflowEvent(f"step{index + 1}", {"value": event.data["value"] + 1})

        workflow.register(f"step{index}", forward)

    async def run() -> int:
        events = [event async for event in workflow.process(WorkflowEvent("step0", {"value": 0}))]
        value: int = events[-1].data["value"]
        return value

    return run


def baxiflow_fan_out() -> Run:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fan(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for index in range(FAN_OUT):
            yield WorkflowEvent("work", {"index": index})

    @workflow.on("work")
    async def work(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done", {"index": event.data["index"]})

    async def run() -> int:
        return sum([event.name == "done" async for event in workflow.process(start)])

    start = WorkflowEvent("start")
    return run


def baxiflow_seed() -> Run:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def greeting_handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("greeting", "Sending welcome message")
        yield WorkflowEvent(
            "process_user", {"name": event.data["name"], "action": "welcome"}, event.metadata
        )

    @workflow.on("process_user")
    async def process_user_handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("processing", "Updating user records")
        result = f"User {event.data['name']} processed successfully"
        yield WorkflowEvent("completed", {"result": result}, event.metadata)

    async def run() -> tuple[int, str]:
        events = [event async for event in workflow.process(start)]
        progress = sum(event.name == "progress" for event in events)
        return progress, events[-1].data["result"]

    start = WorkflowEvent("start", {"name": "Alice"}, {"session_id": "12345"})
    return run


# LangGraph -----------------------------------------------------------------------------------


class Counter(TypedDict):
    value: int


class Fan(TypedDict):
    done: Annotated[list[int], operator.add]


MODES: list[Any] = ["custom", "updates"]


class User(TypedDict, total=False):
    name: str
    action: str
    result: str


def langgraph_chain() -> Run:
    graph = StateGraph(Counter)
    for index in range(CHAIN):
        graph.add_node(f"step{index}", lambda state: {"value": state["value"] + 1})
        graph.add_edge(START if index == 0 else f"step{index - 1}", f"step{index}")
    graph.add_edge(f"step{CHAIN - 1}", END)
    app = graph.compile()

    async def run() -> int:
        value: int = (await app.ainvoke({"value": 0}))["value"]
        return value

    return run


def langgraph_fan_out() -> Run:
    graph = StateGraph(Fan)
    graph.add_node("fan", lambda state: {})
    graph.add_edge(START, "fan")
    for index in range(FAN_OUT):
        graph.add_node(f"work{index}", lambda state, index=index: {"done": [index]})
        graph.add_edge("fan", f"work{index}")
        graph.add_edge(f"work{index}", END)
    app = graph.compile()

    async def run() -> int:
        return len((await app.ainvoke({"done": []}))["done"])

    return run


def langgraph_seed() -> Run:
    def greeting(state: User) -> User:
        get_stream_writer()({"step": "greeting", "description": "Sending welcome message"})
        return {"name": state["name"], "action": "welcome"}

    def process_user(state: User) -> User:
        get_stream_writer()({"step": "processing", "description": "Updating user records"})
        return {"result": f"User {state['name']} processed successfully"}

    graph = StateGraph(User)
    graph.add_node("greeting", greeting)
    graph.add_node("process_user", process_user)
    graph.add_edge(START, "greeting")
    graph.add_edge("greeting", "process_user")
    graph.add_edge("process_user", END)
    app = graph.compile()

    async def run() -> tuple[int, str]:
        chunks = [chunk async for chunk in app.astream({"name": "Alice"}, stream_mode=MODES)]
        progress = sum(mode == "custom" for mode, _ in chunks)
        return progress, chunks[-1][1]["process_user"]["result"]

    return run


# LlamaIndex Workflows ------------------------------------------------------------------------


def llamaindex_chain() -> Run:
    # One event class and one step per link, as a chain of distinct steps is written there;
    # free functions added with step(workflow=...), the documented way to build steps in a loop.
    chain_class = type("Chain", (Workflow,), {})
    links: list[type[Event]] = [type(f"Link{index}", (Event,), {}) for index in range(1, CHAIN)]
    for index in range(CHAIN):
        incoming = StartEvent if index == 0 else links[index - 1]
        outgoing = StopEvent if index == CHAIN - 1 else links[index]

        async def forward(ev: Event, outgoing: Any = outgoing) -> Event:
            value = ev.get("value") + 1
            return StopEvent(result=value) if outgoing is StopEvent else outgoing(value=value)

        forward.__annotations__ = {"ev": incoming, "return": outgoing}
        forward.__name__ = forward.__qualname__ = f"step{index}"
        step(workflow=chain_class)(forward)
    chain = chain_class(timeout=None)

    async def run() -> int:
        value: int = await chain.run(value=0)
        return value

    return run


class Work(Event):
    index: int


class Done(Event):
    index: int


class FanOutFlow(Workflow):
    @step
    async def fan(self, ctx: Context, ev: StartEvent) -> Work | None:
        for index in range(FAN_OUT):
            ctx.send_event(Work(index=index))
        return None

    @step(num_workers=FAN_OUT)
    async def work(self, ev: Work) -> Done:
        return Done(index=ev.index)

    @step
    async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
        done = ctx.collect_events(ev, [Done] * FAN_OUT)
        return None if done is None else StopEvent(result=len(done))


class Progress(Event):
    step: str
    description: str


class ProcessUser(Event):
    name: str
    action: str


class SeedFlow(Workflow):
    @step
    async def greeting(self, ctx: Context, ev: StartEvent) -> ProcessUser:
        ctx.write_event_to_stream(Progress(step="greeting", description="Sending welcome message"))
        return ProcessUser(name=ev.get("name"), action="welcome")

    @step
    async def process_user(self, ctx: Context, ev: ProcessUser) -> StopEvent:
        ctx.write_event_to_stream(Progress(step="processing", description="Updating user records"))
        return StopEvent(result=f"User {ev.name} processed successfully")


def llamaindex_fan_out() -> Run:
    flow = FanOutFlow(timeout=None)

    async def run() -> int:
        done: int = await flow.run()
        return done

    return run


def llamaindex_seed() -> Run:
    flow = SeedFlow(timeout=None)

    async def run() -> tuple[int, str]:
        handler = flow.run(name="Alice")
        progress = sum([isinstance(event, Progress) async for event in handler.stream_events()])
        return progress, await handler

    return run


# Measuring -----------------------------------------------------------------------------------

FRAMEWORKS = ("baxiflow", "LangGraph", "LlamaIndex")
# Each workflow's makers, one per framework, and the outcome every framework's run must give:
# a benchmark of a run that skipped its work would be worthless.
WORKFLOWS: dict[str, tuple[tuple[Callable[[], Run], ...], object]] = {
    "chain of 10": ((baxiflow_chain, langgraph_chain, llamaindex_chain), CHAIN),
    "fan-out of 10": ((baxiflow_fan_out, langgraph_fan_out, llamaindex_fan_out), FAN_OUT),
    "seed example": (
        (baxiflow_seed, langgraph_seed, llamaindex_seed),
        (2, "User Alice processed successfully"),
    ),
}


async def mean_time(run: Run, runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        await run()
    return (time.perf_counter() - start) / runs


async def measure(runs: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {}
    for name, (makers, outcome) in WORKFLOWS.items():
        prepared = [make() for make in makers]
        for framework, run in zip(FRAMEWORKS, prepared, strict=True):
            # Warm up (first-call imports, caches) and check that the run does its work.
            for _ in range(max(runs // 10, 3)):
                result = await run()
                if result != outcome:
                    raise AssertionError(f"{framework} {name}: {result!r}, not {outcome!r}")
        figures[name] = {framework: [] for framework in FRAMEWORKS}
        for round_number in range(rounds):
            order = list(zip(FRAMEWORKS, prepared, strict=True))
            if round_number % 2:
                order.reverse()
            for framework, run in order:
                figures[name][framework].append(await mean_time(run, runs))
    return figures


def human(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.0f} µs"
    return f"{seconds * 1e3:,.2f} ms"


def report(figures: dict[str, dict[str, list[float]]], runs: int, rounds: int) -> None:
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {runs} runs a round, best of {rounds} rounds (median)"
    )
    header = ["workflow", *FRAMEWORKS, "LangGraph / baxiflow", "LlamaIndex / baxiflow"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, by_framework in figures.items():
        best = {framework: min(times) for framework, times in by_framework.items()}
        cells = [
            f"{human(best[f])} ({human(statistics.median(by_framework[f]))})" for f in FRAMEWORKS
        ]
        ratios = [f"{best[peer] / best['baxiflow']:.1f}{TIMES}" for peer in FRAMEWORKS[1:]]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per round (default 200)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    options = parser.parse_args()
    figures = asyncio.run(measure(options.runs, options.rounds))
    report(figures, options.runs, options.rounds)


if __name__ == "__main__":
    main()
