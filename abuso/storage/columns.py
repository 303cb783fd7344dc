"""What goes into the store index's columns and what comes out of them, the same on SQLite and PostgreSQL.

Addresses as a version byte plus the big-endian address (:func:`ip_key`), times as fixed-width UTC text
(:func:`time_text`), customer and user labels, text cleaned for both databases; and a search row back as the
dict :meth:`abuso.storage.index.Index.rows` gives.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime, timezone

from ..lazy import lazy_compile
from ..model import address_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any, Sequence


def ip_key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The version byte, then the address big-endian: keys sort like addresses within a family,
    and the families never interleave (``::/0`` holds no IPv4 address, as in Python)."""
    return bytes((ip.version,)) + ip.packed


def net_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, bytes]:
    """The lowest and highest :func:`ip_key` inside a network."""
    return ip_key(net.network_address), ip_key(net.broadcast_address)


def time_text(t: datetime | None) -> str | None:
    """Fixed-width UTC text: sorts as time does, readable in psql/sqlite3."""
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError("naive datetime")
    if t.tzinfo is timezone.utc:   # what incidents hold: no conversion, ~3x cheaper than the general case
        return t.isoformat(timespec="microseconds")[:-6] + "Z"
    u = utc(t)
    # isoformat: as fast as text gets from a datetime, and the year always four digits (strftime's %Y is
    # not, before year 1000, which would break "sorts as time does").
    return u.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z" if u else None


def utc(t: datetime) -> datetime | None:
    """``t`` in UTC, or None when that falls outside year 1..9999 (a hostile Date: 31 Dec 9999 -1200)."""
    try:
        return t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def parse_time_text(s: str | None) -> datetime | None:
    if not s:
        return None
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def customer_label(customer: Any) -> str | None:
    """The searchable name of a ``customer`` extra (the table processor's dict)."""
    if customer is None:
        return None
    if isinstance(customer, dict):
        for k in ("id", "customer", "name"):
            v = customer.get(k)
            if isinstance(v, (str, int)) and str(v):
                return str(v)
        return None
    return str(customer)


def user_label(user: Any) -> str | None:
    """The searchable name of a ``user`` (or ``radius``) extra: a name, a dict, or several."""
    if user is None:
        return None
    if isinstance(user, dict):
        for k in ("name", "user", "username", "id"):
            if user.get(k):
                return str(user[k])
        return None
    if isinstance(user, (list, tuple)):
        names = [n for n in (user_label(u) for u in user) if n]
        return ",".join(names) or None
    return str(user)


def _row(r: Sequence[Any]) -> dict[str, Any]:
    """A search result row as the dict :meth:`Index.search` gives."""
    return {
        "ip": r[0], "type": r[1], "taxonomy": r[2], "time": _iso(r[3]), "zone": r[4], "parser": r[5],
        "port": r[6], "customer": r[7], "user": r[8], "evidence": r[9],
        "extra": json.loads(r[10]) if r[10] else {},
        "digest": r[11], "path": r[12], "message_id": r[13], "subject": r[14], "sender": r[15],
        "date": _iso(r[16]), "origin": r[17],
    }


def _iso(value: str | None) -> str | None:
    """Stored time text as ``datetime.isoformat()`` writes that time (``+00:00``, the fraction only when not
    zero), rearranged without parsing: strptime was most of a streamed query's cost (~25 µs a time, two a row)."""
    if not value:
        return None
    if len(value) == 27 and value[26] == "Z" and value[19] == "." and value[10] == "T":   # what time_text writes
        return value[:19] + ("+00:00" if value[20:26] == "000000" else value[19:26] + "+00:00")
    t = parse_time_text(value)
    return t.isoformat() if t else None


_SURROGATE = lazy_compile("[\ud800-\udfff]")


def _clean(value: Any) -> Any:
    """Text fit for both databases: no NUL (PostgreSQL refuses it in TEXT), no lone surrogates
    (what undecodable header bytes become; neither database can encode them)."""
    if not isinstance(value, str) or (value.isascii() and "\x00" not in value):
        return value                   # the common case: nothing to clean, found without copying
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _incident_rows(incidents: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The incidents table's columns after ``report`` for each incident. A long log has many incidents of
    a few addresses, types, parsers and customers: their columns are made once per report.

    An incident's extras are keyed by the identity of their values: the memo lives for this call only, while
    every incident (and so every value) is alive, so an identity is never reused for another value; equal
    extras held in different objects are merely encoded again (the table processor gives a report's
    incidents of one block the same customer). Times are rarely shared: each is written as it comes.
    """
    ips: dict[Any, tuple[str, bytes]] = {}
    kinds: dict[str, tuple[str, str]] = {}
    labels: dict[tuple[str, str], tuple[str, str]] = {}
    extras: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
    rows = []
    for inc in incidents:
        key = address_key(inc.ip)
        ip = ips.get(key)
        if ip is None:
            ip = ips[key] = (str(inc.ip), ip_key(inc.ip))
        kind = kinds.get(inc.type)
        if kind is None:
            kind = kinds[inc.type] = (_clean(inc.type), _clean(inc.taxonomy))
        label = labels.get((inc.zone, inc.parser))
        if label is None:
            label = labels[(inc.zone, inc.parser)] = (_clean(inc.zone), _clean(inc.parser))
        port = inc.port
        if port is not None and not (type(port) is int and 0 <= port <= 65535):
            port = _port(port)
        evidence = inc.evidence
        if type(evidence) is not str or not evidence.isascii() or "\x00" in evidence:
            evidence = _clean(evidence)
        extra = inc.extra
        if extra:
            # By the values' identity: a log's incidents share their customer (and extra JSON) per block.
            same = (tuple(extra), tuple(map(id, extra.values())))
            columns = extras.get(same)
            if columns is None:
                columns = extras[same] = (_clean(customer_label(extra.get("customer"))),
                                          _clean(user_label(extra.get("user") or extra.get("radius"))),
                                          _clean(_json_text(dict(extra))))
        else:
            columns = (None, None, None)
        rows.append((ip[0], ip[1], kind[0], kind[1], time_text(inc.time), label[0], label[1], port, columns[0],
                     columns[1], evidence, columns[2]))
    return rows


#: json.dumps with options builds an encoder per call; the index encodes one per incident.
_json_text = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _port(port: Any) -> int | None:
    """A port fit for an INTEGER column; a parser's nonsense (99999999999) is not kept."""
    return port if isinstance(port, int) and 0 <= port <= 65535 else None


def _cleaned(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_clean(v) for v in values)
