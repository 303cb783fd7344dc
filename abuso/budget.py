"""The hard budget of one message: memory (``defaults.max_memory``) and the lifeline of batch workers.

Memory is bounded with the kernel's address-space limit (``RLIMIT_AS``): while a message is
processed, the process may grow by ``max_memory`` over its size when the message started, and
an allocation past that fails with MemoryError in whichever stage asked for it. The limit is
set and lifted around each message (the soft limit only), so a worker's own growth never
counts against the next message, and a library caller (tests, Python users) is not left with a
limit it did not ask for. Where the limit cannot be set (no ``/proc/self/statm``: not Linux)
memory is not bounded and the worker recycling of :mod:`abuso.workers` is the only bound.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Iterator

try:
    import resource
except ImportError:  # pragma: no cover - not on Unix
    resource = None  # type: ignore[assignment]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory() -> tuple[int, int] | None:
    """(address space, resident set) of this process in bytes, or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            size, resident = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return int(size) * _PAGE, int(resident) * _PAGE


def can_limit() -> bool:
    return resource is not None and hasattr(resource, "RLIMIT_AS") and memory() is not None


@contextmanager
def memory_limit(extra: int) -> Iterator[None]:
    """Run the block with this process's address space limited to its size now plus ``extra`` bytes.

    ``extra <= 0``: no limit. A lower limit already in force (``ulimit -v``) is kept.
    """
    now = memory() if extra > 0 and resource is not None and hasattr(resource, "RLIMIT_AS") else None
    if now is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = now[0] + extra
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
