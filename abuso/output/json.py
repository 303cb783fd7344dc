"""One JSON object per report per line, as design.md specifies."""

from __future__ import annotations

from ..model import Report
from . import valid_text
from .encode import dumps_with, incidents_json


def render(report: Report) -> str:
    # json.dumps(report.to_dict(), ensure_ascii=False, default=str), the incidents' text made once per
    # report (the store writes the same text into its JSON file).
    return valid_text(dumps_with(report._as_dict(None), "incidents", incidents_json(report))) + "\n"
