"""One JSON object per report per line, as design.md specifies."""

from __future__ import annotations

import json

from ..model import Report
from . import valid_text


def render(report: Report) -> str:
    return valid_text(json.dumps(report.to_dict(), ensure_ascii=False, default=str, sort_keys=False)) + "\n"
