"""The project's JupyterLab, as ``uv run jupyter lab notebooks/`` starts it, asks no questions.

A fresh JupyterLab asks "Would you like to get notified about official Jupyter news?"; the
project's environment turns news off (``tools/jupyter-config``, installed into the ``.venv`` by
``uv sync``). The test reads the page configuration the server really sends, with no user
configuration, as on a fresh machine.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def page_config(tmp_path: Path) -> dict[str, object]:
    """The ``jupyter-config-data`` of JupyterLab's page, from a server with no user config."""
    port, token = free_port(), secrets.token_hex(16)
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={tmp_path}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.allow_root=True",
    ]
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    page = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()}")
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert found is not None, page[:500]
    config: dict[str, object] = json.loads(found[1])
    return config


def test_the_project_s_jupyterlab_has_news_off_so_it_never_asks_about_news(
    tmp_path: Path,
) -> None:
    assert page_config(tmp_path)["news"] == {"disabled": True}


def test_the_news_setting_lives_in_the_environment_s_jupyter_config_not_in_the_wheel() -> None:
    installed = Path(sys.prefix, "etc", "jupyter", "jupyter_lab_config.json")
    assert json.loads(installed.read_text()) == {"LabApp": {"news_url": None}}
    wheel = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert "shared-data" not in wheel
