"""A short human summary: one line per report, one indented line per incident, and one
line per processor that said in words what it did (a :class:`~abuso.processors.base.Note`).

When the ``explain`` processor ran, its fuller account is printed instead.
"""

from __future__ import annotations

from ..model import Incident, Report
from ..processors.base import Note


def incident_line(inc: Incident) -> str:
    when = inc.time.strftime("%Y-%m-%d %H:%M:%S UTC") if inc.time else "(no time)"
    address = str(inc.ip)
    if inc.port is not None:
        # 2001:db8::77:6881 would read as one address: bracket IPv6 with a port (RFC 3986).
        address = f"[{address}]:{inc.port}" if inc.ip.version == 6 else f"{address}:{inc.port}"
    extra = ""
    customer = inc.extra.get("customer")
    if isinstance(customer, dict) and customer:
        extra += " customer=" + ",".join(f"{k}={v}" for k, v in customer.items() if not isinstance(v, dict))
    if inc.extra.get("asn") is not None:
        extra += f" AS{inc.extra['asn']}" + (f" ({inc.extra['as_name']})" if inc.extra.get("as_name") else "")
    if inc.extra.get("user"):
        extra += f" user={inc.extra['user']}"
    return f"  {address:<24} {inc.type:<22} {when}  [{inc.zone}, {inc.parser}]{extra}"


def render(report: Report) -> str:
    explained = report.notes.get("explain")
    if explained:
        return explained if explained.endswith("\n") else explained + "\n"
    n = len(report.incidents)
    head = f"{report.origin}: {n} incident{'s' if n != 1 else ''}"
    if not n:
        reasons = [f"{name}: {v}" for name, v in report.verdicts.items() if v.applied or v.incidents]
        dropped = report.filtered
        if dropped:
            reasons.append("filtered " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
        head += " (" + ("; ".join(reasons) if reasons else "no parser recognised this report") + ")"
    problems = getattr(report.message, "problems", None)
    if problems:  # what the normalizer cut or could not read: never silent
        head += " [" + "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "") + "]"
    lines = [head] + [incident_line(i) for i in report.incidents]
    lines += [f"  {name}: {note}" for name, note in report.notes.items() if isinstance(note, Note)]
    return "\n".join(lines) + "\n"
