"""IntelMQ events: one JSON object per incident, one per line (``--format intelmq``).

Field names follow the IntelMQ harmonization (``intelmq/etc/harmonization.conf``)
so the lines can be fed to IntelMQ's JSON parser bot unchanged: what IntelMQ has
no field for goes under ``extra.*``. Keys are sorted so that output is stable and
diffable between runs.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import valid_text

if TYPE_CHECKING:
    from ..model import Incident, Report

FEED_NAME = "abuso"


def event(incident: Incident, report: Report, observed: datetime) -> dict[str, Any]:
    """The IntelMQ event for one incident of a report."""
    ev: dict[str, Any] = {
        "feed.name": FEED_NAME,
        "time.observation": observed.isoformat(),
        "source.ip": str(incident.ip),
        "classification.type": incident.type,
        "classification.taxonomy": incident.taxonomy,
        "classification.identifier": incident.parser,
    }
    # IntelMQ rejects a null DateTime: an incident without a time has no time.source.
    if incident.time is not None:
        ev["time.source"] = incident.time.astimezone(timezone.utc).isoformat()
        ev["extra.time_source_zone"] = incident.zone
    if incident.port is not None:
        ev["source.port"] = incident.port
    if incident.evidence:
        ev["raw"] = base64.b64encode(_original_bytes(incident.evidence)).decode("ascii")
    extra = incident.extra or {}
    # From the asn processor (design.md: source.asn, source.as_name, source.network).
    for key in ("asn", "as_name", "network"):
        if extra.get(key) is not None:
            ev[f"source.{key}"] = extra[key]
    user = extra.get("user")
    if user:
        ev["source.account"] = str(user)
    for key, value in (("email_from", report.sender), ("email_subject", report.subject),
                       ("email_message_id", report.message_id),
                       ("email_date", report.date.isoformat() if report.date else None)):
        if value:
            ev[f"extra.{key}"] = value
    return ev


def _original_bytes(text: str) -> bytes:
    """The evidence line's bytes as they were (undecodable bytes kept by surrogateescape)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:          # a surrogate no decoder made: not original bytes, replace it
        return valid_text(text).encode("utf-8")


def render(report: Report, *, now: datetime | None = None) -> str:
    """One line per incident of the report (after the filters); "" when it has none."""
    observed = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    lines = [json.dumps({k: valid_text(v) if isinstance(v, str) else v
                         for k, v in event(inc, report, observed).items()}, sort_keys=True) + "\n"
             for inc in report.incidents]
    return "".join(lines)
