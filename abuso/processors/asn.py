"""Which network each incident's address belongs to: ``asn``, ``as_name`` and ``network``, offline.

    processors:
      - asn: {file: routeviews-prefix2as.txt}     # CAIDA RouteViews prefix2as, plain or gzip
      - asn: {mmdb: GeoLite2-ASN.mmdb}            # a MaxMind ASN database (needs the maxminddb package)

The table is loaded once per process; a missing or corrupt file is a config error (exit 78), never a
per-message retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from ..model import Report
from ..options import Option
from .base import Processor


class AsnProcessor(Processor):
    name = "asn"
    OPTIONS = (
        Option("file", "file", help="a RouteViews prefix2as table, plain or gzip"),
        Option("mmdb", "file", help="a MaxMind ASN database (needs the maxminddb package)"),
    )

    @classmethod
    def check_rules(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if len([k for k in ("file", "mmdb") if k in options]) != 1:
            yield "file", "name exactly one of file (a prefix2as table) or mmdb (a MaxMind ASN database)"

    def __init__(self, options: Mapping[str, Any] | None = None, base: Path | None = None) -> None:
        super().__init__(options, base)
        self.check_options(self.options)
        from ..asn import MmdbTable, PrefixTable

        if "mmdb" in self.options:
            self.source = self.path(self.options["mmdb"])
            self.table: Any = MmdbTable(self.source)
        else:
            self.source = self.path(self.options["file"])
            self.table = PrefixTable.load(self.source)

    def process(self, report: Report) -> None:
        if not report.incidents:
            return
        matched = 0
        unrouted: list[str] = []
        for i, inc in enumerate(report.incidents):
            info = self.table.lookup(inc.ip)
            if info is None:
                if str(inc.ip) not in unrouted:
                    unrouted.append(str(inc.ip))
                continue
            matched += 1
            report.incidents[i] = inc.with_extra(**info.as_extra())
        note: dict[str, Any] = {"matched": matched}
        if unrouted:
            note["unrouted"] = unrouted[:10]
        report.notes[self.name] = note

    def close(self) -> None:
        close = getattr(self.table, "close", None)
        if close is not None:
            close()
