"""-f json and -f intelmq are valid UTF-8 JSON whatever bytes the mail holds."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest


def garbage_report(rnd: random.Random, n: int) -> bytes:
    junk = bytes(rnd.randrange(128, 256) for _ in range(rnd.randrange(5, 40)))
    charset = rnd.choice([b"utf-8", b"iso-8859-1", b"bogus-8", b"utf-16", b"x-\xff"])
    return (b"From: r@example.org\nSubject: " + junk + b"\nMessage-ID: <" + junk[:8] + b"@x>\n"
            b"Content-Type: text/plain; charset=" + charset + b"\n\n"
            + b"Nov 28 09:59:%02d h sshd[1]: Failed password for " % (n % 60) + junk
            + b" from 192.0.2.%d port 4242 ssh2 " % (n % 250 + 1) + junk + b"\n")


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.parametrize("fmt", ["json", "intelmq"])
def test_every_line_is_valid_utf8_json(tmp_path: Path, rnd: random.Random, fmt: str) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    for n in range(40):
        (folder / f"{n}.eml").write_bytes(garbage_report(rnd, n))
    cfg = tmp_path / "abuso.yaml"
    cfg.write_text(f"parsers: [log]\nquarantine: {tmp_path / 'q'}\n")
    r = subprocess.run([sys.executable, "-m", "abuso", "run", "-c", str(cfg), "-f", fmt, str(folder)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode("utf-8")                   # strict: invalid UTF-8 raises
    lines = [line for line in text.split("\n") if line]   # JSON Lines: \n only
    assert len(lines) >= 20                          # most reports still yield their incident
    for line in lines:
        value = json.loads(line)
        # No lone surrogate, raw or as a \\udcxx escape: strict JSON readers (Go, Rust, jq) reject those.
        assert not any(0xD800 <= ord(c) <= 0xDFFF for s in strings(value) for c in s), line


def test_lone_surrogates_in_report_fields_become_replacement_characters() -> None:
    from abuso.model import Incident, Report
    from abuso.output import intelmq
    from abuso.output import json as json_output

    inc = Incident("192.0.2.7", "spam", None, "log", evidence="bad \udcff\udc80 bytes \ud800 lone \U0001f600")
    report = Report(raw=b"", origin="x\udcff", message_id="<\udcfe@x>", subject="s\udcff", incidents=[inc])
    for render in (json_output.render, intelmq.render):
        out = render(report)
        value = json.loads(out.encode("utf-8").decode("utf-8").splitlines()[0])
        assert not any(0xD800 <= ord(c) <= 0xDFFF for s in strings(value) for c in s)
    assert "\U0001f600" in json_output.render(report) and "\ufffd" in json_output.render(report)


def test_valid_text_replaces_lone_surrogates_only() -> None:
    from abuso.output import valid_text

    for text in ["plain ascii", "caf\u00e9 \u2028 \U0001f600 \u00ff", "", "\x00\x7f"]:
        assert valid_text(text) is text
    assert valid_text("caf\udce9 \ud800x\udfff \U0001f600") == "caf\ufffd \ufffdx\ufffd \U0001f600"
