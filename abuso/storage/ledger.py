"""What ``abuso notify`` sent: a ledger in the store's index, so no digest goes out twice.

Two tables beside the index's own, created on first use (SQLite or PostgreSQL, whichever holds the index):
``notify_digests`` (one row per digest: customer, recipients, Message-ID, when sent or why not) and
``notify_items`` (each incident belongs to at most one digest: its primary key). A digest is recorded
*before* it is sent; a run that dies before the send finished leaves it pending, and the next run sends that
same digest (same incidents, same Message-ID) instead of building a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .index import Index, parse_time_text, time_text

_DDL = """
CREATE TABLE IF NOT EXISTS notify_digests (
    id {pk},
    customer TEXT NOT NULL,
    recipients TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created {time} NOT NULL,
    sent {time},
    error TEXT
);
CREATE TABLE IF NOT EXISTS notify_items (
    incident BIGINT PRIMARY KEY,
    digest BIGINT NOT NULL REFERENCES notify_digests(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS notify_items_digest ON notify_items (digest);
CREATE INDEX IF NOT EXISTS notify_digests_customer ON notify_digests (customer, sent);
"""

#: The columns of an incident a digest shows.
_INCIDENT = ("i.id, i.ip, i.type, i.taxonomy, i.time, i.port, i.customer, i.evidence, i.extra,"
             " r.sender, r.date, r.message_id")


@dataclass
class Row:
    """One incident as a digest lists it."""

    id: int
    ip: str
    type: str
    taxonomy: str
    time: datetime | None
    port: int | None
    customer: str
    evidence: str
    extra: str | None
    reporter: str | None
    report_date: datetime | None
    report_id: str | None


@dataclass
class Digest:
    """One digest mail of the ledger."""

    id: int
    customer: str
    recipients: list[str]
    message_id: str
    rows: list[Row]


def _row(r: Any) -> Row:
    return Row(int(r[0]), r[1], r[2], r[3], parse_time_text(r[4]), r[5], r[6], r[7] or "", r[8], r[9],
               parse_time_text(r[10]), r[11])


class Ledger:
    def __init__(self, index: Index) -> None:
        self.index = index
        d = index.dialect
        ddl = _DDL.format(pk=d.pk, time=d.time)
        with index._tx() as cur:
            for statement in filter(None, (s.strip() for s in ddl.split(";"))):
                index._x(cur, statement)

    def unsent(self, *, since: datetime | None = None, customers: list[str] | None = None) -> dict[str, list[Row]]:
        """Incidents with a customer that no digest holds yet, by customer, oldest first."""
        where, params = self.index._where(since=since, customer=customers)
        statement = (f"SELECT {_INCIDENT} FROM incidents i JOIN reports r ON r.id = i.report"
                     + (where + " AND" if where else " WHERE")
                     + " i.customer IS NOT NULL AND NOT EXISTS"
                       " (SELECT 1 FROM notify_items n WHERE n.incident = i.id) ORDER BY i.time, i.id")
        out: dict[str, list[Row]] = {}
        for r in self.index._read(statement, params):
            row = _row(r)
            out.setdefault(row.customer, []).append(row)
        return out

    def pending(self, customers: list[str] | None = None) -> list[Digest]:
        """Digests recorded but not sent (a crash, a failed send): sent again as they were."""
        digests = []
        for d in self.index._read("SELECT id, customer, recipients, message_id FROM notify_digests"
                                  " WHERE sent IS NULL ORDER BY id"):
            if customers and d[1] not in customers:
                continue
            rows = [_row(r) for r in self.index._read(
                f"SELECT {_INCIDENT} FROM notify_items n JOIN incidents i ON i.id = n.incident"
                " JOIN reports r ON r.id = i.report WHERE n.digest = ? ORDER BY i.time, i.id", [d[0]])]
            digests.append(Digest(int(d[0]), d[1], d[2].split(","), d[3], rows))
        return digests

    def last_sent(self, customer: str) -> datetime | None:
        row = self.index._read("SELECT max(sent) FROM notify_digests WHERE customer = ?", [customer])
        return parse_time_text(row[0][0]) if row and row[0][0] else None

    def record(self, customer: str, recipients: list[str], message_id: str, rows: list[Row]) -> Digest | None:
        """Claim ``rows`` for a new digest; None when another notify run claimed one of them first."""
        now = time_text(datetime.now(timezone.utc))
        try:
            with self.index._tx() as cur:
                self.index._x(cur, "INSERT INTO notify_digests (customer, recipients, message_id, created)"
                                   " VALUES (?, ?, ?, ?)", [customer, ",".join(recipients), message_id, now])
                found = self.index._x(cur, "SELECT max(id) FROM notify_digests WHERE message_id = ?",
                                      [message_id]).fetchone()
                digest = int(found[0])
                for row in rows:
                    self.index._x(cur, "INSERT INTO notify_items (incident, digest) VALUES (?, ?)",
                                  [row.id, digest])
        except Exception as e:
            if "unique" in str(e).lower() or "duplicate" in str(e).lower():
                return None
            raise
        return Digest(digest, customer, recipients, message_id, rows)

    def sent(self, digest: Digest) -> None:
        with self.index._tx() as cur:
            self.index._x(cur, "UPDATE notify_digests SET sent = ?, error = NULL WHERE id = ?",
                          [time_text(datetime.now(timezone.utc)), digest.id])

    def failed(self, digest: Digest, reason: str) -> None:
        with self.index._tx() as cur:
            self.index._x(cur, "UPDATE notify_digests SET error = ? WHERE id = ?", [reason[:1000], digest.id])
