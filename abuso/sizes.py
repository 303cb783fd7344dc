"""Sizes in config files: ``512M``, ``1G``, ``1 GB``, ``64KiB`` or plain bytes (K, M, G, T count in 1024s)."""

from __future__ import annotations

import re

from .lazy import lazy_compile

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_RX = lazy_compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b|bytes?))?\s*$", re.I)


def parse_size(value: object) -> int:
    """A non-negative number of bytes; ValueError with a readable message otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        m = _RX.match(str(value))
        if not m:
            raise ValueError(f"not a size: {value!r} (use e.g. 512M or 1G)")
        size = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if size < 0:
        raise ValueError(f"size must not be negative: {value!r}")
    return int(size)


def show_size(size: int) -> str:
    """``1 GB``, ``512 MB``, ``1.5 GB``, ``200 bytes``: how a size is said in messages."""
    for unit, name in ((1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if size >= unit:
            return f"{round(size / unit, 1):g} {name}"
    return f"{size} bytes"
