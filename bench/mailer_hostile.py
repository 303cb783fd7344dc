#!/usr/bin/env python3
"""The mailer's decision on hostile headers (never run as a timed test).

Each case puts hostile headers on samples/mailer/human.eml, normalizes it once (not timed:
the normalizer's own budget is measured elsewhere) and times MailerProcessor.process with a
dry-run transport: policy, state, template and the .eml written. Prints seconds per case and
the peak RSS of the process.

    python bench/mailer_hostile.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {
    "X-Loop of 1 MB 'a'": b"X-Loop: " + b"a" * 1_000_000 + b"\n",
    "X-Loop of 1 MB 'a.'": b"X-Loop: " + b"a." * 500_000 + b"\n",
    "X-Loop of 100k 'a@'": b"X-Loop: " + b"a@" * 100_000 + b"\n",
    "100k Received": b"Received: from x by y (envelope-from <a@b.example>) id 1\n" * 100_000,
    "100k Delivered-To ours": b"Delivered-To: abuse@example.net\n" * 100_000,
    "100k Delivered-To other": b"Delivered-To: a@b.example\n" * 100_000,
    "References of 1 MB": b"References: " + b"<a@b> " * 150_000 + b"\n",
    "Reply-To of 100k '('": b"Reply-To: " + b"(" * 100_000 + b"a@b.example\n",
}


def main() -> None:
    from abuso.model import Report
    from abuso.normalize import normalize
    from abuso.processors.mailer import MailerProcessor

    base = (ROOT / "samples" / "mailer" / "human.eml").read_bytes()
    with tempfile.TemporaryDirectory() as d:
        mailer = MailerProcessor({"from": "abuse@example.net", "good": "etc/good-response.txt",
                                  "bad": "etc/bad-response.txt", "dry_run": f"{d}/out", "state": f"{d}/s.sqlite",
                                  "period": 0}, ROOT)
        for name, head in CASES.items():
            raw = head + base
            report = Report(raw=raw, message=normalize(raw))
            start = time.perf_counter()
            mailer.process(report)
            print(f"{name:26} {time.perf_counter() - start:6.2f} s  {str(report.notes['mailer'])[:70]}")
        mailer.close()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
