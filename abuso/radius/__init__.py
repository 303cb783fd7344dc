"""RADIUS accounting: read FreeRADIUS/Livingston ``detail`` logs into an on-disk session index.

``detail`` turns log bytes into accounting events; ``index`` folds events into
sessions (one row per session and address) kept in SQLite, refreshed
incrementally, and answers "who held this address at this time".
"""

from .detail import Event, parse_block
from .index import RadiusIndex, Session

__all__ = ["Event", "parse_block", "RadiusIndex", "Session"]
