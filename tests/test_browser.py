"""The tutorial notebooks run in JupyterLab as a person runs them: headless Chromium, "Run All".

nbval sends cells one at a time and never renders anything; this test catches what only a
browser shows: widgets that stay at "Loading widget...", SVG that never appears, and cells
queued by "Run All" that never run. It needs Debian's ``chromium`` (``.ci/install-tools.sh``);
without it the test is skipped, except under CI (``CI=true``) where it fails.

Run it with ``uv run pytest -m browser``; screenshots go to ``artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

# The flags this machine needs: no sandbox as root, no GPU, and nothing that reaches out
# to the network on its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

SERVER_START_TIMEOUT = 90.0
KERNEL_READY_TIMEOUT = 60_000  # ms, Playwright's unit
RUN_ALL_TIMEOUT = 120_000  # ms
WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"

# What each notebook must show once every cell has run; every notebook is also checked for
# errors, stderr output, unrun cells and "Loading widget" text.
EXPECTED_VIEWS: dict[str, frozenset[str]] = {
    "02_handlers_in_depth.ipynb": frozenset({"progress"}),
    "03_seeing_the_flow.ipynb": frozenset({"diagram"}),
    "04_progress_and_traces.ipynb": frozenset({"progress"}),
    "05_agentic_chat.ipynb": frozenset({"diagram", "progress"}),
    "08_input_from_people.ipynb": frozenset({"progress"}),
}

# JupyterLab settings for a quiet, offline, fully rendered page: no news or update checks,
# no toasts over the cells, and every cell attached to the DOM (windowing would leave
# off-screen outputs out of the page).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def find_chromium() -> str | None:
    """Path of Debian's Chromium, or None when it is not installed."""
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def clear_outputs(path: Path) -> None:
    """Drop stored outputs, so everything the page shows after "Run All" comes from this run."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: where it listens and where its notebooks live."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        # A workspace of its own, reset, so no tab or kernel of an earlier notebook comes back.
        workspace = Path(name).stem
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"

    def shut_down_kernels(self) -> None:
        """End every kernel session, so notebooks run one after another do not pile up."""
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.url}/api/sessions", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            delete = urllib.request.Request(
                f"{self.url}/api/sessions/{session['id']}", headers=headers, method="DELETE"
            )
            with urllib.request.urlopen(delete, timeout=30):
                pass


def wait_for_server(lab: Lab, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    status_url = f"{lab.url}/api/status?token={lab.token}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"JupyterLab did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{log.read_text()}"
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """End the server and its kernels (one process group), politely first."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/install-tools.sh installs it")
        pytest.skip("chromium is not installed (run .ci/install-tools.sh)")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1, serving a copy of the notebooks so runs never touch the repo."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for path in root.glob("*.ipynb"):
        clear_outputs(path)
    settings = base / "settings"
    for relative, values in LAB_SETTINGS.items():
        path = settings / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    port = free_port()
    token = secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # Lets the test see when the kernel is really connected: the status indicator says
        # "idle" for a moment before the kernel even starts.
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:
        # CI and the development machines run as root; the server refuses that unless told.
        command.append("--ServerApp.allow_root=True")
    log = base / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        running = Lab(f"http://127.0.0.1:{port}", token, root)
        wait_for_server(running, process, log)
        yield running
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium with a fresh profile, shared by the notebooks of this module."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": 1280, "height": 1600},
            timeout=60_000,
        )
        try:
            yield context
        finally:
            context.close()


def wait_for_kernel(page: Any, name: str) -> None:
    """Wait until notebook ``name`` is the current tab and its kernel is connected and idle."""
    page.wait_for_function(
        """(name) => {
            const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            if (!widget || !widget.context || widget.context.path !== name) return false;
            const session = widget.sessionContext && widget.sessionContext.session;
            const kernel = session && session.kernel;
            return Boolean(kernel && kernel.connectionStatus === 'connected'
                && kernel.status === 'idle');
        }""",
        arg=name,
        timeout=KERNEL_READY_TIMEOUT,
    )


def new_notebook_page(
    lab: Lab, browser: Any, name: str, codes: list[str], viewport: dict[str, int] | None = None
) -> tuple[Any, Any]:
    """A new notebook of ``codes`` cells saved as ``name``, open in JupyterLab with its kernel
    ready: the page and the notebook's panel (the caller closes the page once it is open)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in codes]
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nbformat.write(notebook, lab.root / name)
    page = browser.new_page()
    if viewport is not None:
        page.set_viewport_size(viewport)
    try:
        page.goto(lab.notebook_url(name), timeout=60_000)
        wait_for_kernel(page, name)
    except BaseException:
        page.close()
        lab.shut_down_kernels()
        raise
    return page, page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells from the menu bar, as a person does: every cell is queued at once."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def wait_until_all_cells_ran(page: Any, code_cells: int) -> None:
    """Wait until every code cell shows an execution count and the kernel is idle.

    A folded cell (its source hidden) shows no prompt, so the kernel must also have stayed
    idle for a second: a queued folded cell would have made it busy. That every cell ran is
    checked again in the saved file (:func:`save_notebook`). Returns early when the kernel is
    idle with an error shown and nothing queued, since JupyterLab stops "Run All" at the
    first error; the caller's checks then report it.
    """
    page.wait_for_function(
        """(expected) => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const cells = [...panel.querySelectorAll('.jp-CodeCell')];
            const prompts = cells
                .filter((cell) => !cell.querySelector('.jp-InputPlaceholder'))
                .map((cell) => cell.querySelector('.jp-InputArea-prompt').textContent.trim());
            const idle = panel.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]');
            const numbered = prompts.filter((p) => /^\\[\\d+\\]:$/.test(p)).length;
            if (idle && cells.length === expected && numbered === prompts.length) {
                window.baxiflowIdleSince ??= performance.now();
                if (performance.now() - window.baxiflowIdleSince > 1000) return true;
            } else {
                window.baxiflowIdleSince = null;
            }
            const queued = prompts.some((p) => p === '[*]:');
            const failed = panel.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
            return Boolean(idle && failed && !queued);
        }""",
        arg=code_cells,
        timeout=RUN_ALL_TIMEOUT,
    )


def save_notebook(page: Any, path: Path, code_cells: int) -> None:
    """File > Save Notebook, then wait until the file on disk holds every cell's run."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator('.lm-Menu-item[data-command="docmanager:save"]').click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(ValueError, OSError):  # the server may be mid-write
            saved = nbformat.read(path, as_version=4)
            counts = [c.execution_count for c in saved.cells if c.cell_type == "code"]
            if len(counts) == code_cells and all(counts):
                return
        time.sleep(0.2)
    pytest.fail(f"{path.name} was not saved with every cell's output within 30 s")


def assert_diagrams_rendered(page: Any, panel: Any) -> None:
    """Every SVG output is a Graphviz drawing with nodes, and the browser drew it.

    JupyterLab shows SVG output as an ``<img>`` with a data URL; an image the browser could
    not parse ends up complete with no natural size.
    """
    selector = (
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedSVG img[src^="data:image/svg+xml"]'
    )
    page.wait_for_function(
        """(selector) => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every((img) => img.complete);
        }""",
        arg=selector,
        timeout=30_000,
    )
    found = panel.locator(selector).evaluate_all(
        """(images) => images.map((img) => ({
            width: img.naturalWidth,
            nodes: decodeURIComponent(img.src).split('class="node"').length - 1,
        }))"""
    )
    for image in found:
        assert image["width"] > 0 and image["nodes"] > 0, found


# Notebooks with a run that fails on purpose: their error panels are checked too.
ERROR_PANELS = frozenset({"04_progress_and_traces.ipynb", "05_agentic_chat.ipynb"})


def assert_panels_line_up_and_show_all_their_text(panel: Any, name: str) -> None:
    """Every progress panel: the header's bar and each step's bar share one left edge, and
    no text is cut off unless its full form is in a tooltip (or its box scrolls)."""
    found = panel.locator(".baxiflow-panel").evaluate_all(
        """(panels) => panels.map((box) => {
            const rows = [...box.children].filter((row) => row.querySelector('.widget-hprogress'));
            const edges = rows.map((row) =>
                Math.round(row.querySelector('.widget-hprogress').getBoundingClientRect().left));
            // Every element that clips its text: it scrolls, or it shows an ellipsis at the cut
            // (text-overflow on the clipping element itself, or text ending in one) and the
            // full text is in a tooltip on it, around it or on the line inside it.
            const cut = [];
            for (const el of box.querySelectorAll('*')) {
                const style = getComputedStyle(el);
                if (el.scrollWidth <= el.clientWidth + 1 || style.overflowX === 'visible') continue;
                if (['auto', 'scroll'].includes(style.overflowX)) continue;
                const full = el.textContent.trim();
                if (!full) continue;
                const tip = el.closest('[title]') || el.querySelector('[title]');
                const ellipsis = style.textOverflow === 'ellipsis' || full.endsWith('\u2026');
                if (!(ellipsis && tip && tip.title.includes(full))) cut.push(full.slice(0, 80));
            }
            return {
                edges,
                failed: Boolean(box.querySelector('.progress-bar-danger')),
                cut,
            };
        })"""
    )
    assert found, f"{name}: no progress panel"
    for index, shown in enumerate(found):
        assert len(shown["edges"]) >= 2, (name, index, shown)
        assert max(shown["edges"]) - min(shown["edges"]) <= 1, (name, index, shown)
        assert shown["cut"] == [], (name, index, shown)
    if name in ERROR_PANELS:
        assert any(shown["failed"] for shown in found), (name, found)


def errors_in(notebook: nbformat.NotebookNode) -> list[str]:
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"cell {index}: stderr: {output.text[:300]}")
    return found


def notebook_names() -> list[str]:
    return sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("name", notebook_names())
def test_notebook_runs_all_cells_in_jupyterlab_and_renders_its_views(
    name: str, lab: Lab, browser: Any
) -> None:
    cells = nbformat.read(lab.root / name, as_version=4).cells
    code_cells = sum(cell.cell_type == "code" for cell in cells)
    check_cells = sum("check" in cell.metadata.get("tags", []) for cell in cells)
    expected = EXPECTED_VIEWS.get(name, frozenset())
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    try:
        page.goto(lab.notebook_url(name), timeout=60_000)
        wait_for_kernel(page, name)
        run_all_cells(page)
        wait_until_all_cells_ran(page, code_cells)
        stderr = panel.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        )
        assert stderr.all_inner_texts() == []
        if "diagram" in expected:
            assert_diagrams_rendered(page, panel)
        if "progress" in expected:
            bars = panel.locator(".widget-hprogress .progress-bar")
            bars.first.wait_for(timeout=30_000)
            # Final states only: every bar settled (green, or red where the notebook makes a
            # step fail on purpose), none still running.
            assert panel.locator(".widget-hprogress .progress-bar-success").count() >= 1
            assert panel.locator(".widget-hprogress .progress-bar-info").count() == 0
        page.wait_for_timeout(500)  # let the last widget messages land before judging
        if "progress" in expected:
            assert_panels_line_up_and_show_all_their_text(panel, name)
        text = panel.inner_text()
        if "progress" in expected:
            assert "running ·" not in text  # each panel's header names how its run ended
        # Cells that only check outputs for nbval are folded: a reader sees the teaching cells.
        assert panel.locator(".jp-CodeCell .jp-InputPlaceholder").count() == check_cells
        assert not [line for line in text.splitlines() if line.lstrip().startswith("assert ")]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = Path(name).stem
        if "diagram" in expected:
            # The last diagram at the bottom of the window, the cells above it in view.
            panel.locator(".jp-RenderedSVG").last.evaluate(
                "(e) => e.scrollIntoView({block: 'end'})"
            )
            page.wait_for_timeout(200)
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"))
        if "diagram" in expected:
            panel.locator(".jp-RenderedSVG").last.screenshot(
                path=str(ARTIFACTS / f"{stem}-diagram.png")
            )
        if "progress" in expected:
            panel.locator(".jupyter-widgets.widget-vbox").first.screenshot(
                path=str(ARTIFACTS / f"{stem}-progress.png")
            )
        assert "Loading widget" not in text
        assert "Error displaying widget" not in text
        save_notebook(page, lab.root / name, code_cells)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # keep the original failure if the page is gone
            page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-failed.png"))
        raise
    finally:
        page.close()
        lab.shut_down_kernels()
    saved = nbformat.read(lab.root / name, as_version=4)
    assert errors_in(saved) == []
    assert page_errors == []
    if "progress" in expected:
        # The saved file keeps each view's final state as text, for readers without widgets.
        views = [
            output.data["text/plain"]
            for cell in saved.cells
            for output in cell.get("outputs", [])
            if WIDGET_MIMETYPE in output.get("data", {})
        ]
        assert views
        assert not [view for view in views if " running: " in view.splitlines()[0]]


# A registry of 24 handlers, each on an event of its own with a long name, and a loop back to
# the entry: before diagrams kept their natural size, JupyterLab showed its labels 6 px high.
LARGE_REGISTRY = """\
from baxiflow import WorkflowEvent, WorkflowManager, diagram

workflow = WorkflowManager()
for index in range(24):
    async def handler(event):
        yield WorkflowEvent("done")
    handler.__qualname__ = f"a_handler_with_a_rather_long_name_{index}"
    nexts = [f"stage_{index + 1}", "done"] if index < 23 else ["start"]
    workflow.register("start" if index == 0 else f"stage_{index}", handler, emits=nexts)
    if index % 6 == 0:
        workflow.register("start" if index == 0 else f"stage_{index}", handler)
diagram(workflow)
"""


def test_a_24_handler_diagram_shows_its_labels_at_least_10_px_high(lab: Lab, browser: Any) -> None:
    name = "large_diagram.ipynb"
    page, panel = new_notebook_page(lab, browser, name, [LARGE_REGISTRY])
    try:
        run_all_cells(page)
        wait_until_all_cells_ran(page, 1)
        assert_diagrams_rendered(page, panel)
        # The smallest text, in the drawing's own units, times the pixels one unit takes on
        # the page: how high the browser drew the smallest label.
        sizes = panel.locator(".jp-RenderedSVG img").evaluate_all(
            """(images) => images.map((img) => {
                const svg = new DOMParser().parseFromString(
                    decodeURIComponent(img.src.slice(img.src.indexOf(',') + 1)),
                    'image/svg+xml');
                const fonts = [...svg.querySelectorAll('text')]
                    .map((t) => parseFloat(t.getAttribute('font-size')));
                const box = svg.documentElement.getAttribute('viewBox').split(/[ ,]+/);
                return {
                    labels: fonts.length,
                    smallest: Math.min(...fonts) * img.getBoundingClientRect().width
                        / parseFloat(box[2]),
                    width: img.getBoundingClientRect().width,
                    area: img.closest('.jp-OutputArea-output').clientWidth,
                };
            })"""
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "large-diagram.png"))
    finally:
        page.close()
        lab.shut_down_kernels()
    assert len(sizes) == 1, sizes
    assert sizes[0]["labels"] >= 48, sizes
    assert sizes[0]["smallest"] >= 10, sizes
    # Wider than the output area, which scrolls rather than shrinking it.
    assert sizes[0]["width"] > sizes[0]["area"], sizes


# A run that waits for a person: the cell awaits it while the panel shows the request.
ASKING_NOTEBOOK = (
    """\
from baxiflow import WorkflowEvent, WorkflowManager, run

workflow = WorkflowManager()

@workflow.on("ticket")
async def triage(event):
    yield WorkflowEvent.progress("triage", "reading the ticket")
    yield WorkflowEvent.input_required(
        "Book an engineer for ticket 42?", reply="approval", choices=["approve", "reject"],
        data={"customer": "Ada"},
    )

@workflow.on("approval")
async def book(event):
    yield WorkflowEvent("booked" if event.data["value"] == "approve" else "closed")

result = await run(workflow, WorkflowEvent("ticket"))""",
    'print("finished", result.status, result.final.name)',
)


def test_clicking_a_choice_in_the_panel_answers_the_run_and_the_saved_notebook_shows_it_finished(
    lab: Lab, browser: Any
) -> None:
    name = "asking.ipynb"
    page, panel = new_notebook_page(lab, browser, name, ASKING_NOTEBOOK)
    try:
        run_all_cells(page)
        request = panel.locator(".baxiflow-panel .baxiflow-request")
        request.wait_for(timeout=60_000)
        # The request sits inside its run's panel: the prompt, the details, a button per choice.
        assert "Book an engineer for ticket 42?" in request.inner_text()
        assert "customer: Ada" in request.inner_text()
        buttons = request.locator("button")
        assert buttons.all_inner_texts() == ["approve", "reject"]
        assert "waiting ·" in panel.locator(".baxiflow-panel").inner_text()
        assert_panels_line_up_and_show_all_their_text(panel, name)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        panel.locator(".baxiflow-panel").screenshot(path=str(ARTIFACTS / "asking-waiting.png"))
        buttons.first.click()
        wait_until_all_cells_ran(page, 2)
        page.wait_for_timeout(500)
        assert request.count() == 0  # answered: the request left the panel
        assert "ok ·" in panel.locator(".baxiflow-panel").inner_text()
        assert_panels_line_up_and_show_all_their_text(panel, name)
        panel.locator(".baxiflow-panel").screenshot(path=str(ARTIFACTS / "asking-answered.png"))
        save_notebook(page, lab.root / name, 2)
    finally:
        page.close()
        lab.shut_down_kernels()
    saved = nbformat.read(lab.root / name, as_version=4)
    assert errors_in(saved) == []
    [view] = [
        output.data["text/plain"]
        for output in saved.cells[0].outputs
        if WIDGET_MIMETYPE in output.get("data", {})
    ]
    assert view.splitlines()[0].startswith("ticket ok: 4 events, 1 progress, 0 errors")
    assert [output.text for output in saved.cells[1].outputs] == ["finished ok booked\n"]


# The README's progress panel: the flow docs/flow.png draws, run once in JupyterLab.
README_PANEL = f"""\
import sys
sys.path.insert(0, {str(ROOT / "docs")!r})
import baxiflow
from baxiflow import WorkflowEvent
from make_pictures import helpdesk

result = await baxiflow.run(helpdesk(), WorkflowEvent("start", {{"question": "radiator is cold"}}))
"""


def test_the_readme_progress_panel_is_a_screenshot_of_jupyterlab(lab: Lab, browser: Any) -> None:
    """Saved to artifacts/, and to docs/ with BAXIFLOW_UPDATE_DOCS=1 (docs/make_pictures.py)."""
    name = "readme_panel.ipynb"
    viewport = {"width": 1200, "height": 700}
    page, panel = new_notebook_page(lab, browser, name, [README_PANEL], viewport)
    try:
        run_all_cells(page)
        wait_until_all_cells_ran(page, 1)
        view = panel.locator(".baxiflow-panel").first
        view.wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # the final redraw
        assert panel.locator(".widget-hprogress .progress-bar-success").count() == 3
        assert panel.locator(".widget-hprogress .progress-bar-info").count() == 0
        assert_panels_line_up_and_show_all_their_text(panel, name)
        text = view.inner_text()
        assert "classify" in text and "search" in text, text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        view.screenshot(path=str(ARTIFACTS / "readme-progress-panel.png"))
        if os.environ.get("BAXIFLOW_UPDATE_DOCS") == "1":
            view.screenshot(path=str(ROOT / "docs" / "progress-panel.png"))
    finally:
        page.close()
        lab.shut_down_kernels()
