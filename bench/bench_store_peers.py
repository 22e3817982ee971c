"""What a durable step costs in baxiflow's SQLiteStore against LangGraph's SqliteSaver.

Run with ``uv run --group peers python bench/bench_store_peers.py`` (the ``peers`` dependency
group installs LangGraph and its SQLite checkpointer; nothing else in the project needs
them). Both run a chain of 10 steps on one machine, into an SQLite file of their own:

- baxiflow: the chain of ``bench_store.py`` (each handler reports progress and passes the
  event on), through ``process()`` with ``SQLiteStore`` in its default ``"batched"``
  durability, and with no store;
- LangGraph: a ``StateGraph`` of 10 nodes, each adding one to a counter, compiled once with
  ``SqliteSaver`` (its default durability) and once without, run with ``invoke`` and a new
  ``thread_id`` for each run, as a run of its own.

Each figure is the best of alternating rounds of wall-clock microseconds per step; the
durable store's cost per step is the figure with the store less the one without.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from bench_store import CHAIN_START, _runs, chain_workflow
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from baxiflow.store import SQLiteStore

CHAIN = 10


class Counter(TypedDict):
    value: int


def langgraph_chain(checkpointer: SqliteSaver | None) -> Any:
    graph = StateGraph(Counter)
    for index in range(CHAIN):
        graph.add_node(f"step{index}", lambda state: {"value": state["value"] + 1})
    graph.add_edge(START, "step0")
    for index in range(CHAIN - 1):
        graph.add_edge(f"step{index}", f"step{index + 1}")
    graph.add_edge(f"step{CHAIN - 1}", END)
    return graph.compile(checkpointer=checkpointer)


def langgraph_runs(graph: Any, runs: int, first: int) -> Callable[[], None]:
    def run_all() -> None:
        for number in range(first, first + runs):
            config = {"configurable": {"thread_id": f"run-{number}"}}
            assert graph.invoke({"value": 0}, config)["value"] == CHAIN

    return run_all


def per_step(make: Callable[[], None], runs: int) -> float:
    started = time.perf_counter()
    make()
    return (time.perf_counter() - started) / (runs * CHAIN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="best of N alternating rounds")
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke run")
    args = parser.parse_args()
    runs = 20 if args.quick else 200
    workflow, initial = chain_workflow(), CHAIN_START
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "baxiflow.db")
        connection = sqlite3.connect(Path(folder) / "langgraph.db", check_same_thread=False)
        saved, plain = langgraph_chain(SqliteSaver(connection)), langgraph_chain(None)
        for round_number in range(args.repeats):
            first = round_number * runs
            kinds: dict[str, Callable[[], None]] = {
                "baxiflow": lambda: asyncio.run(_runs(workflow, initial, runs, {})),
                "baxiflow + SQLiteStore": lambda: asyncio.run(
                    _runs(workflow, initial, runs, {"store": store})
                ),
                "LangGraph": langgraph_runs(plain, runs, first),
                "LangGraph + SqliteSaver": langgraph_runs(saved, runs, first),
            }
            for kind, make in kinds.items():
                best[kind] = min(best.get(kind, float("inf")), per_step(make, runs))
        store.close()
        connection.close()
    print(
        f"chain of {CHAIN} steps, {runs} runs a round, best of {args.repeats} rounds (wall clock)"
    )
    for kind, seconds in best.items():
        print(f"  {kind:<26} {seconds * 1e6:9.1f} us/step")
    ours = best["baxiflow + SQLiteStore"] - best["baxiflow"]
    theirs = best["LangGraph + SqliteSaver"] - best["LangGraph"]
    print(f"  a durable step costs: baxiflow {ours * 1e6:.1f} us, LangGraph {theirs * 1e6:.1f} us")
    print(
        f"  with the store, a step takes {best['LangGraph + SqliteSaver'] / best['baxiflow + SQLiteStore']:.0f}x "
        f"as long in LangGraph; the store's own cost is {theirs / ours:.0f}x baxiflow's"
    )


if __name__ == "__main__":
    main()
