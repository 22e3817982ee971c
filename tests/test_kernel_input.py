"""A real Jupyter kernel: a cell awaits a run that asks, and a click on the panel's button answers.

The click is what JupyterLab sends for a button: a ``comm_msg`` to the button's widget model
on the shell channel, while the cell is still running. ipykernel (7.x) dispatches comm
messages to an awaiting cell, so the run gets its answer and the cell finishes.
"""

from __future__ import annotations

import queue
import textwrap
import time
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from test_kernel_run_all import collect, kernel

pytestmark = pytest.mark.kernel

__all__ = ["kernel"]  # the fixture, shared with the "Run All" tests

SETUP = textwrap.dedent(
    """
    from baxiflow import WorkflowEvent, WorkflowManager, run

    workflow = WorkflowManager()
    calls = []

    @workflow.on("ticket")
    async def triage(event):
        calls.append("triage")
        yield WorkflowEvent.input_required(
            "Book an engineer?", reply="approval", choices=["approve", "reject"]
        )

    @workflow.on("approval")
    async def book(event):
        calls.append("book")
        yield WorkflowEvent("booked" if event.data["value"] == "approve" else "closed")
    """
)

ASKING_CELL = (
    'result = await run(workflow, WorkflowEvent("ticket"))\n'
    'print("finished", result.status, result.final.name, calls)'
)


def button_comm(client: BlockingKernelClient, cell: str, label: str, timeout: float = 20) -> str:
    """The comm id of the button labelled ``label`` that cell ``cell`` opened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = client.get_iopub_msg(timeout=0.1)
        except queue.Empty:
            continue
        if message["parent_header"].get("msg_id") != cell or message["msg_type"] != "comm_open":
            continue
        state: dict[str, Any] = message["content"]["data"].get("state", {})
        if state.get("_model_name") == "ButtonModel" and state.get("description") == label:
            comm_id: str = message["content"]["comm_id"]
            return comm_id
    pytest.fail(f"no {label!r} button appeared within {timeout} s")


def click(client: BlockingKernelClient, comm_id: str) -> None:
    """What the browser sends when a person clicks a button widget."""
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    client.shell_channel.send(client.session.msg("comm_msg", content))


def test_a_click_on_the_panels_button_answers_a_run_the_cell_awaits(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, client = kernel
    [setup] = collect(client, [client.execute(SETUP)])
    assert setup.status == "ok", setup.error
    cell = client.execute(ASKING_CELL)
    approve = button_comm(client, cell, "approve")
    [waiting] = collect(client, [cell], timeout=0.5)
    assert waiting.status is None  # the run waits for the answer; the cell awaits it
    click(client, approve)
    [asked] = collect(client, [cell], timeout=20)
    assert (asked.status, asked.error) == ("ok", None)
    assert asked.stdout == "finished ok booked ['triage', 'book']\n"
    # The panel's display is left with the run's final text, without the answered request.
    final = asked.updates[-1]["data"]["text/plain"]
    assert final.startswith("ticket ok: 4 events, 0 progress, 0 errors")
    assert "asks:" not in final
