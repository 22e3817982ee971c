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


def section(title: str) -> str:
    return README.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_says_how_to_add_baxiflow_to_another_project_with_the_notebook_extra() -> None:
    own = section("Adding baxiflow to your own project")
    assert "uv add --extra notebook /path/to/baxiflow" in own
    assert '"/path/to/baxiflow[notebook]"' in own


def test_readme_explains_a_run_in_plain_words_before_the_precise_rules() -> None:
    run = section("How a run works")
    first, rules = run.split("\n- ", 1)
    assert "In plain words" in first
    assert "process(initial_event)" in rules


def test_readme_compares_features_only_and_claims_no_speed_figures() -> None:
    why = section("Why baxiflow")
    assert "no speed figures are measured here" in why
    assert not re.search(r"\d+(\.\d+)?\s*(x|\u00d7|µs|ms|s)\b", why)


def test_readme_input_example_waits_for_the_answer_and_prints_what_it_promises() -> None:
    (example,) = [block for block in python_blocks() if "input_required" in block]
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["ticket", "input_required", "approval", "booked"]
    promised = section("Input from people: `input_required` and `workflow.start`")
    assert "prints `ticket`, `input_required`, `approval`, `booked`." in promised


def test_readme_concurrency_example_overlaps_and_retries_as_it_says() -> None:
    (block,) = [b for b in python_blocks() if "concurrency=5" in b]
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["['found', 'found', 'found', 'found', 'question'] 3"]
    rules = section("Concurrency and retries")
    assert "What order still holds" in rules and "What no longer holds" in rules
