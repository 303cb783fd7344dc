"""Turn one raw message into text blocks with provenance.

Every parser reads the same normalized view: decoded text (all charsets and
transfer encodings), HTML turned into lines, attached and forwarded messages
unwrapped *with their headers*, quoting removed and defanged addresses
re-fanged. The original bytes are always kept in ``Message.raw``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.message import Message as _StdMessage
from email.utils import parsedate_to_datetime

from .errors import INPUT_ERRORS
from .htmltext import _TAGS, html_to_text
from .lazy import lazy_compile
from .mimeparse import cap_lines, parse_bytes  # parse_bytes is used from here by parsers and processors

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from .model import Verdict

#: A part larger than this is not decoded into text (it still stays in ``raw``).
MAX_PART_BYTES = 8 * 1024 * 1024
#: How deep attached-in-attached messages are followed (hostile nesting).
MAX_DEPTH = 8
#: At most this many MIME parts are looked at (zip-bomb style part floods).
MAX_PARTS = 500
#: Characters of text read from all parts of one message together (the log parser reads 2,000,000).
MAX_TEXT_CHARS = 4_000_000


@dataclass
class Block:
    """A run of text and where it came from.

    ``depth`` 0 is the report itself; 1 is a message attached to or forwarded in
    it, and so on. ``kind`` is 'body', 'html', 'headers' (the header lines of an
    embedded message) or 'forward' (inline-forwarded text). ``headers`` is the
    embedded message this block belongs to (None at depth 0).
    """

    text: str
    part: str
    content_type: str
    depth: int = 0
    kind: str = "body"
    headers: _StdMessage | None = None


@dataclass
class Attachment:
    """A non-text part (or a named data file) kept for format parsers (CSV, zip, JSON, XML)."""

    filename: str | None
    content_type: str
    data: bytes
    part: str
    depth: int = 0


@dataclass
class Message:
    """A parsed message with what every parser reads from it."""

    raw: bytes
    email: EmailMessage
    message_id: str | None = None
    subject: str | None = None
    sender: str | None = None
    date: datetime | None = None
    #: The UTC offset the Date header was written in (for zone 'date-header').
    date_offset: timedelta | None = None
    #: When our own MTA received it (date of the topmost Received header), if known.
    arrival: datetime | None = None
    blocks: list[Block] = field(default_factory=list)
    #: Attached (message/rfc822, also nameless) and inline-forwarded messages, with headers.
    embedded: list[_StdMessage] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: Things the normalizer noticed but could not do (bad charset, oversize part).
    problems: list[str] = field(default_factory=list)
    #: Verdicts of the parsers that already ran on this message, in chain order (the pipeline
    #: fills it): how a parser defers to an earlier one's authority (parsers/base.py).
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All text blocks, in order, one string (what a human reads)."""
        return "\n".join(b.text for b in self.blocks)

    def header(self, name: str) -> str | None:
        return header_str(self.email, name)


def header_str(msg: _StdMessage, name: str) -> str | None:
    """A header as text, tolerant of malformed encodings (never raises)."""
    try:
        value = msg.get(name)
    except INPUT_ERRORS:
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()] if hasattr(msg, "raw_items") else []
        value = raw[0] if raw else None
    if value is None:
        return None
    return str(value).strip()


def header_all(msg: _StdMessage, name: str) -> list[str]:
    try:
        values = msg.get_all(name) or []
    except INPUT_ERRORS:
        values = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
    return [str(v) for v in values]


def parse_date(value: str | None) -> tuple[datetime | None, timedelta | None]:
    """RFC 2822 Date -> (aware UTC datetime, offset it was written in)."""
    if not value:
        return None, None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, None
    if dt is None:
        return None, None
    if dt.tzinfo is None:  # "-0000": UTC, offset unknown
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc), dt.utcoffset()
    except (OverflowError, ValueError):
        return None, None


_BOUNDARY = lazy_compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.I)


def split_broken_multipart(part: _StdMessage, problems: list[str] | None = None) -> list[_StdMessage]:
    """The sub-parts of a multipart whose boundary the email package could not use.

    fail2ban's X-ARF action writes ``boundary=Abuse<time>@<host>;`` unquoted; the
    ``@`` ends the parameter for the email package, which then finds no part
    at all. The boundary is taken from the raw header as written instead.
    """
    try:
        raw_ct = next((str(v) for k, v in part.raw_items() if k.lower() == "content-type"), "")
    except INPUT_ERRORS:
        return []
    m = _BOUNDARY.search(raw_ct)
    body = part.get_payload()
    if not m or not isinstance(body, str):
        return []
    boundary = m.group(1) or m.group(2)
    marks = list(re.finditer(rf"(?m)^--{re.escape(boundary)}(--)?[ \t]*\r?$", body))
    if not marks:
        return []
    subs: list[_StdMessage] = []
    for here, after in zip(marks, marks[1:] + [None], strict=True):
        if here.group(1):  # the closing delimiter: what follows is epilogue
            break
        chunk = body[here.end(): after.start() if after else len(body)].lstrip("\r\n")
        if chunk.strip() and len(subs) < MAX_PARTS:
            subs.append(parse_bytes(chunk.encode("utf-8", "surrogateescape"), problems))
    return subs


def _repair_charsets(msg: _StdMessage, problems: list[str]) -> None:
    """A charset name with control characters (a NUL) makes the stdlib's own get_payload()
    raise in every parser that asks; such a name is replaced by 'unknown-8bit' up front."""
    for part in msg.walk():
        try:
            cs = part.get_param("charset")
        except INPUT_ERRORS:
            continue
        if isinstance(cs, tuple):  # RFC 2231 form
            cs = cs[2] if len(cs) == 3 else None
        if isinstance(cs, str) and (len(cs) > 64 or any(ord(c) < 33 or ord(c) > 126 for c in cs)):
            problems.append(f"unknown charset {cs[:64]!r} (not a charset name); read as unknown-8bit")
            try:
                part.set_param("charset", "unknown-8bit")
            except INPUT_ERRORS:
                pass


def normalize(raw: bytes) -> Message:
    """Normalize one raw message. Never raises for bad mail: problems are recorded."""
    problems: list[str] = []
    capped, cut = cap_lines(raw)
    if cut:
        problems.append(cut)
    msg = parse_bytes(capped, problems)
    date, offset = parse_date(header_str(msg, "Date"))
    out = Message(
        raw=raw,
        email=msg,
        message_id=header_str(msg, "Message-ID"),
        subject=header_str(msg, "Subject"),
        sender=header_str(msg, "From"),
        date=date,
        date_offset=offset,
        problems=problems,
    )
    if b"\x00" in raw or b"%00" in raw:  # the only charset names that make the stdlib raise
        _repair_charsets(msg, out.problems)
    received = header_all(msg, "Received")
    if received:
        out.arrival = parse_date(received[0].rpartition(";")[2])[0]
    _Walker(out).walk(msg, "1", 0, None)
    return out


# --- text decoding ---------------------------------------------------------

_CHARSET_ALIASES = {"unicode-1-1-utf-7": "utf-7", "x-unknown": "latin-1", "unknown-8bit": "latin-1",
                    "ansi_x3.4-1968": "ascii", "iso-8859-8-i": "iso-8859-8", "ks_c_5601-1987": "cp949",
                    "gb2312": "gb18030", "gbk": "gb18030", "x-sjis": "shift_jis", "windows-874": "cp874"}


def decode_text(part: _StdMessage) -> tuple[str, str | None]:
    """The text of a part, and a problem description if the charset was wrong."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):  # None: a multipart (the stubs allow more than the stdlib returns)
        text = part.get_payload()
        return (text if isinstance(text, str) else ""), None
    if len(payload) > MAX_PART_BYTES:
        payload = payload[:MAX_PART_BYTES]
    charset = (part.get_content_charset() or "").lower() or None
    charset = _CHARSET_ALIASES.get(charset, charset) if charset else None
    problem = None
    for cs in ([charset] if charset else []) + ["utf-8"]:
        try:
            return payload.decode(cs), problem
        except UnicodeDecodeError:
            if cs == charset:
                problem = f"text not valid in declared charset {charset!r}"
        except (LookupError, ValueError):  # ValueError: a NUL or the like in the charset name
            problem = f"unknown charset {charset!r}"
    # Last resort: cp1252 decodes most western mail; undefined bytes are replaced.
    return payload.decode("cp1252", errors="replace"), problem


# --- quoting, re-wrapping, defanging ----------------------------------------

_QUOTE = lazy_compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_DEFANG = lazy_compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\[:\]|\[@\]|\(at\)|\[at\]|\bhxxp(s?)\b|\bfxp\b", re.I)


def _fang(m: re.Match[str]) -> str:
    token = m.group(0).lower()
    if token.startswith("hxxp"):
        return "http" + (m.group(1) or "")
    if token == "fxp":
        return "ftp"
    if token == "[:]":
        return ":"
    if "at" in token or "@" in token:
        return "@"
    return "."

_HEADER_NAMES = (r"(?:Received|From|To|Date|Subject|Message-ID|Return-Path|Reply-To|X-[\w-]+|"
                 r"Content-[\w-]+|MIME-Version|Delivered-To|Authentication-Results|DKIM-Signature|"
                 r"ARC-[\w-]+|Received-SPF):")
_HEADER_START = lazy_compile(_HEADER_NAMES, re.I)
# Led by a literal newline, so that re skips through text without one in C (6x faster than ^ with re.M).
_HEADER_AFTER_NL = lazy_compile(r"\n(?i:" + _HEADER_NAMES + ")")
#: Lines joined into one header at most (a header wrapped over more is text that follows one).
MAX_JOINED = 64


def unquote(text: str) -> str:
    """Remove '>' quoting (only '>', never other leading punctuation such as '<html>')."""
    if ">" not in text:
        return text
    return _QUOTE.sub("", text)


def refang(text: str) -> str:
    """One pass over the text for every defanging style (``[.]``, ``(dot)``, ``hxxp`` ...).

    Most text holds none: substring tests say so at memory speed, where the case-insensitive
    alternation costs ~100 ns a character.
    """
    if len(text) > 4096:
        low = text.lower()
        if not any(token in low for token in _DEFANG_TOKENS):
            return text
    return _DEFANG.sub(_fang, text)


_DEFANG_TOKENS = ("[.]", "(.)", "{.}", "[dot]", "(dot)", "[:]", "[@]", "(at)", "[at]", "hxxp", "fxp")


def rejoin_headers(text: str) -> str:
    """Re-join header lines that quoting or a mail client broke without indentation.

    A line that continues a ``Received:``-style header but lost its leading
    white space is joined back when it starts with a lower-case word typical of
    a header continuation (by, with, id, for, via, from, (...)) or with a date part;
    inside a Received header, any line that is not a new header is joined.
    Only the lines after a header line are looked at, one by one; the rest of the
    text is copied as it is (a Python loop over every line of a 10 MB log cost a second).
    """
    starts = [0] if _HEADER_START.match(text) else []
    starts += [m.start() + 1 for m in _HEADER_AFTER_NL.finditer(text)]
    if not starts:
        return text
    out = [text[:starts[0]]]
    for start, end in zip(starts, starts[1:] + [len(text)], strict=True):
        out.append(_rejoin_one(text[start:end]))
    return "".join(out)


def _rejoin_one(seg: str) -> str:
    """A header line and what follows it up to the next header line, its broken continuations joined."""
    nl = seg.find("\n")
    if nl < 0:
        return seg
    in_received = bool(_RECEIVED_START.match(seg))
    acc = [seg[:nl]]
    pos = nl + 1
    while True:
        nl = seg.find("\n", pos)
        ln = seg[pos:] if nl < 0 else seg[pos:nl]
        # A Received header is free-form up to its date: any wrapped piece of it ("ESMTP id 4A;",
        # "07:58:12 -0500") continues it until the next "Name:" line or a blank line.
        if len(acc) > MAX_JOINED or not (ln and (ln[0] in " \t" or _CONTINUATION.match(ln)
                                                 or (in_received and ln.strip() and not _HEADER_LINE.match(ln)))):
            return "".join(acc) + "\n" + seg[pos:]
        acc[-1] = acc[-1].rstrip()
        acc.append(" " + ln.strip())
        if nl < 0:
            return "".join(acc)
        pos = nl + 1


_RECEIVED_START = lazy_compile(r"^Received:[ \t]*(?:from|by|\()", re.I)
_CONTINUATION = lazy_compile(
    r"^(?:(?:by|with|id|for|via|from)\b|\(|\[|;|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),|\d{1,2} \w{3} \d{4}\b)", re.I
)

# --- inline forwards ----------------------------------------------------------

_FORWARD_MARK = lazy_compile(
    r"^[ \t]*(?:-{2,}\s*(?:Forwarded message|Original Message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Ursprüngliche Nachricht|Original-Nachricht)\s*-{2,}|Begin forwarded message:|"
    r"-{3,}\s*Forwarded by .*|Offending message:|-{2,} ?Original message ?-{2,})[ \t]*$",
    re.I | re.M,
)
_HEADER_LINE = lazy_compile(r"^([A-Za-z][A-Za-z0-9-]{0,40}):[ \t]?(.*)$")


def split_forward(text: str) -> tuple[str, str] | None:
    """(text before, forwarded text) at the first inline-forward marker, or None."""
    m = _FORWARD_MARK.search(text)
    if not m:
        return None
    return text[: m.start()], text[m.end():].lstrip("\n")


def looks_like_headers(text: str) -> bool:
    """Does this text start with at least two RFC 822 header lines?"""
    n = 0
    for ln in text.lstrip("\n").split("\n")[:6]:
        if not ln.strip():
            break
        if _HEADER_LINE.match(ln) or ln[:1] in " \t":
            n += 1 if not ln[:1].isspace() else 0
        else:
            return False
    return n >= 2


def _undo_encoded_message(part: _StdMessage, inner: _StdMessage, problems: list[str]) -> _StdMessage:
    """A message/rfc822 part sent base64 or quoted-printable (RFC 2046 forbids it; forwarders do it).

    The email package does not decode message/* parts: it parsed the encoded
    text as a message without headers. Decode it and parse the real one.
    """
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte not in ("base64", "quoted-printable") or inner.keys():
        return inner
    body = inner.get_payload()
    if not isinstance(body, str):
        return inner
    import base64
    import binascii
    import quopri

    data = body.encode("ascii", "ignore")
    try:
        raw = base64.b64decode(b"".join(data.split())) if cte == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return inner
    return parse_bytes(raw, problems) if looks_like_headers(raw[:2048].decode("latin-1")) else inner


#: Part types a forwarding client gives an attached message it re-wraps.
_OPAQUE_TYPES = frozenset({"text/plain", "application/octet-stream", "application/unknown", "application/x-unknown"})
_FEEDBACK_FIELD = lazy_compile(r"^feedback-type[ \t]*:", re.I | re.M)
_MAIL_HEADER = lazy_compile(r"^(?:received|from|subject|message-id|mime-version|content-type|date)[ \t]*:", re.I | re.M)


def _only_feedback_fields(head: str) -> bool:
    """An ARF feedback part re-wrapped as a file: fields, not a message (the arf parser reads it)."""
    first = head.replace("\r\n", "\n").lstrip("\n").split("\n\n", 1)[0]
    return bool(_FEEDBACK_FIELD.search(first)) and not _MAIL_HEADER.search(first)


def _text_blocks(text: str) -> str:
    return rejoin_headers(refang(unquote(text.replace("\r\n", "\n").replace("\r", "\n"))))


class _Walker:
    def __init__(self, out: Message) -> None:
        self.out = out
        self.parts = 0
        self.text_room = MAX_TEXT_CHARS

    def budget(self, text: str, path: str) -> str:
        """The part's text within what is left of MAX_TEXT_CHARS (each later pass over it costs)."""
        if len(text) > self.text_room:
            self.out.problems.append(f"part {path}: text cut at {self.text_room:,} of {len(text):,} characters "
                                     f"(at most {MAX_TEXT_CHARS:,} are read per message)")
            text = text[:self.text_room]
        self.text_room -= len(text)
        return text

    def walk(self, part: _StdMessage, path: str, depth: int, owner: _StdMessage | None) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            if self.parts == MAX_PARTS + 1:
                self.out.problems.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
            return
        try:
            ctype = part.get_content_type()
        except INPUT_ERRORS:
            ctype = "text/plain"
        if ctype == "multipart/alternative":
            chosen = _best_alternative(part)
            if chosen is not None:
                index, sub = chosen
                self.walk(sub, f"{path}.{index}", depth, owner)
                return
        if part.is_multipart() and not ctype.startswith("message/"):
            for i, sub in enumerate(part.get_payload() or [], 1):
                if isinstance(sub, _StdMessage):
                    self.walk(sub, f"{path}.{i}", depth, owner)
            return
        if ctype.startswith("multipart/"):  # declared multipart, but the email package found no part
            subs = split_broken_multipart(part, self.out.problems)
            if subs:
                self.out.problems.append(f"part {path}: boundary unusable as declared; split at its raw value")
                for i, sub in enumerate(subs, 1):
                    self.walk(sub, f"{path}.{i}", depth, owner)
                return
        if ctype in ("message/rfc822", "message/global") or (ctype.startswith("message/") and part.is_multipart()):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, _StdMessage):
                self.embed(_undo_encoded_message(part, inner, self.out.problems), path, depth + 1)
            return
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            text, _ = decode_text(part)
            self.embed(parse_bytes(text.encode("utf-8", "surrogateescape"), self.out.problems), path, depth + 1,
                       headers_only=True)
            return
        filename = None
        try:
            filename = part.get_filename()
        except INPUT_ERRORS:
            pass
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if ctype in ("text/plain", "text/html", "text/enriched") and not (
            disposition == "attachment" and filename and not filename.lower().endswith((".txt", ".htm", ".html"))
        ):
            text, problem = decode_text(part)
            if problem:
                self.out.problems.append(f"part {path}: {problem}")
            text = self.budget(text, path)
            if ctype == "text/html":
                self.add_text(html_to_text(text), path, ctype, depth, owner, "html")
            else:
                self.add_text(text, path, ctype, depth, owner, "body")
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):  # None: a multipart (the stubs allow more than the stdlib returns)
            payload = part.get_payload()
            data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
        self.out.attachments.append(Attachment(filename, ctype, data, path, depth))
        # A message attached as an opaque file (application/octet-stream, *.eml; a forwarding client's
        # nameless "noname" or "ATT00001") is content too: recognised by what it holds, not by its name.
        if ctype in _OPAQUE_TYPES or (filename or "").lower().endswith(".eml"):
            head = data[:2048].decode("latin-1")
            if looks_like_headers(head) and not _only_feedback_fields(head):
                if depth < MAX_DEPTH:
                    self.embed(parse_bytes(data, self.out.problems), path, depth + 1)
                else:
                    self.out.problems.append(f"part {path}: messages nested deeper than {MAX_DEPTH}; not followed")

    def embed(self, inner: _StdMessage, path: str, depth: int, headers_only: bool = False) -> None:
        if depth > MAX_DEPTH:
            self.out.problems.append(f"part {path}: messages nested deeper than {MAX_DEPTH}; not followed")
            return
        self.out.embedded.append(inner)
        try:
            items = inner.raw_items() if hasattr(inner, "raw_items") else inner.items()
            head = "\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in items)
        except INPUT_ERRORS:
            head = ""
        if head:
            self.out.blocks.append(Block(refang(head), path, "text/rfc822-headers", depth, "headers", inner))
        if not headers_only:
            self.walk(inner, path, depth, inner)

    def add_text(self, text: str, path: str, ctype: str, depth: int, owner: _StdMessage | None, kind: str) -> None:
        if kind != "html" and _looks_html(text):
            text, kind = html_to_text(text), "html"
        text = _text_blocks(text)
        fwd = split_forward(text) if depth < MAX_DEPTH else None
        if fwd is None:
            self.out.blocks.append(Block(text, path, ctype, depth, kind, owner))
            return
        before, after = fwd
        if before.strip():
            self.out.blocks.append(Block(before, path, ctype, depth, kind, owner))
        if looks_like_headers(after):
            inner = parse_bytes(after.encode("utf-8", "surrogateescape"), self.out.problems)
            self.embed_forward(inner, after, path, depth + 1)
        else:
            self.add_text(after, path, ctype, depth + 1, owner, "forward")

    def embed_forward(self, inner: _StdMessage, text: str, path: str, depth: int) -> None:
        self.out.embedded.append(inner)
        head, _, body = text.partition("\n\n")
        self.out.blocks.append(Block(head, path, "text/rfc822-headers", depth, "headers", inner))
        if body.strip():
            self.add_text(body, path, "text/plain", depth, inner, "forward")


def _best_alternative(part: _StdMessage) -> tuple[int, _StdMessage] | None:
    """The one rendition of a multipart/alternative to read (never both: that doubles evidence).

    Plain text wins unless it is a stub ("view this mail in HTML"): then the HTML.
    """
    subs = [s for s in (part.get_payload() or []) if isinstance(s, _StdMessage)]
    plain = next(((i, s) for i, s in enumerate(subs, 1) if s.get_content_type() == "text/plain"), None)
    html = next(((i, s) for i, s in enumerate(subs, 1) if s.get_content_type() == "text/html"), None)
    if plain is None or html is None or len(subs) != 2:
        return None
    plain_len = len(" ".join(decode_text(plain[1])[0].split()))
    # A rough measure is enough to tell a stub from a rendition; parsing the HTML here cost 5 ms a message.
    html_len = len(" ".join(_TAGS.sub(" ", _INVISIBLE.sub("", decode_text(html[1])[0])).split()))
    return plain if plain_len >= 0.4 * html_len else html


_INVISIBLE = lazy_compile(r"<(script|style|head)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_HTML_SNIFF = lazy_compile(r"<(?:html|body|table|div|p|br)\b", re.I)


def _looks_html(text: str) -> bool:
    """A text/plain part that is really HTML (it starts with a tag; forwarded spam often is)."""
    head = text.lstrip()[:4096]
    return head.startswith("<") and bool(_HTML_SNIFF.match(head)) and "</" in text
