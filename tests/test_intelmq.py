"""IntelMQ output: harmonization field names, one event per incident per line, nothing invented."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from ipaddress import ip_address

from abuso.model import Incident, Report
from abuso.output.intelmq import render
from abuso.pipeline import Pipeline

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 18, 0, 0, 123456, tzinfo=UTC)

#: IntelMQ harmonization (intelmq/etc/harmonization.conf) names this writer may use; the rest go to extra.*
HARMONIZATION = {"feed.name", "time.observation", "time.source", "source.ip", "source.port", "source.account",
                 "classification.type", "classification.taxonomy", "classification.identifier", "raw"}


def report(*incidents: Incident, **kw) -> Report:
    fields = dict(raw=b"", message_id="<m1@example.org>", subject="Abuse from 192.0.2.1",
                  sender="soc@reporter.example", date=datetime(2026, 11, 20, 11, 0, tzinfo=UTC))
    fields.update(kw)
    return Report(incidents=list(incidents), **fields)


def events(text: str) -> list[dict]:
    assert text.endswith("\n") or text == ""
    return [json.loads(line) for line in text.splitlines()]


def test_one_event_per_incident_with_harmonized_names():
    a = Incident(ip_address("192.0.2.1"), "brute-force", datetime(2026, 11, 20, 2, 14, 7, tzinfo=UTC), "log",
                 "date-header", 51022, "Nov 20 03:14:07 srv sshd[1]: Failed password", {"user": "dsl-4711"})
    b = Incident(ip_address("2001:db8::7"), "copyright", None, "acns")
    text = render(report(a, b), now=NOW)
    assert text.count("\n") == 2
    first, second = events(text)
    assert first == {
        "feed.name": "abuso",
        "time.observation": "2026-11-25T18:00:00+00:00",
        "time.source": "2026-11-20T02:14:07+00:00",
        "source.ip": "192.0.2.1",
        "source.port": 51022,
        "source.account": "dsl-4711",
        "classification.type": "brute-force",
        "classification.taxonomy": "intrusion-attempts",
        "classification.identifier": "log",
        "raw": base64.b64encode(b"Nov 20 03:14:07 srv sshd[1]: Failed password").decode(),
        "extra.time_source_zone": "date-header",
        "extra.email_from": "soc@reporter.example",
        "extra.email_subject": "Abuse from 192.0.2.1",
        "extra.email_message_id": "<m1@example.org>",
        "extra.email_date": "2026-11-20T11:00:00+00:00",
    }
    # no time, no port, no evidence, no user: the fields are absent, never null (IntelMQ rejects null)
    assert "time.source" not in second and "source.port" not in second
    assert "raw" not in second and "source.account" not in second
    assert second["source.ip"] == "2001:db8::7" and second["classification.taxonomy"] == "fraud"
    for ev in (first, second):
        assert all(k in HARMONIZATION or k.startswith("extra.") for k in ev)


def test_no_incident_no_output():
    assert render(report()) == ""


def test_missing_mail_metadata_is_left_out():
    inc = Incident(ip_address("192.0.2.2"), "spam", None, "received")
    (ev,) = events(render(report(inc, message_id=None, subject=None, sender=None, date=None), now=NOW))
    assert not [k for k in ev if k.startswith("extra.email_")]


def test_hostile_header_text_still_gives_one_valid_json_line():
    inc = Incident(ip_address("192.0.2.3"), "spam", None, "received", evidence="caf\udce9 \u2028 line")
    text = render(report(inc, subject="Spam\n{\"x\": 1}\u2028 \udcff"), now=NOW)
    assert text.count("\n") == 1 and text.isascii()
    (ev,) = events(text)
    assert ev["extra.email_subject"].startswith("Spam\n")
    assert base64.b64decode(ev["raw"]) == "caf\udce9 \u2028 line".encode("utf-8", "surrogateescape")


def test_observation_time_defaults_to_now():
    inc = Incident(ip_address("192.0.2.4"), "spam", None, "received")
    (ev,) = events(render(report(inc)))
    observed = datetime.fromisoformat(ev["time.observation"])
    assert abs((datetime.now(UTC) - observed).total_seconds()) < 60


def test_pipeline_report_to_intelmq(corpus):
    pipeline = Pipeline.from_config({"parsers": ["acns", "csv"]})
    raw = (corpus / "abuseio/ip-echelon/ip-echelon_sample1.eml").read_bytes()
    (ev,) = events(render(pipeline.analyse(raw), now=NOW))
    assert ev["source.ip"] == "192.168.2.200" and ev["source.port"] == 35657
    assert ev["classification.type"] == "copyright" and ev["classification.identifier"] == "acns"
    assert ev["time.source"] == "2015-11-13T20:35:03+00:00"
    assert ev["extra.email_subject"] == "Notice of Claimed Infringement - Case ID 314620451"


def test_cli_format_intelmq_piped_shadowserver_report(tmp_path):
    """procmail style: one zipped Shadowserver report on stdin, one IntelMQ event per row on stdout."""
    import subprocess
    import sys

    from .conftest import ROOT, SAMPLES

    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: [csv, acns]\nquarantine: {tmp_path / 'q'}\n"
                   "filters:\n  ip: {within: [192.0.2.0/24]}\n")
    raw = (SAMPLES / "csv/zipped-botnet-drone.eml").read_bytes()
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "abuso"), "run", "-c", str(cfg), "--format", "intelmq"],
                       input=raw, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (ev,) = events(r.stdout.decode())  # the IPv6 row is outside 192.0.2.0/24 and filtered
    assert ev["source.ip"] == "192.0.2.17" and ev["source.port"] == 49152
    assert ev["classification.type"] == "infected-system" and ev["time.source"] == "2026-11-20T01:02:03+00:00"
    assert base64.b64decode(ev["raw"]).decode().startswith("2026-11-20 01:02:03,192.0.2.17,49152")
