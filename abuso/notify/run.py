"""A notify run: pending digests first (sent as they were recorded), then one new digest per customer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, TransientError
from ..processors.mailer.templates import Template, clean
from ..storage.ledger import Digest, Ledger, Row
from . import digest as digests


@dataclass
class Result:
    """What one notify run did."""

    sent: int = 0
    incidents: int = 0
    skipped: int = 0
    waiting: int = 0
    transient: int = 0
    refused: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 75 if self.transient else 65 if self.refused else 0


def _field(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def recipients(customer: dict[str, Any], fields: list[str], default: str | None) -> list[str]:
    """Addresses from the first customer field that holds any (a list or a comma-separated string)."""
    for name in fields:
        value = _field(customer, name)
        values = value if isinstance(value, list) else str(value).split(",") if value else []
        found = [a for a in (parseaddr(clean(v))[1] for v in values) if "@" in a]
        if found:
            return found
    return [default] if default else []


def _customer_of(rows: list[Row]) -> dict[str, Any]:
    """What the table said of the customer, at its latest incident."""
    for row in reversed(rows):
        extra = json.loads(row.extra) if row.extra else {}
        if isinstance(extra.get("customer"), dict):
            return extra["customer"]
    return {}


class Notifier:
    def __init__(self, cfg: Any, store: Any, *, dry_run: bool = False, say: Callable[[str], None] = print) -> None:
        from ..durations import parse_duration
        from ..processors.mailer import transport

        options = dict(cfg.data.get("notify") or {})
        if not options:
            raise ConfigError("no notify section in the config (see etc/sample.yaml)", cfg.file, key="notify")
        self.options = options
        self.dry_run = dry_run
        self.say = say
        self.sender = options["from"]
        self.sender_address = parseaddr(self.sender)[1]
        self.fields = list(options.get("to") or ["abuse", "contact.email", "email"])
        self.default = options.get("default")
        self.never = {str(n).casefold() for n in options.get("never") or []}
        self.period = parse_duration(options.get("period", "1d"))
        self.max_rows = int(options.get("max_rows", 50))
        self.subject = Template(options.get("subject") or "Abuse reports for ${customer}: ${count} incidents")

        def path(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() else cfg.base / q

        self.body = Template.load(path(options["body"]), "notify.body") if options.get("body") \
            else Template(digests.DEFAULT_BODY)
        self.transport = None if dry_run else transport.from_options(options, path, "notify", "notify.")
        self.ledger = Ledger(store.index)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def run(self, *, since: datetime | None = None, customers: list[str] | None = None) -> Result:
        result = Result()
        for pending in self.ledger.pending(customers):
            self._send(pending, result, again=True)
        now = datetime.now(timezone.utc)
        for customer, rows in sorted(self.ledger.unsent(since=since, customers=customers).items()):
            info = _customer_of(rows)
            names = {customer.casefold(), str(info.get("name", "")).casefold()} - {""}
            label = f"{clean(info.get('name'), 60)} ({customer})" if info.get("name") else customer
            if names & self.never:
                result.skipped += 1
                result.lines.append(f"{label}: never notified (notify.never): {len(rows)} incidents")
                continue
            to = recipients(info, self.fields, self.default)
            if not to:
                result.skipped += 1
                result.lines.append(f"{label}: no address in fields {', '.join(self.fields)} and no "
                                    f"notify.default: {len(rows)} incidents wait")
                continue
            last = self.ledger.last_sent(customer)
            if last is not None and now - last < self.period:
                result.waiting += 1
                result.lines.append(f"{label}: last digest {last:%Y-%m-%d %H:%M} UTC, within notify.period: "
                                    f"{len(rows)} incidents wait until {(last + self.period):%Y-%m-%d %H:%M} UTC")
                continue
            if self.dry_run:
                result.lines.append(f"{label}: would send {len(rows)} incidents to {', '.join(to)}")
                continue
            domain = self.sender_address.rpartition("@")[2] or None
            recorded = self.ledger.record(customer, to, make_msgid("notify", domain=domain), rows)
            if recorded is None:
                result.lines.append(f"{label}: another notify run took these incidents")
                continue
            self._send(recorded, result)
        return result

    def _send(self, digest: Digest, result: Result, again: bool = False) -> None:
        from ..processors.mailer.transport import DeliveryUnknown, Envelope, Refused

        label = digest.customer
        if self.dry_run:
            result.lines.append(f"{label}: would send again a digest of {len(digest.rows)} incidents "
                                f"to {', '.join(digest.recipients)}")
            return
        assert self.transport is not None
        msg = digests.build(sender=self.sender, recipients=digest.recipients, customer=digest.customer,
                            rows=digest.rows, message_id=digest.message_id, subject=self.subject, body=self.body,
                            max_rows=self.max_rows)
        try:
            self.transport.send(msg, Envelope(self.sender_address, tuple(digest.recipients)))
        except DeliveryUnknown as e:      # it may have gone out: never send it again
            self.ledger.sent(digest)
            result.lines.append(f"{label}: {e}; recorded as sent, not sent again")
            return
        except TransientError as e:
            self.ledger.failed(digest, str(e))
            result.transient += 1
            result.lines.append(f"{label}: not sent, will retry next run: {e}")
            return
        except Refused as e:
            self.ledger.failed(digest, f"refused: {e}")
            result.refused += 1
            result.lines.append(f"{label}: refused, will retry next run: {e}")
            return
        self.ledger.sent(digest)
        result.sent += 1
        result.incidents += len(digest.rows)
        result.lines.append(f"{label}: sent {'again ' if again else ''}{len(digest.rows)} incidents to "
                            f"{', '.join(digest.recipients)}")
