"""``abuso stats``: trends and chronic cases over the store, as a table, JSON or one HTML page with charts."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from .query import QueryError, _load, time_window


def parse_chronic(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*d?\s*", value)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise QueryError(f"--chronic: {value!r} is not N/DAYS (e.g. 3/30: at least 3 reports in 30 days)")
    return int(m.group(1)), int(m.group(2))


def _text(stats: Any, by: str, top: int) -> str:
    rows = stats.top(by, top)
    width = max([len(by)] + [len(str(k)) for k, _ in rows])
    lines = [f"{stats.incidents} incidents in {stats.reports} reports", "",
             f"{by.upper():<{width}}  INCIDENTS"]
    lines += [f"{k:<{width}}  {v:>9}" for k, v in rows]
    if stats.chronic:
        table = [["CHRONIC IP", "REPORTS", "INCIDENTS", "FIRST (UTC)", "LAST (UTC)", "CUSTOMER", "USER"]]
        table += [[c.ip, str(c.reports), str(c.incidents), c.first or "-", c.last or "-", c.customer or "-",
                   c.user or "-"] for c in stats.chronic]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        lines.append("")
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines)


@click.command("stats")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG",
              help="The abuso config whose store processor holds the history.")
@click.option("--since", metavar="TIME", help="Incidents at or after TIME (2026-11-01, 7d).")
@click.option("--until", metavar="TIME", help="Incidents before TIME.")
@click.option("--by", type=click.Choice(["day", "week", "type", "customer", "asn", "reporter", "ip"]),
              default="type", show_default=True, help="What the table counts by.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="At most N rows (the last N days or weeks); 0: all.")
@click.option("--chronic", metavar="N/DAYS", help="List addresses in at least N reports in the last DAYS days.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="A table, one JSON object, or one self-contained HTML page with charts.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE, not stdout.")
def stats(config_path: str, since: str | None, until: str | None, by: str, top: int, chronic: str | None,
          fmt: str, output: str | None) -> None:
    """Count stored incidents by day, week, type, customer, AS, reporter or address; list chronic offenders.

    The counts are those of `abuso query` with the same --since/--until.
    """
    from ..processors.store import open_store
    from ..stats import gather

    criteria: dict[str, Any] = dict(time_window(since, until))
    window = parse_chronic(chronic) if chronic else None
    cfg = _load(config_path)
    store = open_store(next(s for s in cfg.processors if s.name == "store").options, cfg.base, create=False)
    html = fmt == "html"
    try:
        result = gather(store.index, ("customer", "reporter") if html else (by,), delays=html or fmt == "json",
                        daily_types=html, chronic=window, **criteria)
    finally:
        store.close()
    if fmt == "json":
        text = json.dumps(result.as_dict(by, top), ensure_ascii=False)
    elif fmt == "html":
        from ..stats.html import render

        period = "".join([f" since {criteria['since'].isoformat()}" if since else "",
                          f" until {criteria['until'].isoformat()}" if until else ""])
        text = render(result, top=top or 10, period=period,
                      chronic=f" ({window[0]} or more reports in {window[1]} days)" if window else "")
    else:
        text = _text(result, by, top)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text)
