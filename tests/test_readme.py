"""The README's examples run as written and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_quickstart_runs_and_prints_the_seed_output() -> None:
    (quickstart,) = [block for block in python_blocks() if "asyncio.run(main())" in block]
    result = subprocess.run(
        [sys.executable, "-c", quickstart], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == [
        "Greeting: Hello, Alice!",
        "Progress update: greeting - Sending welcome message",
        "Processing user: Alice with action: welcome",
        "Progress update: processing - Updating user records",
        "Workflow completed: User Alice processed successfully",
    ]


def test_readme_setup_names_exactly_two_commands() -> None:
    setup = README.read_text().split("## Setup", 1)[1].split("##", 1)[0]
    (commands,) = re.findall(r"```sh\n(.*?)```", setup, flags=re.S)
    assert [line.split("#")[0].strip() for line in commands.strip().splitlines()] == [
        "uv run jupyter lab notebooks/",
        "uv run pytest",
    ]
