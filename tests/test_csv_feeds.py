"""Feeds attached under any name (issue 11 class 9): recognised by content, read by the CSV parser."""

from __future__ import annotations

import base64

import pytest

from abuso.parsers.csv import looks_tabular
from abuso.pipeline import Pipeline

HEAD = ("From: feeds@cert.example\nTo: abuse@example.net\nSubject: {subject}\n"
        "Date: Fri, 20 Nov 2026 14:00:00 +0000\nMIME-Version: 1.0\n")


def _mail(part_headers: str, payload: str, subject: str = "Daily feed") -> bytes:
    return (HEAD.format(subject=subject) + 'Content-Type: multipart/mixed; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nSee attached.\n\n--b\n" + part_headers + "\n\n" + payload
            + "\n--b--\n").encode()


def _keys(raw: bytes) -> set[tuple]:
    report = Pipeline.from_config({}).analyse(raw)
    return {(str(i.ip), i.type, i.time.isoformat() if i.time else None, i.parser) for i in report.incidents}


FEED = ("timestamp,bot_ip,c2_ip,category\n"
        "2026-11-20 10:00:00,192.0.2.11,203.0.113.250,botnet\n"
        "2026-11-20 10:01:00,192.0.2.12,203.0.113.250,open resolver\n"
        "2026-11-20 10:02:00,192.0.2.13,203.0.113.251,malware url\n")
WANT = {("192.0.2.11", "infected-system", "2026-11-20T10:00:00+00:00", "csv"),
        ("192.0.2.12", "ddos-amplifier", "2026-11-20T10:01:00+00:00", "csv"),
        ("192.0.2.13", "malware-distribution", "2026-11-20T10:02:00+00:00", "csv")}


@pytest.mark.parametrize("headers", [
    'Content-Type: text/plain; name="feed.txt"\nContent-Disposition: attachment; filename="feed.txt"',
    'Content-Type: text/plain',                                              # inline, nameless
    'Content-Type: application/octet-stream\nContent-Disposition: attachment; filename="noname"',
    'Content-Type: text/plain; name="export.dat"\nContent-Disposition: attachment; filename="export.dat"',
])
def test_a_feed_under_any_name_is_read_by_the_csv_parser(headers: str) -> None:
    # The C2 column is never the accused, even where the free-text parser would have read the rows too.
    assert _keys(_mail(headers, FEED)) == WANT


def test_a_base64_feed_attachment() -> None:
    payload = base64.encodebytes(FEED.replace(",", "\t").encode()).decode()
    headers = ('Content-Type: application/octet-stream; name="ATT00001"\nContent-Transfer-Encoding: base64\n'
               'Content-Disposition: attachment; filename="ATT00001"')
    assert _keys(_mail(headers, payload)) == WANT


def test_time_columns_of_feeds() -> None:
    feed = ("observation time,source ip,classification type,source time\n"
            "2026-11-20 12:00:00,192.0.2.21,proxy,2026-11-20 09:30:00\n"
            "2026-11-20 12:00:00,192.0.2.22,proxy,\n")
    assert _keys(_mail('Content-Type: text/plain; name="f.txt"', feed)) == {
        ("192.0.2.21", "proxy", "2026-11-20T09:30:00+00:00", "csv"),   # source time first
        ("192.0.2.22", "proxy", "2026-11-20T12:00:00+00:00", "csv")}   # then observation time


@pytest.mark.parametrize("text, tabular", [
    (FEED, True),
    (FEED.replace(",", "\t"), True),
    (FEED.replace(",", ";"), True),
    ("Hello,\n\nwe saw 192.0.2.1, 192.0.2.2 and others.\nRegards, Bob\n", False),
    ("ip, time\n", False),                                   # a header without rows
    ("name,colour,size\nbox,red,3\n", False),                # no address column
    ("Source, IP, and time are below.\nThanks, we saw it, today.\nBye\n", False),
])
def test_looks_tabular(text: str, tabular: bool) -> None:
    assert looks_tabular(text.encode()) is tabular


def test_a_prose_body_with_a_pasted_table_is_still_the_free_text_parsers() -> None:
    body = ("Hello,\n\nwe saw these attacks from your network:\n\n"
            "Date, Source IP, Port\n2026-11-20 10:00:00 +0000, 192.0.2.31, 22\n\nRegards\n")
    raw = (HEAD.format(subject="SSH brute force") + "Content-Type: text/plain\n\n" + body).encode()
    assert _keys(raw) == {("192.0.2.31", "brute-force", "2026-11-20T10:00:00+00:00", "log")}
