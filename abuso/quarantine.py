"""Messages abuso cannot handle are kept, unchanged, with the reason beside them.

A message is kept once: its file is named by the SHA-256 of its bytes (``<digest>.eml``), never by
message content, so hostile mail cannot make abuso write outside this folder, two identical messages
quarantined in the same second cannot overwrite each other, and a re-run does not keep it again. Each time
it is quarantined, a line (when, origin, reason) is appended to ``<digest>.reason``: different reasons for
the same bytes are all kept.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _one_line(text: str) -> str:
    return " ".join(text.split())


def quarantine(folder: Path, data: bytes, origin: str, reason: str) -> Path:
    """Keep ``data`` as <folder>/<sha256>.eml (once) and append why to <sha256>.reason."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{digest}.eml"
    if not path.exists():
        _atomic_write(path, data)
    line = (f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}\torigin: {_one_line(origin)}\t"
            f"reason: {_one_line(reason)}\n").encode("utf-8", "replace")
    fd = os.open(path.with_suffix(".reason"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)            # workers of one batch, or two batches, append whole lines
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
