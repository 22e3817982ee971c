"""A real Jupyter kernel gets several cells at once, as JupyterLab's "Run All" sends them.

nbval and nbclient send one cell at a time and wait for it, so they cannot see a cell
dropped from the kernel's queue (the nest-asyncio 1.6 + ipykernel 7 trap). This test
sends every cell before reading any reply.
"""

from __future__ import annotations

import json
import queue
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

pytestmark = pytest.mark.kernel

WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"

SETUP = textwrap.dedent(
    """
    import asyncio
    from baxiflow import WorkflowEvent, WorkflowManager
    from baxiflow.runner import run, run_sync

    workflow = WorkflowManager()

    @workflow.on("start")
    async def count(event):
        n = event.data["n"]
        for done in range(1, n + 1):
            yield WorkflowEvent.progress("count", f"{done} of {n}", current=done, total=n)
            await asyncio.sleep(0.001)
        print("handler ran for", n)
        yield WorkflowEvent("counted", {"n": n})
    """
)


def sync_cell(n: int) -> str:
    return f'result = run_sync(workflow, WorkflowEvent("start", {{"n": {n}}}))\nprint("sync", result.status, result.final.data)'


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    # A kernelspec of our own, so the kernel runs this interpreter whatever else is installed.
    spec_dir = tmp_path / "kernels" / "baxiflow-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "baxiflow test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="baxiflow-test", kernel_spec_manager=specs)
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=30)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


class Cell:
    def __init__(self) -> None:
        self.status: str | None = None
        self.stdout = ""
        self.stderr = ""
        self.error: tuple[str, str] | None = None
        self.displays: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []


def run_all(client: BlockingKernelClient, cells: list[str]) -> list[Cell]:
    """Send every cell at once, then collect their replies and outputs."""
    return collect(client, [client.execute(code) for code in cells])


def collect(client: BlockingKernelClient, ids: list[str], *, timeout: float = 20) -> list[Cell]:
    """Replies and outputs of the cells sent as ``ids``, once each replied and went idle."""
    results = {msg_id: Cell() for msg_id in ids}
    deadline = time.monotonic() + timeout
    idle: set[str] = set()
    while (
        len(idle) < len(ids) or any(c.status is None for c in results.values())
    ) and time.monotonic() < deadline:
        try:
            reply = client.get_shell_msg(timeout=0.05)
        except queue.Empty:
            pass
        else:
            cell = results.get(reply["parent_header"].get("msg_id"))
            if cell is not None:
                cell.status = reply["content"]["status"]
        while True:
            try:
                message = client.get_iopub_msg(timeout=0.01)
            except queue.Empty:
                break
            parent = message["parent_header"].get("msg_id")
            cell = results.get(parent)
            if cell is None:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    cell.stdout += content["text"]
                else:
                    cell.stderr += content["text"]
            elif kind == "error":
                cell.error = (content["ename"], content["evalue"])
            elif kind == "display_data":
                cell.displays.append(content)
            elif kind == "update_display_data":
                cell.updates.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                idle.add(parent)
    return [results[msg_id] for msg_id in ids]


def test_run_all_runs_every_cell_and_run_sync_works_in_each(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, client = kernel
    cells = [
        SETUP,
        sync_cell(3),
        sync_cell(4),
        'result = await run(workflow, WorkflowEvent("start", {"n": 2}))\nprint("await", result.status, result.final.data)',
        sync_cell(5),
        "import nest_asyncio2\nnest_asyncio2.apply()  # a user's own patch must not break run_sync",
        sync_cell(6),
        sync_cell(7),
        'print("last cell ran")',
    ]
    results = run_all(client, cells)
    assert [cell.status for cell in results] == ["ok"] * len(cells)
    assert [cell.error for cell in results] == [None] * len(cells)
    outputs = [cell.stdout for cell in results]
    for index, n in [(1, 3), (2, 4), (4, 5), (6, 6), (7, 7)]:
        assert outputs[index] == f"handler ran for {n}\nsync ok {{'n': {n}}}\n"
    assert outputs[3] == "handler ran for 2\nawait ok {'n': 2}\n"
    assert outputs[-1] == "last cell ran\n"
    assert all("Traceback" not in cell.stderr for cell in results)
    for index, n in [(1, 3), (3, 2), (7, 7)]:
        # Each run shows its widget panel in its own cell, then leaves its final text there.
        [display] = results[index].displays
        assert WIDGET_MIMETYPE in display["data"]
        assert display["data"]["text/plain"].startswith(
            f"start {{'n': {n}}} running: 0 events, 0 progress"
        )
        final = results[index].updates[-1]["data"]["text/plain"]
        assert final.startswith(
            f"start {{'n': {n}}} ok: 2 events, {n} progress, 0 errors, elapsed="
        )
        assert f"count: done {n}/{n} (100%) - {n} of {n}" in final


def test_interrupting_a_run_sync_cell_stops_the_run_and_the_next_cells_still_run(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    manager, client = kernel
    slow = textwrap.dedent(
        """
        import asyncio
        from baxiflow import WorkflowEvent, WorkflowManager
        from baxiflow.runner import run_sync

        workflow = WorkflowManager()
        cleaned = []

        @workflow.on("start")
        async def slow(event):
            try:
                print("started", flush=True)
                yield WorkflowEvent.progress("slow", "waiting")
                await asyncio.sleep(60)
            finally:
                cleaned.append("closed")

        run_sync(workflow, WorkflowEvent("start"), view=False)
        """
    )
    first = client.execute(slow)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        message = client.get_iopub_msg(timeout=20)
        if message["parent_header"].get("msg_id") == first and message["msg_type"] == "stream":
            break
    manager.interrupt_kernel()
    [interrupted] = collect(client, [first])
    assert (interrupted.status, interrupted.error) == ("error", ("KeyboardInterrupt", ""))
    # Sent after the error: Jupyter aborts cells queued behind a failed one, by design.
    [after] = run_all(client, ['print("after", cleaned)'])
    assert (after.status, after.stdout) == ("ok", "after ['closed']\n")
