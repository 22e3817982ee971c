"""Check settings where they enter: one rule for "a positive number, or ``None`` for no limit".

>>> check_limit("timeout", 2.5, integer=False)
2.5
>>> check_limit("max_events", 0, integer=True)
Traceback (most recent call last):
...
ValueError: max_events must be a positive int or None (no limit), got 0
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_limit"]


def check_limit(name: str, value: object, *, integer: bool) -> Any:
    """Return ``value`` if it is ``None`` or a positive number, else raise ``ValueError``.

    Args:
        name: The setting's name, for the message.
        value: What was given.
        integer: Accept only ``int`` (``bool`` never counts as a number).
    """
    if value is None:
        return None
    kind = int if integer else (int, float)
    # `not value > 0` also refuses NaN, which compares false with everything.
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        expected = "a positive int" if integer else "a positive number of seconds"
        raise ValueError(f"{name} must be {expected} or None (no limit), got {value!r}")
    return value
