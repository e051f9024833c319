"""Human durations ("10m", "2h30m", "1d", 90) to timedeltas.

Definitions, schedules and limits all speak this one format, so it is parsed in one
place and every error says the same thing.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$")
# Protobuf's Duration (what Temporal accepts) ends at 10,000 years; past it, timedelta
# overflows. Nothing longer could ever have run, so old definitions stay valid.
MAX_SECONDS = 315_576_000_000
MAX_TEXT = 200


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a duration; bare numbers are seconds. Raises ValueError with the reason."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return _bounded(value, value)
    text = str(value).strip().lower()
    if len(text) > MAX_TEXT:
        raise ValueError(f"invalid duration: longer than {MAX_TEXT} characters")
    if text.isdigit():
        return _bounded(int(text), value)
    if not text or not _WHOLE.match(text):
        raise ValueError(
            f"invalid duration {value!r}: use a number with a unit, e.g. 30s, 10m, 2h, 1d, 1h30m"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    return _bounded(seconds, value)


def _bounded(seconds: float, given: object) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"duration {given!r} is longer than the limit of 10000 years")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    if total == 0:
        return f"{int(delta.total_seconds() * 1000)}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
