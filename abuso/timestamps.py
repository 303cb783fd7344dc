"""Time zones named in reports. (The log parser's timestamp finder extends this module.)"""

from __future__ import annotations

import re
from datetime import timedelta

#: Abbreviations seen in abuse reports, as fixed offsets in hours.
ZONE_ABBREVIATIONS: dict[str, float] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "BST": 1, "IST": 5.5, "CET": 1, "MEZ": 1, "CEST": 2,
    "MESZ": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
    "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "JST": 9, "KST": 9, "AEST": 10,
    "AEDT": 11, "ACST": 9.5, "AWST": 8, "NZST": 12, "NZDT": 13, "SGT": 8, "HKT": 8, "BRT": -3, "ART": -3,
    "VET": -4,
}

_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.I)


def zone_offset(name: str) -> timedelta | None:
    """'UTC', 'CET', '+0100', 'UTC-5', 'GMT+05:30' -> offset; None if unknown."""
    s = name.strip()
    hours = ZONE_ABBREVIATIONS.get(s.upper())
    if hours is not None:
        return timedelta(hours=hours)
    m = _OFFSET.match(s)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        h, mins = int(m.group(2)), int(m.group(3) or 0)
        if h <= 14 and mins < 60:
            return sign * timedelta(hours=h, minutes=mins)
    return None
