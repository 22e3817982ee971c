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
from collections.abc import Callable, Iterator
from typing import Any, Final

from baxiflow.event import TracebackText

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
    ``repr``. Nesting costs no stack, so any depth that ``json`` can write is encoded.

    >>> to_jsonable([1, (2, float("inf")), {"__repr__": "user data, not a marker"}])
    [1, {'__tuple__': [2, {'__float__': 'inf'}]}, {'__dict__': [['__repr__', 'user data, not a marker']]}]
    >>> to_jsonable(object())  # doctest: +ELLIPSIS
    {'__repr__': '<object object at 0x...>'}
    """
    active: set[int] = set()
    return _walk(value, lambda item: _encode(item, active), active.discard)


class _Pair(tuple[Any, Any]):
    """A key and its value in a ``{"__dict__": ...}`` marker, encoded as a two-item list."""

    __slots__ = ()


_Children = Iterator[tuple[Any, Any]]
_Frame = tuple[Any, _Children, "Callable[[Any], Any] | None", int]
"""A container being filled: its output, its ``(slot, child)`` pairs (slot ``None``:
append), what turns the filled output into the value, and the id to release when done."""


def _walk(
    value: object,
    step: Callable[[Any], tuple[Any, _Frame | None]],
    release: Callable[[int], None],
) -> Any:
    """Build the result of ``step`` over a nested value with a stack of our own, not Python's.

    ``step`` turns a value into its result, or into an empty container and the frame that
    fills it; a frame's ``finish`` makes the final value (a tuple, a dict) once it is full.
    """
    root, frame = step(value)
    if frame is None:
        return root
    stack: list[tuple[_Frame, Any]] = [(frame, None)]
    while stack:
        (out, children, finish, key), slot = stack[-1]
        for child_slot, child in children:
            result, inner = step(child)
            if inner is not None:
                stack.append((inner, child_slot))
                break
            if child_slot is None:
                out.append(result)
            else:
                out[child_slot] = result
        else:
            stack.pop()
            release(key)
            done = out if finish is None else finish(out)
            if not stack:
                return done
            parent = stack[-1][0][0]
            if slot is None:
                parent.append(done)
            else:
                parent[slot] = done
    raise AssertionError("unreachable")


def _items(sequence: Any) -> _Children:
    return ((None, item) for item in sequence)


def _encode(value: object, active: set[int]) -> tuple[Any, _Frame | None]:
    if type(value) in _SCALARS:
        return value, None
    if type(value) is int:
        return (value if value.bit_length() < _LONG_INT_BITS else {_INT: hex(value)}), None
    if type(value) is float:
        return (value if math.isfinite(value) else {_FLOAT: repr(value)}), None
    if type(value) is ReprValue:
        return {_REPR: str(value)}, None
    if type(value) is TracebackText:
        return str(value), None  # the text alone: the live exception is never saved
    if type(value) is _Pair:
        return None, ([], _items(value), None, 0)
    if type(value) is not list and type(value) is not tuple and type(value) is not dict:
        return {_REPR: _safe_repr(value)}, None
    key = id(value)
    if key in active:
        return {_REPR: _safe_repr(value)}, None
    active.add(key)
    if type(value) is list:
        return None, ([], _items(value), None, key)
    if type(value) is tuple:
        return None, ([], _items(value), _wrap_tuple, key)
    assert type(value) is dict
    if all(type(k) is str for k in value) and not (
        len(value) == 1 and next(iter(value)) in MARKERS
    ):
        return None, ({}, iter(value.items()), None, key)
    pairs = ((None, _Pair(item)) for item in value.items())
    return None, ([], pairs, _wrap_dict, key)


def _wrap_tuple(items: list[Any]) -> Any:
    return {_TUPLE: items}


def _wrap_dict(pairs: list[Any]) -> Any:
    return {_DICT: pairs}


def from_jsonable(data: Any) -> Any:
    """Inverse of :func:`to_jsonable`: rebuild the value from parsed JSON, at any depth.

    Raises:
        ValueError: A marker object is malformed (e.g. ``{"__tuple__": 3}``).

    >>> from_jsonable({"__tuple__": [1, {"__float__": "nan"}]})
    (1, nan)
    """
    return _walk(data, _decode, _release_nothing)


def _release_nothing(key: int) -> None:
    pass


def _decode(data: Any) -> tuple[Any, _Frame | None]:
    kind = type(data)
    if kind is list:
        return None, ([], _items(data), None, 0)
    if kind is not dict:
        return data, None
    if len(data) == 1:
        marker, inner = next(iter(data.items()))
        if marker == _TUPLE and type(inner) is list:
            return None, ([], _items(inner), tuple, 0)
        if marker == _DICT and type(inner) is list and all(_is_pair(p) for p in inner):
            return None, ([], _items(inner), _dict_of_pairs, 0)
        if marker in MARKERS:
            return _decode_marker(marker, inner), None
    return None, ({}, iter(data.items()), None, 0)


def _dict_of_pairs(pairs: list[list[Any]]) -> dict[Any, Any]:
    try:
        return {k: v for k, v in pairs}
    except TypeError as exc:  # an unhashable key
        raise ValueError(f"malformed {_DICT} marker: {exc}") from None


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
    raise ValueError(f"malformed {marker} marker: {inner!r:.80}")


def _is_pair(item: object) -> bool:
    return type(item) is list and len(item) == 2
