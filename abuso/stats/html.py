"""``abuso stats -f html``: one self-contained page (inline SVG, no script, nothing from the network).

Every string from the store (reporters' addresses, customer names) is escaped: they come from hostile mail.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from html import escape

from . import Stats, delay_labels
from .svg import bars, stacked_columns

#: Titles of the charts, also looked for by the tests in the rendered page.
TITLES = {"daily": "Incidents per day, by type", "customers": "Top customers", "reporters": "Top reporters",
          "delays": "Time from incident to report", "chronic": "Chronic offenders"}

_STYLE = """body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}figure{margin:0}svg{max-width:100%;height:auto}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
td.n{text-align:right}.empty{color:#777}"""


def _daily(stats: Stats) -> str | None:
    days = sorted(stats.daily_types)
    if not days:
        return None
    totals: Counter = Counter()
    for d in days:
        totals.update(stats.daily_types[d])
    series = {t: [stats.daily_types[d].get(t, 0) for d in days] for t, _ in totals.most_common()}
    return stacked_columns(days, series, TITLES["daily"])


def _chronic_table(stats: Stats) -> str:
    if not stats.chronic:
        return '<p class="empty">No address was reported that often.</p>'
    head = "<tr><th>address</th><th>reports</th><th>incidents</th><th>first</th><th>last</th>" \
           "<th>customer</th><th>user</th></tr>"
    rows = "".join(
        f"<tr><td>{escape(c.ip)}</td><td class=n>{c.reports}</td><td class=n>{c.incidents}</td>"
        f"<td>{escape(c.first or '-')}</td><td>{escape(c.last or '-')}</td>"
        f"<td>{escape(c.customer or '-')}</td><td>{escape(c.user or '-')}</td></tr>" for c in stats.chronic)
    return f"<table>{head}{rows}</table>"


def render(stats: Stats, *, top: int = 10, period: str = "", chronic: str = "",
           now: datetime | None = None) -> str:
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>abuso statistics</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>abuso statistics</h1><p>{stats.incidents} incidents in {stats.reports} reports"
             f"{escape(period)}; made {when}.</p>"]
    customers, reporters = stats.top("customer", top), stats.top("reporter", top)
    sections = [
        ("daily", _daily(stats)),
        ("customers", bars(customers, TITLES["customers"], "#4c72b0") if customers else None),
        ("reporters", bars(reporters, TITLES["reporters"], "#dd8452") if reporters else None),
        ("delays", bars([(k, stats.delays.get(k, 0)) for k in delay_labels()], TITLES["delays"], "#55a868")
         if stats.incidents else None),
    ]
    for key, svg in sections:
        parts.append(f'<h2 id="{key}">{escape(TITLES[key])}</h2>')
        parts.append(f"<figure>{svg}</figure>" if svg else '<p class="empty">Nothing to draw.</p>')
    parts.append(f'<h2 id="chronic">{escape(TITLES["chronic"])}{escape(chronic)}</h2>')
    parts.append(_chronic_table(stats))
    parts.append("</body></html>\n")
    return "\n".join(parts)
