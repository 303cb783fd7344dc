"""Messages abuso cannot handle are kept, unchanged, with the reason beside them.

File names come from the time and the SHA-256 of the bytes, never from message
content, so hostile mail cannot make abuso write outside this folder.
"""

from __future__ import annotations

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


def quarantine(folder: Path, data: bytes, origin: str, reason: str) -> Path:
    """Store ``data`` as <folder>/<UTC stamp>-<digest>.eml and the reason as .reason."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    digest = hashlib.sha256(data).hexdigest()[:20]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}-{digest}.eml"
    _atomic_write(path, data)
    note = f"origin: {origin}\nreason: {reason}\nwhen: {datetime.now(timezone.utc).isoformat()}\n"
    _atomic_write(path.with_suffix(".reason"), note.encode("utf-8", "replace"))
    return path
