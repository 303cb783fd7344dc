"""ACNS copyright notices: ``<Infringement xmlns="http://www.acns.net/ACNS">`` in the body or attached.

Senders (IP-Echelon, Irdeto/Copyright Compliance, MarkMonitor, ...) put the XML
after pages of legal prose, inside a PGP-signed body, attached as ``.xml``, or
all of these at once; the same notice found twice is one incident. The XML is
hostile input: only the ``<Infringement>`` element itself is handed to the XML
parser (never a DOCTYPE, so no entity expansion), and its size and count are
bounded.
"""

from __future__ import annotations

import re
from datetime import datetime
from ipaddress import ip_address

from ..errors import INPUT_ERRORS
from ..lazy import lazy_compile, lazy_import
from ..model import Incident, Verdict, merge_duplicates
from ..zones import resolve
from .base import TIME_OPTIONS, Parser

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Iterator
    from xml.etree.ElementTree import Element

    from ..normalize import Message

html = lazy_import('html')
ET = lazy_import('xml.etree.ElementTree')
#: One notice larger than this is not parsed (real ones are 2-20 KB).
MAX_XML_BYTES = 1024 * 1024
#: At most this many notices are read from one message.
MAX_NOTICES = 200

_START = lazy_compile(r"<(?:[A-Za-z_][\w.-]*:)?Infringement\b")
_END = lazy_compile(r"</(?:[A-Za-z_][\w.-]*:)?Infringement\s*>")
_FORBIDDEN = lazy_compile(r"<!(?:DOCTYPE|ENTITY)", re.I)
_XML_NAMES = (".xml",)
_XML_TYPES = ("application/xml", "text/xml", "application/acns+xml")
_ENTITY_REF = lazy_compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)[A-Za-z_][\w.-]*;")
_HTML_BREAKS = lazy_compile(r"<(?:br|p|/p|div|/div|wbr)\b[^>]*>", re.I)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: Element | None, name: str) -> Element | None:
    if elem is None:
        return None
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _children(elem: Element | None, name: str) -> list[Element]:
    return [c for c in elem if _local(c.tag) == name] if elem is not None else []


def _text(elem: Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def find_notices(text: str) -> Iterator[tuple[str, str | None]]:
    """Each ``<Infringement>…</Infringement>`` in text: (xml, None) or ("", why it was refused)."""
    pos = 0
    for _ in range(MAX_NOTICES):
        m = _START.search(text, pos)
        if not m:
            return
        end = _END.search(text, m.end())
        if not end:
            yield "", "an <Infringement> element without its end tag"
            return
        pos = end.end()
        chunk = text[m.start():pos]
        if len(chunk) > MAX_XML_BYTES:
            yield "", f"a notice of {len(chunk)} bytes, more than {MAX_XML_BYTES}"
        elif _FORBIDDEN.search(chunk):
            yield "", "a notice with DOCTYPE/ENTITY declarations"
        else:
            yield chunk, None


class AcnsParser(Parser):
    """Copyright incidents from ACNS 1.x/2.x XML notices."""

    name = "acns"
    priority = 70

    OPTIONS = TIME_OPTIONS

    def parse(self, message: Message) -> Verdict:
        texts = list(self._texts(message))
        if not texts:
            return self.not_applicable("no ACNS <Infringement> XML")
        incidents: list[Incident] = []
        problems: list[str] = []
        notices = 0
        for where, text in texts:
            for chunk, refused in find_notices(text):
                if refused:
                    problems.append(f"{where}: {refused}")
                    continue
                notices += 1
                inc, problem = self._notice(chunk, message)
                if problem:
                    problems.append(f"{where}: {problem}")
                if inc is not None:
                    incidents.append(inc)
        incidents = merge_duplicates(incidents)
        if not incidents:
            # The XML was there (possibly refused): applied, so the reason reaches the desk.
            return self.found([], "; ".join(problems) or "ACNS notice without a usable source")
        reason = f"{notices} ACNS notice{'s' if notices != 1 else ''}"
        if notices > len(incidents):
            reason += f" ({notices - len(incidents)} repeated)"
        if problems:
            reason += "; " + "; ".join(problems)
        return self.found(incidents, reason)

    def _texts(self, message: Message) -> Iterator[tuple[str, str]]:
        """Text that contains an Infringement element: body blocks, XML attachments, raw HTML parts."""
        for block in message.blocks:
            if block.kind != "html" and "Infringement" in block.text and _START.search(block.text):
                yield f"part {block.part}", block.text
        for att in message.attachments:
            name = (att.filename or "").lower()
            data = att.data
            if not (name.endswith(_XML_NAMES) or att.content_type in _XML_TYPES or b"Infringement" in data[:65536]):
                continue
            if len(data) > 8 * MAX_XML_BYTES:
                data = data[: 8 * MAX_XML_BYTES]
            text = _decode(data)
            if _START.search(text):
                yield att.filename or f"part {att.part}", text
        # HTML bodies lose their tags in normalizing; read the raw part instead.
        if any(b.kind == "html" for b in message.blocks):
            for part in message.email.walk():
                if part.get_content_type() != "text/html":
                    continue
                try:
                    raw = part.get_content()
                except INPUT_ERRORS:
                    continue
                if "Infringement" not in raw:
                    continue
                if "&lt;" in raw:
                    raw = html.unescape(_HTML_BREAKS.sub("\n", raw))
                if _START.search(raw):
                    yield "HTML part", raw

    def _notice(self, chunk: str, message: Message) -> tuple[Incident | None, str | None]:
        note = None
        try:
            root = ET.fromstring(chunk)
        except ET.ParseError as e:
            # References to entities of a DOCTYPE we never pass on are dropped, never expanded.
            cleaned = _ENTITY_REF.sub("", chunk)
            if cleaned == chunk:
                return None, f"malformed ACNS XML ({e})"
            try:
                root = ET.fromstring(cleaned)
            except ET.ParseError:
                return None, f"malformed ACNS XML ({e})"
            note = "undeclared entity references removed"
        source = _child(root, "Source")
        raw_ip = _text(_child(source, "IP_Address"))
        if not raw_ip:
            return None, "ACNS notice without Source/IP_Address"
        try:
            ip = ip_address(raw_ip)
        except ValueError:
            return None, f"ACNS notice with an invalid IP address {raw_ip[:60]!r}"
        port = None
        try:
            port = int(_text(_child(source, "Port")))
            if not 0 <= port <= 65535:
                port = None
        except ValueError:
            pass
        content = _child(root, "Content")
        items = _children(content, "Item")
        candidates = [_text(_child(source, "TimeStamp"))]
        candidates += [_text(_child(item, "TimeStamp")) for item in items]
        candidates.append(_text(_child(_child(root, "Complainant"), "TimeStamp")))
        when, zone, problem = self._time(candidates, message)
        if note:
            problem = f"{problem}; {note}" if problem else note
        titles = []
        for item in items:
            title, fname = _text(_child(item, "Title")), _text(_child(item, "FileName"))
            titles.append(" / ".join(x for x in (title, fname) if x))
        evidence = "; ".join(t for t in titles if t)[:2000]
        extra = {}
        case_id = _text(_child(_child(root, "Case"), "ID"))
        if case_id:
            extra["case_id"] = case_id[:200]
        return Incident(ip, "copyright", when, self.name, zone, port, evidence, extra), problem

    def _time(self, candidates: list[str], message: Message) -> tuple[datetime | None, str, str | None]:
        """The first usable stamp: Source, then Content items, then Complainant."""
        bad = None
        for value in candidates:
            if not value:
                continue
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                bad = bad or value
                continue
            # xs:dateTime: an offset is explicit; without one the format's UTC (ACNS senders write UTC),
            # ahead of the report's Date and the configured zone (abuso.zones, the one order).
            found = resolve(dt, format_utc=True)
            if found is None:  # year 1 or 9999 pushed over the edge by the offset
                bad = bad or value
                continue
            return found[0], found[1], None
        problem = f"unreadable TimeStamp {bad[:60]!r}" if bad else "no TimeStamp"
        if self.options.get("date_fallback") and message.date is not None:
            return message.date, "date-header", problem + "; Date header used"
        return None, "none", problem


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    m = re.match(rb"\s*<\?xml[^>]*encoding=[\"']([\w.-]+)", data[:200])
    for enc in ((m.group(1).decode("ascii"),) if m else ()) + ("utf-8",):
        try:
            return data.decode(enc)
        except (LookupError, ValueError):  # ValueError: undecodable, or a NUL in the charset name
            continue
    return data.decode("latin-1")
