"""Durations in config files: ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from .lazy import lazy_compile

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RX = lazy_compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)


def parse_duration(value: object) -> timedelta:
    """A non-negative duration; ValueError with a readable message otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _RX.match(str(value))
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30d, 12h, 90m, 45s)")
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return timedelta(seconds=seconds)
