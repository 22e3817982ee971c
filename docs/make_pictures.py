"""Make the README's pictures: ``docs/flow.png`` here, ``docs/progress-panel.png`` in JupyterLab.

Run it from the repository's root with ``uv run python docs/make_pictures.py``. The diagram is
saved the way a user saves one, ``Diagram.save("flow.png")``, offline (no Graphviz program
needed), with the trace of a few runs overlaid. The progress panel is a screenshot of
JupyterLab in headless Chromium, taken by the browser test
``test_the_readme_progress_panel_is_a_screenshot_of_jupyterlab`` (it needs Debian's
``chromium``, see ``.ci/install-tools.sh``); with ``BAXIFLOW_UPDATE_DOCS=1`` set, as here, that
test writes it into ``docs/``. ``tests/test_readme.py`` checks that every picture the README
shows is here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import baxiflow
from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.trace import Trace

DOCS = Path(__file__).resolve().parent


def helpdesk() -> WorkflowManager:
    """A small support flow: classify, search, answer; a failing search is recovered."""
    workflow = WorkflowManager(name="helpdesk")

    @workflow.on("start", emits=["search", "clarify"])
    async def classify(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("classify", "reading the question")
        yield WorkflowEvent("search" if event.data["question"] else "clarify", event.data)

    @workflow.on("search", emits=["answer"])
    async def search_manuals(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for page in range(1, 4):
            yield WorkflowEvent.progress("search", "reading manuals", current=page, total=3)
        if "boiler" in event.data["question"]:
            raise ConnectionError("manual server unreachable")
        yield WorkflowEvent("answer", {"text": "Bleed the radiator."})

    @workflow.on("answer", emits=["reply"])
    async def write_reply(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("reply", event.data)

    @workflow.on("clarify", emits=["reply"])
    async def ask_back(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("reply", {"text": "Which device is it?"})

    @workflow.on("error", emits=["reply"])
    async def apologise(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("reply", {"text": "Someone will call you back."})

    return workflow


def event(question: str) -> WorkflowEvent:
    return WorkflowEvent("start", {"question": question})


async def traced_runs(workflow: WorkflowManager) -> Trace:
    trace = Trace()
    for question in ("radiator is cold", "boiler is noisy", "", "radiator drips"):
        async for _ in workflow.process(event(question), observers=[trace]):
            pass
    return trace


def main() -> None:
    workflow = helpdesk()
    trace = asyncio.run(traced_runs(workflow))
    saved = baxiflow.diagram(workflow, trace=trace).save(DOCS / "flow.png")
    print(f"wrote {saved.relative_to(DOCS.parent)}")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "browser",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_browser.py",
            "-k",
            "readme_progress_panel",
        ],
        check=True,
        cwd=DOCS.parent,
        env={**os.environ, "BAXIFLOW_UPDATE_DOCS": "1"},
    )
    print("wrote docs/progress-panel.png")


if __name__ == "__main__":
    main()
