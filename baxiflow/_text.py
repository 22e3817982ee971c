"""Words and numbers as people read them: durations in human units, counted nouns.

>>> format_duration(0.0000123), format_duration(0.01234), format_duration(75.5)
('12.3 µs', '12.3 ms', '75.5 s')
>>> plural(1, "error"), plural(3, "handler call")
('1 error', '3 handler calls')
"""

from __future__ import annotations

__all__ = ["format_duration", "plural"]


def format_duration(seconds: float | None) -> str:
    """Format ``seconds`` in µs, ms or s, with three significant digits; ``None`` as ``-``.

    Every time shown as text uses it, so one regex masks them all in saved outputs:
    ``\\d+(\\.\\d+)? (µs|ms|s)``.

    >>> [format_duration(s) for s in (0, 0.0005, 0.1, 0.99999, 1.25, 12.34, 3600)]
    ['0.00 µs', '500 µs', '100 ms', '1.00 s', '1.25 s', '12.3 s', '3600 s']
    >>> format_duration(None)
    '-'
    """
    if seconds is None:
        return "-"
    # Rounded before the unit is chosen, so 0.99999 reads 1.00 s, not 1000 ms.
    seconds = float(f"{seconds:.3g}")
    if seconds < 0.001:
        value, unit = seconds * 1_000_000, "µs"
    elif seconds < 1:
        value, unit = seconds * 1000, "ms"
    else:
        value, unit = seconds, "s"
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{decimals}f} {unit}"


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an ``s`` unless ``count`` is 1."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
