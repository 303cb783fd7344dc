#!/usr/bin/env python3
"""The hostile set: messages built to cost abuso time or memory (issue 13).

Each case is one raw message that anyone on the Internet can send to an abuse@
mailbox. ``cases()`` yields ``(name, bytes)`` one at a time (the largest is
50 MB; nothing is kept between cases) and ``CASES`` says what each one is and
what abuso must make of it. Bombs are built without ever holding their expanded
size: one compressed block is repeated and the CRC of the whole is computed
arithmetically, so a 5 GiB zip member costs a few MB and well under a second.

    python bench/hostile.py OUTDIR                       # write OUTDIR/<name>.eml
    python bench/hostile.py OUTDIR --measure [-c CONFIG] [-k NAME ...]

``--measure`` runs each case in its own process, ``abuso run -c CONFIG FILE``
(batch reader) and ``abuso run -c CONFIG < FILE`` (piped), and prints wall time,
CPU time, peak RSS of that process (``os.wait4``), exit status and outcome.
A safety net (``--limit-mb``, ``--timeout``) keeps a runaway case from taking
the machine down while measuring an old version.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent

#: The incident every "still analysed" case carries in its body.
LOG_LINE = "Nov 22 03:14:07 srv sshd[4242]: Failed password for root from 192.0.2.17 port 51022 ssh2"
INCIDENT_IP = "192.0.2.17"


def _headers(extra: str = "", *, subject: str = "hostile input", ctype: str = "text/plain; charset=us-ascii",
             sender: str = "reporter@example.org") -> str:
    top = (f"From: {sender}\nTo: abuse@example.net\nSubject: {subject}\n"
           "Date: Sat, 22 Nov 2026 04:00:00 +0100\nMessage-ID: <hostile@example.org>\n")
    return top + extra + f"MIME-Version: 1.0\nContent-Type: {ctype}\n\n"


def _body() -> str:
    return f"Hello,\n\nour server logged this:\n\n{LOG_LINE}\n\nRegards\n"


def _simple(extra_headers: str = "", **kw: str) -> bytes:
    return (_headers(extra_headers, **kw) + _body()).encode()


# --- header floods --------------------------------------------------------------


def encoded_words(size: int = 1 << 20) -> bytes:
    """One Subject header of ~1 MB of RFC 2047 encoded words (quadratic memory in the stdlib)."""
    word = "=?utf-8?q?x?= "
    return _simple(subject=word * (size // len(word)))


def received_flood(n: int = 100_000) -> bytes:
    """100,000 Received headers (7.7 MB)."""
    lines = [f"Received: from h{i}.example.org ([10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}]) "
             f"by mx; 22 Nov 2026 03:{i // 60 % 60:02d}:{i % 60:02d} +0000\n" for i in range(n)]
    return ("".join(lines) + _headers() + _body()).encode()


def received_attached(n: int = 100_000) -> bytes:
    """A forwarded spam (message/rfc822) carrying 100,000 Received headers: caps inside parts too."""
    inner = ("".join(f"Received: from h{i}.example.org ([10.{i >> 8 & 255}.{i & 255}.1]) by mx; "
                     f"22 Nov 2026 03:14:07 +0000\n" for i in range(n)) + "Subject: spam\n\nbuy now\n")
    return (_headers(ctype='multipart/mixed; boundary="r"') + f"--r\nContent-Type: text/plain\n\n{_body()}\n"
            f"--r\nContent-Type: message/rfc822\n\n{inner}\n--r--\n").encode()


def char_header(char: str, size: int = 1 << 20, name: str = "From") -> bytes:
    """A 1 MB header made of one character (or pair) repeated: ``<``, ``(``, ``"``, ``=?``."""
    value = char * (size // len(char))
    if name == "From":
        return _simple(sender=value)
    return _simple(f"{name}: {value}\n")


def content_type_ips(size: int = 100_000) -> bytes:
    """A 100 KB Content-Type header of ``1.2.3.4`` words."""
    return _simple(ctype="text/plain; " + "1.2.3.4 " * (size // 8))


def big_from(size: int = 100_000) -> bytes:
    """A 100 KB From: of display names and addresses."""
    one = '"Some Body" <some.body@example.org>, '
    return _simple(sender=one * (size // len(one)))


# --- bodies ----------------------------------------------------------------------


def single_line(size: int = 50 << 20) -> bytes:
    """A 50 MB body that is one line."""
    unit = b"lorem ipsum 192.0.2.17 dolor sit amet "
    return _headers().encode() + unit * (size // len(unit)) + b"\n"


def log_lines(size: int = 50 << 20) -> bytes:
    """50 MB of sshd log lines."""
    unit = (LOG_LINE + "\n").encode()
    return _headers().encode() + unit * (size // len(unit))


def blank_lines(size: int = 30 << 20) -> bytes:
    """30 MB of empty lines after the report (the stdlib's parser spends ~1 µs on each)."""
    return (_headers() + _body()).encode() + b"\n" * size


def many_addresses(n: int = 1_000_000) -> bytes:
    """One body listing 1,000,000 distinct addresses, one a line."""
    body = "".join(f"198.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(n))
    return (_headers() + _body() + body).encode()


def run_of(unit: str, n: int = 100_000) -> bytes:
    """A 100k-character run of ``1.1.1.1…`` or ``::::…`` in a body (address finders)."""
    text = (unit * (n // len(unit) + 1))[:n]
    return (_headers() + _body() + text + "\n" + text + " " + LOG_LINE + "\n").encode()


def html_nested(depth: int = 100_000) -> bytes:
    """HTML nested 100,000 elements deep."""
    html = "<html><body>" + "<div>" * depth + LOG_LINE + "</div>" * depth + "</body></html>\n"
    return (_headers(ctype="text/html; charset=us-ascii") + html).encode()


def html_flat(rows: int = 7000) -> bytes:
    """HTML of 49,000 tags (just under what is parsed at all): table rows with empty elements, stray end tags."""
    row = "<tr><td>cell &amp; text&#147;</td><td><img src=x></td></tr>"
    html = ("<html><body><table>" + row * rows + "</table><p>" + LOG_LINE + "</p>" + "</b></i>" * 900
            + "</body></html>\n")
    return (_headers(ctype="text/html; charset=us-ascii") + html).encode()


def multipart_nested(depth: int = 1000) -> bytes:
    """multipart/mixed inside multipart/mixed, 1,000 levels."""
    head = [_headers(ctype='multipart/mixed; boundary="b0"')]
    for i in range(1, depth):
        head.append(f"--b{i - 1}\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n")
    head.append(f"--b{depth - 1}\nContent-Type: text/plain\n\n{_body()}\n--b{depth - 1}--\n")
    tail = [f"--b{i}--\n" for i in range(depth - 2, -1, -1)]
    return ("".join(head) + "".join(tail)).encode()


def many_parts(n: int = 10_000) -> bytes:
    """One multipart with 10,000 text parts."""
    out = [_headers(ctype='multipart/mixed; boundary="p"'), f"--p\nContent-Type: text/plain\n\n{_body()}\n"]
    out += [f"--p\nContent-Type: text/plain\n\npart {i}: 198.51.{i >> 8 & 255}.{i & 255}\n" for i in range(n - 1)]
    out.append("--p--\n")
    return "".join(out).encode()


def distinct_parts(n: int = 10_000) -> bytes:
    """10,000 parts, each with a Content-Type of its own (no parsed-header cache can help)."""
    out = [_headers(ctype='multipart/mixed; boundary="p"'), f"--p\nContent-Type: text/plain\n\n{_body()}\n"]
    out += [f'--p\nContent-Type: text/plain; charset="us-ascii"; name="part{i}.txt"; x-id="{i:08d}"\n\n{i}\n'
            for i in range(n - 1)]
    out.append("--p--\n")
    return "".join(out).encode()


def timed_log(n: int = 20_000) -> bytes:
    """20,000 log lines, each a different address at a different time (every one an incident)."""
    body = "".join(f"Nov 22 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} srv sshd[4242]: Failed password "
                   f"for root from 198.51.{i >> 8 & 255}.{i & 255} port 22 ssh2\n" for i in range(n))
    return (_headers() + _body() + body).encode()


def forwarded(depth: int = 9) -> bytes:
    """A log report forwarded as message/rfc822 inside message/rfc822, ``depth`` levels deep."""
    inner = (_headers(subject="the original report") + _body()).encode()
    for i in range(depth):
        inner = (_headers(subject=f"Fwd level {depth - i}", ctype=f'multipart/mixed; boundary="f{i}"')
                 + f"--f{i}\nContent-Type: text/plain\n\nSee the attached report.\n\n"
                 + f"--f{i}\nContent-Type: message/rfc822\n\n").encode() + inner + f"\n--f{i}--\n".encode()
    return inner


# --- bombs -------------------------------------------------------------------------


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32_repeat(crc: int, length: int, times: int) -> int:
    """CRC-32 of a block of ``length`` bytes (CRC ``crc``) repeated ``times`` times."""
    acc = 0
    while times:
        if times & 1:
            acc = crc32_combine(acc, crc, length)
        crc = crc32_combine(crc, crc, length)
        length *= 2
        times >>= 1
    return acc


@dataclass
class Deflated:
    data: bytes  # raw deflate stream
    crc: int
    size: int  # expanded size


def deflate_bomb(head: bytes, chunk: bytes, times: int) -> Deflated:
    """Raw deflate of ``head + chunk * times`` without expanding it.

    ``chunk`` is compressed once and ended with a full flush (no back-reference
    reaches before it), so its compressed form can simply be repeated.
    """
    def block(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    data = block(head) + block(chunk) * times + b"\x03\x00"  # the final, empty fixed-Huffman block
    crc = crc32_combine(zlib.crc32(head), crc32_repeat(zlib.crc32(chunk), len(chunk), times), len(chunk) * times)
    return Deflated(data, crc, len(head) + len(chunk) * times)


_CSV_HEAD = b"ip,timestamp,type\n"
_CSV_ROW = b"192.0.2.17,2026-11-22T03:14:07Z,spam\n"
#: One row, then blank lines (which a CSV reader skips) up to 1 MiB: compressed once and repeated, ~1000:1.
_CHUNK = _CSV_ROW + b"\n" * ((1 << 20) - len(_CSV_ROW))


def zip_bomb(members: int = 5, member_size: int = 1 << 30) -> bytes:
    """A zip of CSV files that inflates to ``members`` x 1 GiB (5 GiB), ~5 MB on the wire."""
    bomb = deflate_bomb(_CSV_HEAD, _CHUNK, (member_size - len(_CSV_HEAD)) // len(_CHUNK))
    local, central = [], []
    offset = 0
    for i in range(members):
        name = f"report-{i}.csv".encode()
        fields = (20, 0, 8, 0, 0x5B00, bomb.crc, len(bomb.data), bomb.size, len(name), 0)
        header = b"PK\x03\x04" + _pack("<HHHHHIIIHH", *fields) + name
        central.append(b"PK\x01\x02" + _pack("<HHHHHHIIIHHHHHII", 20, 20, 0, 8, 0, 0x5B00, bomb.crc,
                                             len(bomb.data), bomb.size, len(name), 0, 0, 0, 0, 0o644 << 16,
                                             offset) + name)
        local.append(header + bomb.data)
        offset += len(header) + len(bomb.data)
    cd = b"".join(central)
    end = b"PK\x05\x06" + _pack("<HHHHIIH", 0, 0, members, members, len(cd), offset, 0)
    data = b"".join(local) + cd + end
    return _attachment(data, "application/zip", "report.zip")


def gzip_bomb(size: int = 5 << 30) -> bytes:
    """A ``.csv.gz`` that inflates to 5 GiB."""
    bomb = deflate_bomb(_CSV_HEAD, _CHUNK, (size - len(_CSV_HEAD)) // len(_CHUNK))
    data = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + bomb.data
            + _pack("<II", bomb.crc, bomb.size & 0xFFFFFFFF))
    return _attachment(data, "application/gzip", "report.csv.gz")


def _pack(fmt: str, *values: int) -> bytes:
    import struct

    return struct.pack(fmt, *values)


def _attachment(data: bytes, ctype: str, filename: str) -> bytes:
    return (_headers(ctype='multipart/mixed; boundary="a"') + f"--a\nContent-Type: text/plain\n\n{_body()}\n"
            f'--a\nContent-Type: {ctype}; name="{filename}"\nContent-Transfer-Encoding: base64\n'
            f'Content-Disposition: attachment; filename="{filename}"\n\n').encode() \
        + base64.encodebytes(data) + b"\n--a--\n"


def billion_laughs() -> bytes:
    """An ACNS notice whose XML defines the billion-laughs entities, inline and as an .xml attachment."""
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    xml = (f'<?xml version="1.0"?>\n<!DOCTYPE Infringement [{ents}]>\n'
           '<Infringement xmlns="http://www.acns.net/ACNS"><Case><ID>1</ID></Case>'
           "<Source><TimeStamp>2026-11-22T03:14:07Z</TimeStamp><IP_Address>192.0.2.17</IP_Address>"
           "<Type>BitTorrent</Type></Source><Content><Item><Title>&lol9;</Title></Item></Content></Infringement>\n")
    return (_headers(ctype='multipart/mixed; boundary="x"') + f"--x\nContent-Type: text/plain\n\nNotice:\n\n{xml}\n"
            f'--x\nContent-Type: application/xml; name="notice.xml"\n\n{xml}\n--x--\n').encode()


def yaml_bomb() -> bytes:
    """An X-ARF 0.2 report.txt whose YAML aliases expand to 10^9 strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    report = ("---\nReported-From: x@example.org\nCategory: abuse\nReport-Type: login-attack\nSource-Type: ip-address\n"
              "Source: 192.0.2.17\nDate: Sat, 22 Nov 2026 03:14:07 +0000\nVersion: 0.2\n" + "\n".join(lines) + "\n")
    return (_headers("X-XARF: PLAIN\n", ctype='multipart/mixed; boundary="y"')
            + f"--y\nContent-Type: text/plain\n\nreport\n\n"
            f'--y\nContent-Type: text/plain; name="report.txt"\n\n{report}\n'
            f'--y\nContent-Type: text/plain; name="logfile.log"\n\n{LOG_LINE}\n--y--\n').encode()


def feedback_blocks(size: int = 10 << 20) -> bytes:
    """A body of pasted ARF field blocks (each a report by content) after the log line."""
    block = "Feedback-Type: abuse\nVersion: 1\nSource-IP: 198.51.100.{n}\n\n"
    blocks = "".join(block.format(n=n % 250 + 1) for n in range(size // len(block.format(n=100))))
    return (_headers() + _body() + "\n" + blocks).encode()


def opaque_reports(n: int = 2000) -> bytes:
    """Many nameless octet-stream parts, each a whole feedback report (base64): found by content."""
    report = (b"From: fbl@provider.example\nSubject: r\nMIME-Version: 1.0\nContent-Type: multipart/report; "
              b'report-type=feedback-report; boundary="R"\n\n--R\nContent-Type: message/feedback-report\n\n'
              b"Feedback-Type: abuse\nSource-IP: 198.51.100.9\n\n--R--\n")
    part = (b'--a\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n'
            + base64.encodebytes(report) + b"\n")
    return (_headers(ctype='multipart/mixed; boundary="a"') + f"--a\nContent-Type: text/plain\n\n{_body()}\n"
            ).encode() + part * n + b"--a--\n"


# --- the set ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    #: What abuso must do: 'analysed' (exit 0, the body's incident found), 'quarantined' (exit 65),
    #: or 'done' (exit 0, incidents not required).
    expect: str = "analysed"
    #: A word the JSON output (verdicts/problems) or the quarantine reason must contain.
    says: str = ""


CASES: list[Case] = [
    Case("encoded-words-1mb", encoded_words, says="header"),
    Case("received-100k", received_flood, says="header"),
    Case("received-100k-attached", received_attached, says="header"),
    Case("single-line-50mb", single_line, "quarantined", "max_bytes"),
    Case("log-lines-50mb", log_lines, "quarantined", "max_bytes"),
    # The same below the default max_bytes (32 MB), so that they are read.
    Case("single-line-30mb", lambda: single_line(30 << 20), says="cut"),
    Case("log-lines-30mb", lambda: log_lines(30 << 20), says="cut"),
    Case("blank-lines-30mb", blank_lines, says="lines"),
    Case("zip-bomb-5gb", zip_bomb, says="zip"),
    Case("gzip-bomb-5gb", gzip_bomb, says="gzip"),
    Case("html-nested-100k", html_nested),
    Case("html-flat-49k-tags", html_flat),
    Case("multipart-nested-1000", multipart_nested, says="nested"),
    Case("parts-10k", many_parts, says="parts"),
    Case("parts-10k-distinct", distinct_parts, says="parts"),
    Case("timed-log-20k", timed_log, says="addresses"),
    Case("addresses-1m", many_addresses, says="addresses"),
    Case("dots-100k", lambda: run_of("1.")),
    Case("colons-100k", lambda: run_of(":")),
    Case("billion-laughs-acns", billion_laughs, says="entity"),
    Case("yaml-bomb-xarf", yaml_bomb),
    Case("header-lt-1mb", lambda: char_header("<"), says="header"),
    Case("header-paren-1mb", lambda: char_header("("), says="header"),
    Case("header-quote-1mb", lambda: char_header('"'), says="header"),
    Case("header-eq-q-1mb", lambda: char_header("=?"), says="header"),
    Case("content-type-ips-100k", content_type_ips, says="header"),
    Case("from-100k", big_from, says="header"),
    # The report is past the forwarding depth cap: not read, and the output says so.
    Case("forwarded-9", lambda: forwarded(9), "done", "nested"),
    Case("forwarded-40", lambda: forwarded(40), "done", "nested"),
    # ARF found by content (pasted fields, reports re-wrapped as nameless files): capped, and the log line stays.
    Case("feedback-blocks-10mb", feedback_blocks, says="feedback reports"),
    Case("opaque-reports-400", lambda: opaque_reports(400), says="feedback reports"),
    Case("opaque-reports-2k", opaque_reports, says="parts"),
]


def cases(names: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(name, raw message) for each hostile case (or the named ones), built one at a time."""
    for case in CASES:
        if not names or case.name in names:
            yield case.name, case.build()


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    status: int  # exit status; negative: killed by that signal
    stdout: bytes
    stderr: bytes


#: Runs one command and reports its wall time, CPU time and peak RSS. A process forked from a big
#: one (pytest, this script holding a 50 MB case) inherits its parent's RSS high-water mark through
#: fork and exec, so the command is started from this small process, whose children's figures
#: (RUSAGE_CHILDREN) are the command's alone.
_MEASURE = """
import json, os, resource, subprocess, sys, time
report, limit_mb, timeout, cmd = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def limit():
    if limit_mb:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
t = time.perf_counter()
proc = subprocess.Popen(cmd, preexec_fn=limit if limit_mb else None)
try:
    status = proc.wait(timeout)
except subprocess.TimeoutExpired:
    proc.kill()
    status = proc.wait()
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(report, "w") as f:
    json.dump({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_kb": ru.ru_maxrss, "status": status}, f)
"""


def run_abuso(args: list[str], stdin_path: Path | None = None, *, limit_mb: int = 0, timeout: float = 60,
              env: dict[str, str] | None = None) -> Run:
    """Run ``python -m abuso ARGS`` in a child process and measure that child alone."""
    import json

    with tempfile.TemporaryDirectory(prefix="abuso-measure-") as tmp:
        report = Path(tmp) / "report.json"
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err, \
                (open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb")) as stdin:
            subprocess.run([sys.executable, "-c", _MEASURE, str(report), str(limit_mb), str(timeout),
                            sys.executable, "-m", "abuso", *args], stdin=stdin, stdout=out, stderr=err, env=env,
                           cwd=ROOT, check=True)
        figures = json.loads(report.read_text())
        return Run(figures["wall"], figures["cpu"], figures["rss_kb"] / 1024, figures["status"],
                   out_path.read_bytes(), err_path.read_bytes())


def outcome(run: Run) -> str:
    """A short word for what happened: ok, quarantined (with its reason), or how it failed."""
    if run.status < 0:
        return f"killed by signal {-run.status}"
    err = run.stderr.decode("utf-8", "replace").strip().splitlines()
    if run.status == 65:
        reason = next((ln.partition(": quarantined as ")[2] for ln in err if "quarantined as" in ln), "")
        return "quarantined: " + (reason.partition(": ")[2] or (err[-1] if err else ""))[:70]
    if run.status == 0:
        n = run.stdout.count(b'"ip":')
        return f"ok, {n} incident{'s' if n != 1 else ''}"
    return f"exit {run.status}: " + (err[-1][:70] if err else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path, help="folder for the <name>.eml files")
    ap.add_argument("--measure", action="store_true", help="run abuso on each case and print the figures")
    ap.add_argument("-c", "--config", help="abuso config (default: a bare one quarantining under OUTDIR)")
    ap.add_argument("-k", "--case", action="append", help="only this case (repeatable)")
    ap.add_argument("--limit-mb", type=int, default=4096, help="address-space limit of each run (safety net)")
    ap.add_argument("--timeout", type=float, default=120, help="kill a run after this many seconds")
    args = ap.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for case in CASES:
        if args.case and case.name not in args.case:
            continue
        t = time.perf_counter()
        data = case.build()
        path = args.outdir / f"{case.name}.eml"
        path.write_bytes(data)
        files.append(path)
        print(f"wrote {path.name:<26} {len(data) / 1e6:8.2f} MB in {time.perf_counter() - t:5.2f} s", flush=True)
        del data
    if not args.measure:
        return
    config = args.config
    if config is None:
        config = str(args.outdir / "hostile.yaml")
        Path(config).write_text(f"quarantine: {args.outdir / 'quarantine'}\n")
    print(f"\n{'case':<26} {'mode':<6} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'exit':>5}  outcome")
    for path in files:
        for mode in ("batch", "piped"):
            argv = ["run", "-c", config, "-f", "json"] + ([str(path)] if mode == "batch" else [])
            run = run_abuso(argv, None if mode == "batch" else path, limit_mb=args.limit_mb, timeout=args.timeout)
            print(f"{path.stem:<26} {mode:<6} {run.wall:7.2f} {run.cpu:6.2f} {run.rss_mb:8.0f} {run.status:5d}  "
                  f"{outcome(run)}", flush=True)
    shutil.rmtree(args.outdir / "quarantine", ignore_errors=True)


if __name__ == "__main__":
    main()
