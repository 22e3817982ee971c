"""Turn any Python value into JSON-ready data and back, exactly where JSON can hold it.

Plain JSON values (``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list`` and
``dict`` with string keys) pass through unchanged. Four more come back exactly, through a
one-key marker object: tuples (``{"__tuple__": [...]}``), dicts with keys JSON cannot hold
or that would read as a marker (``{"__dict__": [[key, value], ...]}``), non-finite floats
(``{"__float__": "nan"}``) and integers too long for Python to turn into decimal text by
default (``{"__int__": "0x..."}``, hexadecimal, which has no such limit). Anything else is
stored as its ``repr`` (``{"__repr__": "..."}``) and comes back as a :class:`ReprValue`,
so nothing is lost silently and nothing crashes.

>>> import json
>>> value = {"point": (1, 2.5), 3: None, "tags": frozenset()}
>>> text = json.dumps(to_jsonable(value))
>>> text
'{"__dict__": [["point", {"__tuple__": [1, 2.5]}], [3, null], ["tags", {"__repr__": "frozenset()"}]]}'
>>> from_jsonable(json.loads(text))
{'point': (1, 2.5), 3: None, 'tags': ReprValue('frozenset()')}
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["MARKERS", "ReprValue", "from_jsonable", "to_jsonable"]

_TUPLE: Final = "__tuple__"
_DICT: Final = "__dict__"
_FLOAT: Final = "__float__"
_REPR: Final = "__repr__"
_INT: Final = "__int__"
MARKERS: Final = frozenset({_TUPLE, _DICT, _FLOAT, _REPR, _INT})
"""Keys of the one-key objects that stand for values plain JSON cannot hold."""

_SCALARS: Final = frozenset({type(None), bool, str})

_LONG_INT_BITS: Final = 12_000
"""Integers this long or longer (about 3,600 digits) are saved in hexadecimal: Python's
default limit on decimal conversion (4,300 digits) would stop ``json`` writing or reading
them."""


class ReprValue(str):
    """The ``repr`` of a value JSON could not hold, as read back from a saved trace.

    It is a ``str`` (so it shows as text in a DataFrame) that remembers it stands for
    another value, so saving it again writes the same marker.

    >>> ReprValue("{1, 2}")
    ReprValue('{1, 2}')
    >>> ReprValue("{1, 2}") == "{1, 2}"
    True
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ReprValue({str.__repr__(self)})"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:
        # A broken __repr__ must not make saving a trace fail.
        return f"<{type(value).__qualname__} object; repr() raised {type(exc).__name__}>"


def to_jsonable(value: object) -> Any:
    """Return ``value`` as data ``json.dumps(..., allow_nan=False)`` accepts.

    Containers that contain themselves are cut at the repeated container, stored as its
    ``repr``.

    >>> to_jsonable([1, (2, float("inf")), {"__repr__": "user data, not a marker"}])
    [1, {'__tuple__': [2, {'__float__': 'inf'}]}, {'__dict__': [['__repr__', 'user data, not a marker']]}]
    >>> to_jsonable(object())  # doctest: +ELLIPSIS
    {'__repr__': '<object object at 0x...>'}
    """
    return _encode(value, set())


def _encode(value: object, active: set[int]) -> Any:
    if type(value) in _SCALARS:
        return value
    if type(value) is int:
        return value if value.bit_length() < _LONG_INT_BITS else {_INT: hex(value)}
    if type(value) is float:
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if type(value) is ReprValue:
        return {_REPR: str(value)}
    if type(value) is not list and type(value) is not tuple and type(value) is not dict:
        return {_REPR: _safe_repr(value)}
    key = id(value)
    if key in active:
        return {_REPR: _safe_repr(value)}
    active.add(key)
    try:
        if type(value) is list:
            return [_encode(item, active) for item in value]
        if type(value) is tuple:
            return {_TUPLE: [_encode(item, active) for item in value]}
        assert type(value) is dict
        if all(type(k) is str for k in value) and not (
            len(value) == 1 and next(iter(value)) in MARKERS
        ):
            return {k: _encode(v, active) for k, v in value.items()}
        return {_DICT: [[_encode(k, active), _encode(v, active)] for k, v in value.items()]}
    finally:
        active.discard(key)


def from_jsonable(data: Any) -> Any:
    """Inverse of :func:`to_jsonable`: rebuild the value from parsed JSON.

    Raises:
        ValueError: A marker object is malformed (e.g. ``{"__tuple__": 3}``).

    >>> from_jsonable({"__tuple__": [1, {"__float__": "nan"}]})
    (1, nan)
    """
    kind = type(data)
    if kind is list:
        return [from_jsonable(item) for item in data]
    if kind is not dict:
        return data
    if len(data) == 1:
        marker, inner = next(iter(data.items()))
        if marker in MARKERS:
            return _decode_marker(marker, inner)
    return {k: from_jsonable(v) for k, v in data.items()}


def _decode_marker(marker: str, inner: Any) -> Any:
    if marker == _REPR and type(inner) is str:
        return ReprValue(inner)
    if marker == _FLOAT and inner in ("nan", "inf", "-inf"):
        return float(inner)
    if marker == _INT and type(inner) is str:
        try:
            return int(inner, 16)
        except ValueError:
            pass
    if marker == _TUPLE and type(inner) is list:
        return tuple(from_jsonable(item) for item in inner)
    if marker == _DICT and type(inner) is list and all(_is_pair(p) for p in inner):
        try:
            return {from_jsonable(k): from_jsonable(v) for k, v in inner}
        except TypeError as exc:  # an unhashable key
            raise ValueError(f"malformed {marker} marker: {exc}") from None
    raise ValueError(f"malformed {marker} marker: {inner!r:.80}")


def _is_pair(item: object) -> bool:
    return type(item) is list and len(item) == 2
