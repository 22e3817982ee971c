"""How a durable log keeps event data: JSON through the trace's codec, checked at emit time.

What the codec gives back exactly is kept as JSON text; what it could keep only as its
``repr`` (a set, an arbitrary object) is refused, naming where it is in the event.

>>> text = encode({"pair": (1, 2), 3: "three"})
>>> decode(text)
{'pair': (1, 2), 3: 'three'}
>>> encode({"n": 1})
'{"n": 1}'
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from typing import Any

from baxiflow.event import WorkflowEvent
from baxiflow.trace._jsonable import MARKERS, from_jsonable, to_jsonable

__all__ = ["REPR_MARKER", "decode", "encode", "encode_event", "unloggable"]

REPR_MARKER = '"__repr__"'
"""In encoded data, the mark of a value the codec could keep only as its repr."""


def _plain_encoder() -> Callable[[dict[str, Any], int], list[str]]:
    """The chunks of ``json.dumps(value)`` (``"".join`` them) for a dict that :func:`_plain`
    accepts: the C encoder ``json.dumps`` uses, set up once (without the check for cycles,
    which a dict of scalars cannot have). ``json.dumps`` sets up a new one on every call,
    which costs twice the encoding of a small dict. A Python without the json module's C
    speedups uses ``json.dumps`` itself.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value, _: [json.dumps(value)]
    return make(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ",  # type: ignore[no-any-return]
                False, False, True)  # fmt: skip


_plain_chunks = _plain_encoder()


def encode(value: object) -> str | None:
    """``value`` as the log keeps it: JSON text (``None`` stays ``None``)."""
    if value is None:
        return None
    if value.__class__ is dict and _plain(value):
        return "".join(_plain_chunks(value, 0))  # the common case
    return json.dumps(to_jsonable(value))


def encode_event(event: WorkflowEvent) -> tuple[str | None, str | None, str | None]:
    """``event``'s data and metadata as :func:`encode` keeps them, and what in them could
    not come back exactly (``None`` when all of it can).

    >>> encode_event(WorkflowEvent("x", {"n": 1}))
    ('{"n": 1}', None, None)
    >>> encode_event(WorkflowEvent("x", {"n": {1}}))[2]
    "data['n'] is a set, which the log could keep only as its repr"
    """
    value = event.data
    if value.__class__ is dict and event.metadata is None and _plain(value):
        # The common case, first: every event of a logged run comes here.
        return "".join(_plain_chunks(value, 0)), None, None
    data, metadata = encode(value), encode(event.metadata)
    if (data is not None and REPR_MARKER in data) or (
        metadata is not None and REPR_MARKER in metadata
    ):
        return data, metadata, unloggable(event)
    return data, metadata, None


_SCALARS = frozenset({str, bool, type(None)})


def _plain(mapping: dict[Any, Any]) -> bool:
    """Whether JSON holds ``mapping`` exactly as it is: string keys (none a codec marker),
    and values that are strings, booleans, ``None``, small integers or finite floats."""
    if len(mapping) == 1 and not MARKERS.isdisjoint(mapping):
        return False
    for key, item in mapping.items():
        if key.__class__ is not str:
            return False
        kind = item.__class__
        if kind in _SCALARS:
            continue
        if kind is int:
            if item.bit_length() > 64:
                return False
        elif kind is not float or not math.isfinite(item):
            return False
    return True


def decode(text: str | None) -> Any:
    """What :func:`encode` made ``text`` from."""
    return None if text is None else from_jsonable(json.loads(text))


def unloggable(event: WorkflowEvent) -> str | None:
    """What in ``event`` the log could not give back exactly, or ``None``.

    The trace's codec decides: what it keeps only as a ``repr`` cannot come back.

    >>> unloggable(WorkflowEvent("ok", {"when": (2026, 12), 3: float("nan")}))
    >>> unloggable(WorkflowEvent("bad", {"when": {1, 2}}))
    "data['when'] is a set, which the log could keep only as its repr"
    """
    for part in ("data", "metadata"):
        found = _first_unloggable(getattr(event, part), part)
        if found is not None:
            return found
    return None


def _first_unloggable(value: object, path: str) -> str | None:
    if isinstance(value, list | tuple):
        pairs: Any = enumerate(value)
    elif isinstance(value, dict):
        for key in value:
            if _kept_as_repr(key):
                return f"a key of {path} is a {type(key).__name__}, which the log could keep only as its repr"
        pairs = value.items()
    elif _kept_as_repr(value):
        return f"{path} is a {type(value).__name__}, which the log could keep only as its repr"
    else:
        return None
    for key, item in pairs:
        if (found := _first_unloggable(item, f"{path}[{key!r}]")) is not None:
            return found
    return None


def _kept_as_repr(value: object) -> bool:
    encoded = to_jsonable(value)
    return isinstance(encoded, dict) and len(encoded) == 1 and "__repr__" in encoded
