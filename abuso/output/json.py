"""One JSON object per report per line, as design.md specifies."""

from __future__ import annotations

import json

from ..model import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, default=str, sort_keys=False) + "\n"
