"""Words and numbers as people read them: durations in human units, counted nouns.

>>> format_duration(0.0000123), format_duration(0.01234), format_duration(75.5)
('12.3 µs', '12.3 ms', '75.5 s')
>>> plural(1, "error"), plural(3, "handler call"), plural(12345, "event")
('1 error', '3 handler calls', '12,345 events')
>>> run_counts(4, 12, 1)
'4 events, 12 progress, 1 error'
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "plural", "run_counts", "traceback_location"]


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
    """``count`` (with thousands separators) and ``noun``, with an ``s`` unless it is 1."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def run_counts(events: int, progress: int, errors: int) -> str:
    """How every view counts a run: events (progress ones apart), progress events, errors.

    ``events`` counts the initial event and every event that is not a progress event
    (errors included), as :attr:`RunResult.events <baxiflow.RunResult.events>` does.
    """
    return f"{plural(events, 'event')}, {progress:,} progress, {plural(errors, 'error')}"


_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$', re.M)


def traceback_location(text: object) -> str | None:
    """Where a traceback's text says the error happened: its innermost frame, or ``None``.

    >>> traceback_location('''Traceback (most recent call last):
    ...   File "/src/flow.py", line 12, in book
    ...     raise ValueError("calendar unreachable")
    ... ValueError: calendar unreachable
    ... ''')
    '/src/flow.py, line 12, in book'
    """
    if not isinstance(text, str):
        return None
    frames = _FRAME.findall(text)
    if not frames:
        return None
    file, line, function = frames[-1]
    return f"{file}, line {line}, in {function}"
