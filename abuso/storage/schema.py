"""The store index's schema: tables, the SQL that differs between SQLite and PostgreSQL, and migrations.

Both backends get the same statements (abuso/storage/index.py); only the placeholder style, a few column
types and index orders differ (:class:`_Dialect`). SQLite files are migrated by abuso/sqlite.py
(:func:`sqlite_migrations`, applied once, in order); a PostgreSQL database gets :func:`postgresql_tables`
(every statement ``IF NOT EXISTS``), so a database prepared by an older abuso gains the newer indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``meta.schema``: what older abuso versions read to refuse a database they cannot use. Indexes added since
#: change nothing they rely on, so it stays 1.
SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS reports (
    id {pk},
    digest TEXT NOT NULL UNIQUE,
    message_id TEXT,
    subject TEXT,
    sender TEXT,
    date {time},
    origin TEXT,
    path TEXT NOT NULL,
    valid {bool} NOT NULL,
    verdicts TEXT NOT NULL,
    stored {time} NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id {pk},
    report BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    ip TEXT NOT NULL,
    ipkey {blob} NOT NULL,
    type TEXT NOT NULL,
    taxonomy TEXT NOT NULL,
    time {time},
    zone TEXT,
    parser TEXT,
    port INTEGER,
    customer TEXT,
    username TEXT,
    evidence TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS incidents_ipkey ON incidents (ipkey);
CREATE INDEX IF NOT EXISTS incidents_time ON incidents ({time_index});
CREATE INDEX IF NOT EXISTS incidents_report ON incidents (report);
CREATE INDEX IF NOT EXISTS incidents_customer ON incidents (customer);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

@dataclass
class _Dialect:
    """What differs between the SQLite and PostgreSQL indexes."""

    name: str
    pk: str
    blob: str
    time: str
    bool: str
    #: Newest first with undated incidents last, in an order the time index can deliver.
    newest: str
    time_index: str
    #: An address's incidents in :attr:`newest` order from the index alone.
    ipkey_time_index: str
    #: The asn processor's number in an incident's extra JSON (``abuso stats --by asn``).
    asn: str = ""

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.name == "postgresql" else statement


SQLITE = _Dialect("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "TEXT", "INTEGER",
                  # SQLite: NULL sorts lowest
                  newest="i.time DESC, i.id DESC", time_index="time", ipkey_time_index="ipkey, time",
                  asn="json_extract(i.extra, '$.asn')")
POSTGRESQL = _Dialect("postgresql", "BIGSERIAL PRIMARY KEY", "BYTEA", 'TEXT COLLATE "C"', "BOOLEAN",
                      newest="i.time DESC NULLS LAST, i.id DESC", time_index="time DESC NULLS LAST, id DESC",
                      ipkey_time_index="ipkey, time DESC NULLS LAST, id DESC",
                      asn="(i.extra::jsonb ->> 'asn')")


def sqlite_migrations() -> list[str]:
    """The SQLite index's migrations (abuso/sqlite.py), oldest first; the first one also adopts an index made
    before the schema_version table (its statements are all IF NOT EXISTS). ``meta.schema`` is kept for the
    abuso versions that read only that."""
    d = SQLITE
    v1 = _TABLES.format(pk=d.pk, blob=d.blob, time=d.time, bool=d.bool, time_index=d.time_index)
    v1 += "INSERT INTO meta (name, value) VALUES ('schema', '1') ON CONFLICT (name) DO NOTHING;"
    # v2: an address's incidents newest first straight from one index (SQLite keeps the rowid, our id, at the
    # end of every index entry: the order is ipkey, time, id), no sort; it also serves every block query, so
    # the ipkey-only index goes.
    v2 = f"CREATE INDEX IF NOT EXISTS incidents_ipkey_time ON incidents ({d.ipkey_time_index});" \
         "DROP INDEX IF EXISTS incidents_ipkey;"
    return [v1, v2]


def postgresql_tables() -> str:
    """Every table and index of a PostgreSQL index, each ``IF NOT EXISTS`` (safe on a database of any age)."""
    d = POSTGRESQL
    return _TABLES.format(pk=d.pk, blob=d.blob, time=d.time, bool=d.bool, time_index=d.time_index) + \
        f"CREATE INDEX IF NOT EXISTS incidents_ipkey_time ON incidents ({d.ipkey_time_index});"
