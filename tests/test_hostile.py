"""Hostile input (issue 13): every message of bench/hostile.py within 2 s and 300 MB, as README promises.

Each case runs as ``abuso run`` in a process of its own, measured alone (wall time, CPU time,
peak RSS); this is the one timing assert of the suite, the budget the issue sets. CPU time is
asserted at 2 s as it stands; wall time gets the same 2 s on an idle machine and a margin in
proportion to the load average when other work shares the two cores (wall time is what the
load changes, CPU time barely). The mechanisms behind the budget are tested in-process below.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from abuso import mimeparse
from abuso.normalize import normalize

from .conftest import ROOT


def _load_bench() -> object:
    spec = importlib.util.spec_from_file_location("abuso_bench_hostile", ROOT / "bench" / "hostile.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


hostile = _load_bench()
CASES = {c.name: c for c in hostile.CASES}  # type: ignore[attr-defined]
#: The budget per message and process (issue 13).
SECONDS, MEGABYTES = 2.0, 300
#: Cases also run through the batch reader (the others piped only, as procmail runs them).
BATCH = ["single-line-50mb", "log-lines-50mb", "log-lines-30mb", "received-100k", "zip-bomb-5gb"]


def wall_budget(load_before: float) -> float:
    """2 s, stretched by how many runnable processes shared each core, by the 1-minute load average before
    or after the run, whichever is higher (the average lags: a burst of other work shows only in part)."""
    load = max(load_before, os.getloadavg()[0]) / (os.cpu_count() or 1)
    return SECONDS * max(1.0, load)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "abuso.yaml"
    path.write_text(f"quarantine: {folder / 'quarantine'}\n")
    return path


def _check(name: str, mode: str, config: Path, tmp_path: Path) -> None:
    case = CASES[name]
    eml = tmp_path / f"{name}.eml"
    eml.write_bytes(case.build())
    args = ["run", "-c", str(config), "-f", "json"] + ([str(eml)] if mode == "batch" else [])
    load_before = os.getloadavg()[0]
    run = hostile.run_abuso(args, None if mode == "batch" else eml, timeout=60)  # type: ignore[attr-defined]
    eml.unlink()
    figures = f"{name} ({mode}): {run.wall:.2f} s wall, {run.cpu:.2f} s CPU, {run.rss_mb:.0f} MB, exit {run.status}"
    err = run.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert run.status == (65 if case.expect == "quarantined" else 0), f"{figures}\n{err}"
    assert run.cpu <= SECONDS, figures
    assert run.wall <= wall_budget(load_before), f"{figures} (load {load_before:.1f}, {os.getloadavg()[0]:.1f})"
    assert run.rss_mb <= MEGABYTES, figures
    if case.expect == "quarantined":
        reason = next(ln for ln in err.splitlines() if "quarantined as" in ln)
        assert case.says in reason
        kept = config.parent / "quarantine" / reason.split("quarantined as ")[1].split(":")[0]
        assert kept.is_file() and case.says in kept.with_suffix(".reason").read_text()
        return
    report = json.loads(run.stdout)
    said = json.dumps([report.get("problems", []), report["verdicts"]])
    assert case.says in said, f"{name}: {case.says!r} not in {said[:500]}"
    if case.expect == "analysed":  # what the caps left is still read: the incident in the body
        assert hostile.INCIDENT_IP in [i["ip"] for i in report["incidents"]], said[:500]  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_piped_message_within_budget(name: str, config: Path, tmp_path: Path) -> None:
    _check(name, "piped", config, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCH)
def test_batch_file_within_budget(name: str, config: Path, tmp_path: Path) -> None:
    _check(name, "batch", config, tmp_path)


@pytest.mark.slow
def test_batch_reader_reads_a_huge_file_only_to_max_bytes(tmp_path: Path) -> None:
    """A 5 GB file (sparse: costs no disk) is quarantined after reading max_bytes + 1, not 5 GB."""
    config = tmp_path / "abuso.yaml"
    config.write_text(f"quarantine: {tmp_path / 'q'}\ndefaults: {{max_bytes: 1000000}}\n")
    big = tmp_path / "big.eml"
    with open(big, "wb") as f:
        f.write(b"From: a@example.org\nSubject: huge\n\n" + hostile.LOG_LINE.encode() + b"\n")  # type: ignore
        f.truncate(5 << 30)
    run = hostile.run_abuso(["run", "-c", str(config), str(big)], timeout=60)  # type: ignore[attr-defined]
    err = run.stderr.decode()
    assert run.status == 65 and "more than max_bytes=1000000 (1,000,001 bytes read)" in err, err
    assert run.rss_mb < 100 and run.cpu < SECONDS, (run.rss_mb, run.cpu)
    (kept,) = (tmp_path / "q").glob("*.eml")
    assert kept.stat().st_size == 1_000_001 and f"origin: {big}" in kept.with_suffix(".reason").read_text()


def test_the_set_is_as_described() -> None:
    import io
    import zipfile
    from email import message_from_bytes

    built = dict(hostile.cases(["received-100k", "zip-bomb-5gb", "gzip-bomb-5gb"]))  # type: ignore[attr-defined]
    assert 7_000_000 < len(built["received-100k"]) < 10_000_000
    assert len(built["zip-bomb-5gb"]) < 10_000_000 and len(built["gzip-bomb-5gb"]) < 10_000_000
    att = message_from_bytes(built["zip-bomb-5gb"]).get_payload()[1].get_payload(decode=True)
    assert sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(att)).infolist()) > 5_000_000_000


def test_bombs_expand_as_claimed() -> None:
    """The deflate bomb's CRC, computed without expanding, is that of the expanded bytes."""
    import zlib

    head, chunk = b"ip\n", b"192.0.2.1\n" + b"\n" * 1000
    bomb = hostile.deflate_bomb(head, chunk, 300)  # type: ignore[attr-defined]
    data = zlib.decompress(bomb.data, -15)
    assert data == head + chunk * 300 and bomb.crc == zlib.crc32(data) and bomb.size == len(data)
    import gzip
    import io
    import zipfile
    from email import message_from_bytes

    size = 4 << 20
    expanded = len(hostile._CSV_HEAD) + len(hostile._CHUNK) * ((size - 18) // len(hostile._CHUNK))  # type: ignore
    for raw in (hostile.zip_bomb(2, size), hostile.gzip_bomb(size)):  # type: ignore[attr-defined]
        att = message_from_bytes(raw).get_payload()[1].get_payload(decode=True)
        if att[:2] == b"PK":
            zf = zipfile.ZipFile(io.BytesIO(att))
            assert zf.testzip() is None  # every member inflated and its CRC checked
            assert [i.file_size for i in zf.infolist()] == [expanded] * 2
        else:
            assert len(gzip.decompress(att)) == expanded  # gzip checks CRC and length


# --- the mechanisms, in-process -------------------------------------------------------------------


def test_header_flood_keeps_the_structure_after_it() -> None:
    """100,000 Received, then the Content-Type: the capped section still says multipart."""
    flood = "".join(f"Received: from h{i} by mx; 22 Nov 2026 03:14:07 +0000\n" for i in range(100_000))
    raw = (flood + 'From: a@example.org\nContent-Type: multipart/mixed; boundary="b"\n\n'
           f"--b\nContent-Type: text/plain\n\n{hostile.LOG_LINE}\n--b--\n").encode()  # type: ignore[attr-defined]
    msg = normalize(raw)
    assert msg.email.is_multipart() and len(msg.email.get_all("Received")) == mimeparse.MAX_SAME_FIELDS
    assert msg.sender == "a@example.org" and msg.raw == raw  # the original bytes are kept
    assert ["message: 99,900 'received' header fields dropped (more than 100 of one name)"] == msg.problems


def test_long_header_cut_and_decoded_linearly() -> None:
    raw = b"Subject: " + b"=?utf-8?q?x?= " * 80_000 + b"\nFrom: a@example.org\n\nbody\n"
    msg = normalize(raw)
    assert set(msg.subject) == {"x"} and len(msg.subject) > 2000  # cut between two words, then decoded
    assert msg.problems == ["message: header 'Subject' is 1,120,010 characters; cut to 32,768"]


@pytest.mark.parametrize("value, text", [
    ("=?utf-8?q?J=C3=B6rg?= <j@example.org>", "Jörg <j@example.org>"),
    ("=?iso-8859-1?b?SvZyZw==?=  =?utf-8?Q?_M=C3=BCller?=", "Jörg Müller"),
    ("a =?utf-8?q?b?= c", "a b c"),
    ("=?no-such-charset?q?x?=", "x"),
    ("=?utf-8?b?!!!?=", ""),  # as the stdlib reads it
    ("plain\r\n folded", "plain folded"),
    ("=?utf-8?q??= empty", " empty"),
])
def test_text_header_decodes_words(value: str, text: str) -> None:
    assert str(mimeparse.TextHeader("Subject", value)) == text


def test_long_structured_headers_are_text_short_ones_as_before() -> None:
    long_from = "x" * 2000 + " <a@example.org>"
    raw = f"From: {long_from}\nTo: b@example.org\nContent-Type: text/plain; charset=utf-8\n\nbody\n".encode()
    msg = mimeparse.parse_bytes(raw)
    assert isinstance(msg["From"], mimeparse.TextHeader) and str(msg["From"]) == long_from
    assert not isinstance(msg["To"], mimeparse.TextHeader) and msg["To"].addresses[0].domain == "example.org"
    assert msg.get_content_charset() == "utf-8"
    # Written out again (a forward, the quarantine), the long value is folded as unstructured text.
    assert msg.as_string().startswith("From:\n " + "x" * 2000 + "\n <a@example.org>\nTo: b@example.org\n")


def test_mime_nesting_beyond_the_cap_is_read_as_text() -> None:
    msg = normalize(hostile.multipart_nested(200))  # type: ignore[attr-defined]
    assert any(hostile.LOG_LINE in b.text for b in msg.blocks)  # type: ignore[attr-defined]
    assert f"MIME parts nested deeper than {mimeparse.MAX_MIME_DEPTH} levels; the rest is read as text" \
        in msg.problems


def test_parts_beyond_the_cap_are_not_parsed() -> None:
    msg = mimeparse.parse_bytes(hostile.distinct_parts(3000), problems := [])  # type: ignore[attr-defined]
    assert sum(1 for _ in msg.walk()) == mimeparse.MAX_MIME_PARTS
    assert problems == [f"more than {mimeparse.MAX_MIME_PARTS} MIME parts; the rest of the message was not read"]


def test_line_cap_cuts_and_says_so() -> None:
    raw, cut = mimeparse.cap_lines(b"a\r\nb\rc\nd\n" * 3, 5)
    assert raw == b"a\r\nb\rc\nd\na\r\n" and cut == "message has 12 lines; read up to line 5 (15 bytes not read)"
    assert mimeparse.cap_lines(b"x\n" * 5, 5) == (b"x\n" * 5, None)


def test_single_part_body_is_taken_whole_like_the_stdlib() -> None:
    from email import policy
    from email.parser import BytesParser

    for raw in (b"Subject: a\nFrom: b\nnot a header\nbody\n", b"Subject: a\r\n\r\nbody\r\n", b"Subject: a\n\n"):
        raw += b"line\n" * 20_000  # over the size where the body is handed over whole
        mine, stdlib = mimeparse.parse_bytes(raw), BytesParser(policy=policy.default).parsebytes(raw)
        assert mine.get_payload() == stdlib.get_payload() and mine.items() == stdlib.items()


def test_forwarding_beyond_max_depth_is_said_in_the_output(config: Path, tmp_path: Path) -> None:
    from abuso.normalize import MAX_DEPTH
    from abuso.pipeline import Pipeline

    eml = tmp_path / "deep.eml"
    eml.write_bytes(hostile.forwarded(MAX_DEPTH + 1))  # type: ignore[attr-defined]
    run = hostile.run_abuso(["run", "-c", str(config), str(eml)], timeout=60)  # type: ignore[attr-defined]
    assert run.status == 0
    assert f"messages nested deeper than {MAX_DEPTH}; not followed" in run.stdout.decode()
    shallow = Pipeline.from_config({}).analyse(hostile.forwarded(MAX_DEPTH))  # type: ignore[attr-defined]
    assert [str(i.ip) for i in shallow.incidents] == [hostile.INCIDENT_IP] and not shallow.message.problems  # type: ignore


def test_gzip_bomb_refused_before_the_csv_reader() -> None:
    from abuso.pipeline import Pipeline

    report = Pipeline.from_config({"parsers": ["csv"]}).analyse(hostile.gzip_bomb(64 << 20))  # type: ignore
    assert "gzip bomb?" in str(report.verdicts["csv"]) and not report.incidents


def test_timed_log_lines_group_in_linear_time() -> None:
    """One incident per (ip, time) and the coarse-into-fine merge still hold after the per-address index."""
    from abuso.pipeline import Pipeline

    body = ("Nov 22 03:14 srv sshd[1]: Failed password for root from 198.51.100.7\n"
            "Nov 22 03:14:07 srv sshd[1]: Failed password for root from 198.51.100.7\n"
            "Nov 22 03:15:09 srv sshd[1]: Failed password for root from 198.51.100.8\n")
    raw = f"From: a@example.org\nDate: Sat, 22 Nov 2026 04:00:00 +0000\n\n{body}".encode()
    report = Pipeline.from_config({"parsers": ["log"]}).analyse(raw)
    assert sorted((str(i.ip), i.time.strftime("%H:%M:%S")) for i in report.incidents) == [
        ("198.51.100.7", "03:14:07"), ("198.51.100.8", "03:15:09")]
