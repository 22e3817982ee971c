"""DataFrames with tidy dtypes, one rule for every table baxiflow hands to pandas.

Text is ``string``, a closed set of words (a kind, a status) is ``category``, whole numbers
are ``Int64`` even with gaps, amounts that may be fractions are ``Float64``, and times of day
are UTC ``datetime64``; so every missing value shows as ``<NA>``, counts stay integers and
durations stay seconds as floats.

>>> frame = typed_frame(
...     [{"seq": 0, "parent": None, "name": "start", "kind": "event", "at": 0.0}],
...     {"seq": "int", "parent": "int", "name": "text", "kind": "category", "at": "time"},
... )
>>> [str(dtype).split("[")[0] for dtype in frame.dtypes]
['Int64', 'Int64', 'string', 'category', 'datetime64']
>>> frame.parent[0]
<NA>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

from baxiflow._optional import import_optional

__all__ = ["ColumnKind", "typed_frame"]

ColumnKind: TypeAlias = Literal["text", "category", "int", "amount", "seconds", "time", "object"]
"""What a column holds: ``"amount"`` is ``Int64`` when every value is whole, else ``Float64``;
``"seconds"`` a duration as float seconds; ``"time"`` seconds since the epoch, shown as UTC."""

_DTYPES: Final[dict[str, str]] = {
    "text": "string",
    "category": "category",
    "int": "Int64",
    "seconds": "float64",
}


def typed_frame(
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, ColumnKind],
    *,
    feature: str = "DataFrames of runs",
) -> Any:
    """A DataFrame of ``rows`` with ``columns`` in order, each of the dtype its kind names.

    Extra columns in the rows (flattened ``data.*`` keys, say) keep the dtype pandas infers;
    ``feature`` names what needs pandas in the error when it is missing.

    Raises:
        MissingDependencyError: pandas is not installed (the ``notebook`` extra brings it).
    """
    pandas = import_optional("pandas", feature=feature)
    names = list(columns)
    extra = sorted({key for row in rows for key in row} - set(names), key=_first_seen(rows))
    frame = pandas.DataFrame(list(rows), columns=names + extra)
    for name, kind in columns.items():
        if kind == "time":
            frame[name] = pandas.to_datetime(frame[name], unit="s", utc=True)
        elif kind == "amount":
            whole = all(_is_whole(value) for value in frame[name] if not pandas.isna(value))
            frame[name] = frame[name].astype("Int64" if whole else "Float64")
        elif kind != "object":
            frame[name] = frame[name].astype(_DTYPES[kind])
    return frame


def _is_whole(value: object) -> bool:
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _first_seen(rows: Sequence[Mapping[str, Any]]) -> Any:
    order: dict[str, int] = {}
    for row in rows:
        for key in row:
            order.setdefault(key, len(order))
    return order.__getitem__
