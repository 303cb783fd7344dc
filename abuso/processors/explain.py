"""The human view: what was found, what each parser thought, what the filters dropped.

It answers the question abuse desks ask most: "why did this report give 0 incidents?"
"""

from __future__ import annotations

from ..model import Report
from ..output.text import incident_line
from .base import Processor


def explain(report: Report) -> str:
    out: list[str] = []
    n = len(report.incidents)
    out.append(f"== {report.origin}")
    if report.subject:
        out.append(f"Subject:    {report.subject}")
    if report.sender:
        out.append(f"From:       {report.sender}")
    if report.message_id:
        out.append(f"Message-ID: {report.message_id}")
    out.append(f"Date:       {report.date.isoformat() if report.date else '(none or invalid)'}")
    out.append(f"Result:     {'valid' if report.valid else 'NOT valid'}, {n} incident{'s' if n != 1 else ''}")
    for inc in report.incidents:
        out.append(incident_line(inc))
        if inc.evidence:
            out.append(f"      evidence: {inc.evidence[:200]}")
        radius = inc.extra.get("radius")
        if radius:
            out.append(f"      radius: {radius}")
    out.append("Parsers:")
    for name, v in report.verdicts.items():
        state = "applied" if v.applied else "not applicable"
        out.append(f"  {name:<9} {state}: {v}")
    if report.dropped:
        out.append("Filters dropped:")
        for d in report.dropped:
            out.append(f"  {d.filter:<5} {d.incident.ip} {d.incident.type}: {d.reason}")
    elif report.verdicts:
        out.append("Filters dropped: nothing")
    problems = getattr(report.message, "problems", None)
    if problems:
        out.append("Normalizer:")
        out.extend(f"  {p}" for p in problems)
    notes = {k: v for k, v in report.notes.items() if k not in ("explain", "arrival")}
    if notes:
        out.append("Processors:")
        for k, v in notes.items():
            out.append(f"  {k}: {v}")
    return "\n".join(out) + "\n"


class ExplainProcessor(Processor):
    """Renders :func:`explain` into ``report.notes['explain']``; text output prints it.

    Put it last in ``processors`` so it shows what the others did.
    """

    name = "explain"
    OPTIONS = ()

    def process(self, report: Report) -> None:
        report.notes["explain"] = explain(report)
