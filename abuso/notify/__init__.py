"""``abuso notify``: tell each customer about its incidents, one digest per customer per run.

Config (top-level ``notify:``; the transport options are the mailer's: smtp, starttls, cafile, user,
password_file, timeout, sendmail, dry_run)::

    notify:
      from: Abuse Desk <abuse@example.net>
      to: [abuse, contact.email]     # the customer fields (from the table processor) that hold the address
      default: noc@example.net       # for customers whose fields name none (else they are skipped, said)
      never: [POOL-DSL, POOL-V6]     # customer ids or names never written to (our own pools)
      subject: "Abuse reports for ${customer}: ${count} incidents"
      body: notify-body.txt          # a ${...} template; built-in text when absent
      period: 1d                     # at most one digest per customer per period; later incidents wait
      max_rows: 50                   # addresses listed in the body (the CSV attachment has every incident)
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from ..options import Option
from ..processors.mailer import transport

#: ``notify:`` options, declared once: config checks them like a stage's.
OPTIONS = (
    Option("from", "str", required=True, help="the From address of the digests"),
    Option("to", "strings", ["abuse", "contact.email", "email"],
           help="customer fields holding the address, first found wins (dotted: contact.email)"),
    Option("default", "str", help="the address for customers whose fields name none"),
    Option("never", "strings", [], help="customer ids or names never to notify"),
    Option("subject", "str", "Abuse reports for ${customer}: ${count} incidents"),
    Option("body", "file", help="the body template (${customer}, ${count}, ${summary}, ${period})"),
    Option("period", "duration", "1d", help="at most one digest per customer per period"),
    Option("max_rows", "int", 50, min=1, help="addresses listed in the body"),
    *transport.OPTIONS,
)


def check_rules(options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield from transport.check_rules(options)
