"""`abuso stats`: counts that agree with `abuso query`, chronic offenders, and a page a person can look at."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from abuso.cli import cli
from abuso.commands.query import QueryError
from abuso.model import Incident, Report
from abuso.storage import Store
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)

UTC = timezone.utc
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
#: (ip, type, hours after T0, customer, reporter, report delay in hours, asn)
ROWS = [
    ("192.0.2.7", "brute-force", 0, "ACME", "Fail2ban <f2b@reporter.example>", 0.5, 64500),
    ("192.0.2.7", "brute-force", 30, "ACME", "f2b@reporter.example", 2, 64500),
    ("192.0.2.7", "scanner", 55, "ACME", "Sensor <scan@sensors.example>", 30, 64500),
    ("192.0.2.200", "spam", 1, "ACME", "<summary@spamcop.example>", 5, 64500),
    ("198.51.100.1", "scanner", 200, "BETA", "scan@sensors.example", 0.1, 64501),
    ("198.51.100.1", "scanner", 201, "BETA", "scan@sensors.example", 800, 64501),
    ("2001:db8::5", "phishing", 300, "GAMMA", "cert@cert.example", 3, None),
    ("203.0.113.9", "spam", 400, None, 'Evil <"<script>alert(1)</script>"@evil.example>', None, None),
]


def _store(tmp_path: Path, url: str | None) -> Path:
    opts = {"path": "store"}
    if url:
        opts["url"] = url
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text("parsers: []\nprocessors:\n  - store: " + json.dumps(opts) + "\n")
    with Store.open(tmp_path / "store", url) as s:
        for n, (ip, type_, hours, customer, sender, delay, asn) in enumerate(ROWS):
            when = T0 + timedelta(hours=hours)
            extra = {"customer": {"id": customer}} if customer else {}
            if asn:
                extra["asn"] = asn
            inc = Incident(ipaddress.ip_address(ip), type_, when, "log", "explicit", evidence=f"line {n}")
            if extra:
                inc = inc.with_extra(**extra)
            raw = f"From: {sender}\nSubject: r{n}\nMessage-ID: <{n}@x>\n\n{ip}\n".encode()
            date = when + timedelta(hours=delay) if delay is not None else None
            s.put(Report(raw=raw, origin=f"/m/{n}", message_id=f"<{n}@x>", subject=f"r{n}", sender=sender,
                         date=date, incidents=[inc]))
    return cfg


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request, tmp_path) -> Path:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return _store(tmp_path, url)


def invoke(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def stats(config: Path, *args: str) -> dict:
    return json.loads(invoke("stats", "-c", str(config), "-f", "json", "--top", "0", *args))


def query_count(config: Path, *args: str) -> int:
    r = CliRunner().invoke(cli, ["query", "-c", str(config), "-f", "json", "--limit", "0", *args])
    return len(r.stdout.splitlines())


def test_counts_agree_with_query(config: Path) -> None:
    by_type = {r["type"]: r["incidents"] for r in stats(config, "--by", "type")["rows"]}
    assert by_type == {"brute-force": 2, "scanner": 3, "spam": 2, "phishing": 1}
    for type_, n in by_type.items():
        assert query_count(config, "--type", type_) == n
    by_customer = {r["customer"]: r["incidents"] for r in stats(config, "--by", "customer")["rows"]}
    assert by_customer == {"ACME": 4, "BETA": 2, "GAMMA": 1, "(none)": 1}
    for customer in ("ACME", "BETA", "GAMMA"):
        assert query_count(config, "--customer", customer) == by_customer[customer]
    window = ("--since", "2026-11-03", "--until", "2026-11-12")
    windowed = stats(config, *window)
    assert windowed["incidents"] == query_count(config, *window) == 4


def test_groups(config: Path) -> None:
    by = {g: {r[g]: r["incidents"] for r in stats(config, "--by", g)["rows"]}
          for g in ("day", "week", "reporter", "ip", "asn")}
    assert by["day"] == {"2026-11-02": 2, "2026-11-03": 1, "2026-11-04": 1, "2026-11-10": 2, "2026-11-14": 1,
                         "2026-11-19": 1}
    assert by["week"] == {"2026-W45": 4, "2026-W46": 3, "2026-W47": 1}
    assert by["reporter"]["f2b@reporter.example"] == 2          # one reporter, whatever the display name
    assert by["reporter"]["scan@sensors.example"] == 3
    assert by["ip"]["192.0.2.7"] == 3
    assert by["asn"] == {"AS64500": 4, "AS64501": 2, "(none)": 2}
    delays = stats(config)["delays"]
    assert delays == {"< 1 hour": 2, "1 hour - 1 day": 3, "1 - 7 days": 1, "7 - 30 days": 0, "> 30 days": 1,
                      "unknown": 1}


def test_chronic_offenders(config: Path) -> None:
    out = stats(config, "--chronic", "2/7", "--until", "2026-11-08")
    assert [(c["ip"], c["reports"], c["customer"]) for c in out["chronic"]] == [("192.0.2.7", 3, "ACME")]
    out = stats(config, "--chronic", "2/30", "--until", "2026-12-01")
    assert [c["ip"] for c in out["chronic"]] == ["192.0.2.7", "198.51.100.1"]
    bad = CliRunner().invoke(cli, ["stats", "-c", str(config), "--chronic", "often"])
    assert isinstance(bad.exception, QueryError) and "N/DAYS" in str(bad.exception)   # exit 64 from main()


def test_text_table(tmp_path: Path) -> None:
    text = invoke("stats", "-c", str(_store(tmp_path, None)), "--by", "customer", "--chronic", "3/30",
                  "--until", "2026-12-01")
    lines = text.splitlines()
    assert lines[0] == "8 incidents in 8 reports"
    assert lines[2].split() == ["CUSTOMER", "INCIDENTS"] and lines[3].split() == ["ACME", "4"]
    assert any(line.split()[:3] == ["192.0.2.7", "3", "3"] for line in lines)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium) to look at the page")
def test_html_page_as_a_person_sees_it(tmp_path: Path) -> None:
    from PIL import Image

    from abuso.stats.html import TITLES

    page = tmp_path / "report.html"
    invoke("stats", "-c", str(_store(tmp_path, None)), "-f", "html", "-o", str(page), "--chronic", "2/30",
           "--until", "2026-12-01")
    html = page.read_text()
    assert "<script" not in html and "&lt;script&gt;alert(1)" in html  # hostile sender escaped, no JavaScript
    assert "src=" not in html and 'href="http' not in html             # nothing fetched from the network
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    for title in TITLES.values():
        assert dom.stdout.count(title) >= 1, title
    assert dom.stdout.count("<svg") == 4 and dom.stdout.count("<rect") > 20
    shot = tmp_path / "shot.png"
    subprocess.run([*browser, "--window-size=1000,3200", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("HSV")                         # saturation: bars; text and axes are grey
    saturated = image.getchannel("S").point(lambda s: 255 if s > 80 else 0)
    width, height = image.size
    band = 200
    per_band = [saturated.crop((0, top, width, top + band)).histogram()[255]
                for top in range(0, height - band + 1, band)]
    assert sum(n > 2000 for n in per_band) >= 4, per_band          # four charts drawn, not blank boxes


def test_query_by_asn_agrees_with_stats(config: Path) -> None:
    by_asn = {r["asn"]: r["incidents"] for r in stats(config, "--by", "asn")["rows"]}
    assert query_count(config, "--asn", "64500") == by_asn["AS64500"] == 4
    assert query_count(config, "--asn", "AS64501") == by_asn["AS64501"] == 2
    assert query_count(config, "--asn", "64999") == 0
    bad = CliRunner().invoke(cli, ["query", "-c", str(config), "--asn", "sixty"])
    assert isinstance(bad.exception, QueryError)
