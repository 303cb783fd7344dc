"""``abuso query``: search the history kept by the config's store processor."""

from __future__ import annotations

import ipaddress
import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import click

from ..errors import AbusoError
from ..lazy import lazy_compile

EX_USAGE = 64
_RELATIVE = lazy_compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
COLUMNS = ("time", "ip", "port", "type", "customer", "user", "parser", "file")


class QueryError(AbusoError):
    """A bad query argument (exit 64, EX_USAGE)."""

    status = EX_USAGE


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address (a /32 or /128) or a CIDR block; host bits are forgiven (192.0.2.7/24 means the /24)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise QueryError(f"--ip: {value!r} is not an IP address or CIDR block")


def parse_when(value: str, option: str, now: datetime | None = None) -> datetime:
    """ISO date or time (UTC unless it says otherwise), or an age such as ``7d``, ``12h``, ``30m``."""
    text = value.strip()
    try:
        m = _RELATIVE.match(text)
        if m:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
        t = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    except OverflowError:
        raise QueryError(f"{option}: {value!r} is outside the years 1 to 9999")
    except ValueError:
        raise QueryError(f"{option}: {value!r} is not a time (use 2026-11-22, 2026-11-22T08:00, or an age: 7d, 12h)")


def time_window(since: str | None, until: str | None) -> dict[str, datetime]:
    """``--since``/``--until`` as criteria (``since``, ``until``): the same for query, stats and notify."""
    window: dict[str, datetime] = {}
    if since:
        window["since"] = parse_when(since, "--since")
    if until:
        window["until"] = parse_when(until, "--until")
    if "since" in window and "until" in window and window["since"] >= window["until"]:
        raise QueryError("--since must be before --until")
    return window


def _type_filter(value: str) -> dict[str, str]:
    from ..taxonomy import TAXONOMY

    if value in TAXONOMY:
        return {"type": value}
    if value in set(TAXONOMY.values()):
        return {"taxonomy": value}
    raise QueryError(f"--type: unknown type {value!r} (a classification.type such as spam, brute-force, scanner,"
                     " or a taxonomy such as intrusion-attempts)")


def _load(config_path: str) -> Any:
    from ..config import load

    cfg = load(config_path)
    if not any(s.name == "store" for s in cfg.processors):
        raise QueryError(f"{config_path}: no store processor configured (add '- store: {{path: …}}' to processors)")
    return cfg


def customer_ids(cfg: Any, value: str) -> list[str]:
    """The stored customer labels ``--customer`` means: the value itself, and the id of every block of the
    config's network table whose id, customer or name is ``value`` (case does not matter)."""
    from ..processors.table import NetworkTable
    from ..storage.index import customer_label

    wanted = value.casefold()
    ids = [value]
    for stage in cfg.processors:
        if stage.name != "table":
            continue
        for entry in NetworkTable.load(cfg.base / stage.options["file"]).entries:
            names = (entry.customer.get(k) for k in ("id", "customer", "name"))
            if any(isinstance(n, (str, int)) and str(n).casefold() == wanted for n in names):
                label = customer_label(entry.customer)
                if label and label not in ids:
                    ids.append(label)
    return ids


def short_file(row: dict[str, Any]) -> str:
    """A store-relative name that fits a table: ``2026/11/24/f8e8181cd5d9`` (``-f json`` has the full path)."""
    path = str(row.get("path") or "")
    folder, _, digest = path.rpartition("/")
    return f"{folder}/{digest[:12]}" if folder else digest[:12] or "-"


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column == "time":
        return str(value).replace("+00:00", "Z")
    if column == "file":
        return short_file(row)
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns, a header line; control characters from hostile mail are made visible."""
    table = [[c.upper() for c in COLUMNS]] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join(_line(line, widths) for line in table)


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@click.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), envvar="ABUSO_CONFIG",
              help="The abuso config whose store processor holds the history.")
@click.option("--ip", "ip", metavar="IP|CIDR", help="An address or a block (IPv4 or IPv6).")
@click.option("--since", metavar="TIME", help="Incidents at or after TIME (2026-11-01, 2026-11-01T08:00Z, 7d).")
@click.option("--until", metavar="TIME", help="Incidents before TIME.")
@click.option("--type", "type_", metavar="TYPE", help="A classification type (spam) or taxonomy (fraud).")
@click.option("--customer", metavar="C", help="The customer the table processor assigned (its id or name).")
@click.option("--user", metavar="U", help="The user the radius processor found.")
@click.option("--asn", metavar="N", help="The origin AS the asn processor found (64500 or AS64500).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="An aligned table for people or JSON lines (every field, the full file path).")
@click.option("--limit", type=click.IntRange(min=0, max=10**9), default=100, show_default=True,
              help="At most N incidents, newest first (0: all).")
def query(config_path: str, ip: str | None, since: str | None, until: str | None, type_: str | None,
          customer: str | None, user: str | None, asn: str | None, fmt: str, limit: int) -> None:
    """Search the stored history of incidents, newest first.

    Exit status: 0 when something matched, 1 when nothing did (like grep), 64 for a bad argument,
    78 for a bad config.
    """
    criteria: dict[str, Any] = {"user": user}
    if asn is not None:
        number = asn.strip().upper().removeprefix("AS")
        if not number.isdigit():
            raise QueryError(f"--asn: {asn!r} is not an AS number (64500 or AS64500)")
        criteria["asn"] = int(number)
    if ip:
        criteria["network"] = parse_network(ip)
    criteria.update(time_window(since, until))
    if type_:
        criteria.update(_type_filter(type_))
    cfg = _load(config_path)
    if customer is not None:
        criteria["customer"] = customer_ids(cfg, customer)
    from ..processors.store import open_store

    store = open_store(next(s for s in cfg.processors if s.name == "store").options, cfg.base, create=False)
    try:
        rows = store.rows(limit=limit or None, **criteria)
        shown = _write_json(rows) if fmt == "json" else _write_table(rows)
        # "N of M shown" counts what --limit held back: only when it did cut (an index count, no rows read).
        total = store.search_count(**criteria) if limit and shown == limit else shown
    finally:
        store.close()
    if not shown:
        click.echo("no incidents match", err=True)
        raise click.exceptions.Exit(1)
    if total > shown:
        click.echo(f"{shown} of {total} shown (--limit {limit}; --limit 0 shows all)", err=True)


#: Lines written to stdout at once (click.echo flushes each time it writes).
CHUNK = 256


def _echo_lines(lines: Iterator[str]) -> int:
    """Write ``lines`` as they come, :data:`CHUNK` at a time; how many."""
    n = 0
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == CHUNK:
            click.echo("\n".join(chunk))
            n += len(chunk)
            chunk.clear()
    if chunk:
        click.echo("\n".join(chunk))
    return n + len(chunk)


def _write_json(rows: Iterator[dict[str, Any]]) -> int:
    """JSON lines as the rows come; how many."""
    encode = json.JSONEncoder(ensure_ascii=False).encode   # what json.dumps(row, ensure_ascii=False) builds per call
    return _echo_lines(map(encode, rows))


#: Rows whose cells set the table's column widths; later rows are written as they come, in those widths (a
#: longer cell pushes its line only), so a query of any size is written in constant memory.
TABLE_WIDTH_ROWS = 1000


def _write_table(rows: Iterator[dict[str, Any]]) -> int:
    """The aligned table as the rows come (widths from the first :data:`TABLE_WIDTH_ROWS`); how many."""
    first = list(itertools.islice(rows, TABLE_WIDTH_ROWS))
    if not first:
        return 0
    cells = [[c.upper() for c in COLUMNS]] + [_cells(r) for r in first]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return _echo_lines(itertools.chain((_line(line, widths) for line in cells),
                                       (_line(_cells(row), widths) for row in rows))) - 1   # less the header


def _cells(row: dict[str, Any]) -> list[str]:
    return [_printable(_cell(row, c)) for c in COLUMNS]


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
