"""One customer's digest: a summary per address in the body, every incident in a CSV attachment
with IntelMQ field names, RFC 3834 headers so that auto-responders stay quiet."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from ..processors.mailer.templates import Template, clean, plain_message
from ..storage.ledger import Row

#: CSV columns: IntelMQ harmonization names, so the customer's own tooling can read them.
CSV_FIELDS = ("time.source", "source.ip", "source.port", "classification.taxonomy", "classification.type",
              "source.asn", "event_description.text", "extra.reporter", "extra.report_date",
              "extra.report_message_id")

DEFAULT_BODY = """Hello,

our abuse desk received reports about ${count} incidents from addresses of yours (${customer})
since our last message. Please look into them; the attached CSV file lists every incident.

${summary}

This message was sent automatically; reply to reach the abuse desk.
"""


def _when(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if t else "-"


def summary(rows: list[Row], max_rows: int) -> str:
    """Per address: types, first and last seen, count, one evidence line; most reported first."""
    by_ip: dict[str, list[Row]] = {}
    for row in rows:
        by_ip.setdefault(row.ip, []).append(row)
    ordered = sorted(by_ip.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    lines = []
    for ip, items in ordered[:max_rows]:
        times = [r.time for r in items if r.time]
        types = ", ".join(sorted({r.type for r in items}))
        lines.append(f"  {ip}  {types}; {len(items)} incident{'s' * (len(items) != 1)}, "
                     f"first {_when(min(times) if times else None)}, last {_when(max(times) if times else None)} UTC")
        evidence = next((r.evidence for r in items if r.evidence), "")
        if evidence:
            lines.append(f"      {clean(evidence, 160)}")
    if len(ordered) > max_rows:
        lines.append(f"  ... and {len(ordered) - max_rows} more addresses (see the attachment)")
    return "\n".join(lines)


def csv_text(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        extra: dict[str, Any] = json.loads(r.extra) if r.extra else {}
        writer.writerow([r.time.astimezone(timezone.utc).isoformat() if r.time else "", r.ip,
                         "" if r.port is None else r.port, r.taxonomy, r.type, extra.get("asn") or "",
                         clean(r.evidence, 1000), clean(r.reporter or "", 200),
                         r.report_date.isoformat() if r.report_date else "", clean(r.report_id or "", 200)])
    return out.getvalue()


def build(*, sender: str, recipients: list[str], customer: str, rows: list[Row], message_id: str,
          subject: Template, body: Template, max_rows: int, period: str = "") -> EmailMessage:
    values = {"customer": clean(customer, 100), "count": str(len(rows)), "summary": summary(rows, max_rows),
              "period": period}
    msg = plain_message(sender, ", ".join(recipients), clean(subject.render(values).strip(), 200),
                        body.render(values),
                        headers=[("Date", format_datetime(datetime.now(timezone.utc))), ("Message-ID", message_id),
                                 ("Auto-Submitted", "auto-generated"),            # RFC 3834
                                 ("X-Auto-Response-Suppress", "All")])
    msg.add_attachment(csv_text(rows).encode("utf-8"), maintype="text", subtype="csv",
                       filename=f"incidents-{clean(customer, 40).replace(' ', '_').replace('/', '_')}.csv")
    return msg
