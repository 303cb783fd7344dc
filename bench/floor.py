#!/usr/bin/env python3
"""The parse floor: what merely reading the mail costs, the yardstick for abuso's batch speed.

For every message, in one process: read the file, ``email.message_from_bytes(raw, policy=default)``,
and decode every text part (``get_content()``, charset and transfer encoding applied). abuso cannot
do less than this with a message; bench/run.py prints abuso's batch time as a ratio to it.

    python bench/floor.py FILE... | --files-from LIST      # prints seconds and messages/s
"""

from __future__ import annotations

import argparse
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path


def parse_and_decode(raw: bytes) -> int:
    """Characters of text decoded from one message (returned so nothing is optimised away)."""
    msg = message_from_bytes(raw, policy=policy.default)
    chars = 0
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            try:
                chars += len(part.get_content())
            except (LookupError, ValueError, AssertionError):  # unknown charset, broken part
                chars += len(part.get_payload(decode=True) or b"")
    return chars


def floor(paths: list[Path]) -> float:
    """Seconds to read, parse and decode every message, in this process."""
    return floor_times(paths)[0]


def floor_times(paths: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to read, parse and decode every message."""
    t, c = time.perf_counter(), time.process_time()
    for p in paths:
        parse_and_decode(p.read_bytes())
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--files-from", type=argparse.FileType("r"), help="a list of paths, one a line ('-': stdin)")
    args = ap.parse_args()
    paths = list(args.files) + ([Path(line.strip()) for line in args.files_from if line.strip()]
                                if args.files_from else [])
    if not paths:
        sys.exit("floor: no messages")
    secs = floor(paths)
    print(f"floor: {len(paths)} messages in {secs:.3f} s ({len(paths) / secs:.0f} messages/s)")


if __name__ == "__main__":
    main()
