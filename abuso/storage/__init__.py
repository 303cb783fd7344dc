"""Persistent state: the report store (files + index) shared by the store processor and `abuso query`."""

from .index import Index, ip_key, net_range
from .store import Store, StoredReport, digest_of

__all__ = ["Index", "Store", "StoredReport", "digest_of", "ip_key", "net_range"]
