"""The stdlib email parser behind caps, so that no message can cost unbounded time or memory.

The stdlib ``email`` package is tolerant, not hostile-proof. Measured on Python 3.11: its header
value parser is quadratic or worse (16 KB of ``"`` in ``From:`` takes 6 s, a 100 KB ``Content-Type``
of ``1.2.3.4`` words 20 s, 1 MB of RFC 2047 encoded words in ``Subject:`` passed 17 GB); every
header look-up scans all of a message's headers (100,000 ``Received:`` took 24 s); the feed parser
spends about a microsecond a line (30 MB of empty lines: 31 s, 480 MB) and recurses once per
nesting level until RecursionError. So, before the stdlib parses a header or a line:

* the bytes are cut after :data:`MAX_LINES` lines (:func:`cap_lines`);
* every header section -- the message's and each part's, at any depth -- keeps at most
  :data:`MAX_FIELD_CHARS` per field, :data:`MAX_SAME_FIELDS` fields of one name (the first of a
  few that reading the message needs are always kept), :data:`MAX_FIELDS` fields and
  :data:`MAX_SECTION_CHARS` in all;
* a part nested deeper than :data:`MAX_MIME_DEPTH` is read as plain text (what it holds still
  reaches the parsers, as text);
* header values reach the stdlib's structured parsers only when at most :data:`STRUCTURED_CHARS`
  long; longer ones, and the MIME parameter headers (which the stdlib reads with its string
  functions anyway), become text in one linear pass (:class:`TextHeader`).

Whatever is cut is reported as a problem; the original bytes are never changed.
"""

from __future__ import annotations

import binascii
import re
from email import policy as _policy
from email.feedparser import FeedParser
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage

#: A message is read up to this many lines (the feed parser costs ~1 µs a line; 32 MB of base64,
#: the default max_bytes, has ~440,000).
MAX_LINES = 500_000
#: Characters kept of one header field (folded lines included).
MAX_FIELD_CHARS = 32 * 1024
#: Fields of one name kept in one header section (RFC 5321 takes 100 Received hops for a loop).
MAX_SAME_FIELDS = 100
#: Fields, and characters, kept in one header section.
MAX_FIELDS = 1000
MAX_SECTION_CHARS = 256 * 1024
#: MIME nesting (multipart in multipart, message in message) read as structure; deeper is text.
MAX_MIME_DEPTH = 32
#: MIME parts read (each costs the feed parser ~50 µs; 200 ARF reports take 1,400); the rest is not parsed.
MAX_MIME_PARTS = 2000
#: Longer header values are not given to the stdlib's structured (address, date ...) parsers.
STRUCTURED_CHARS = 998
#: Problems recorded per message (a flood of cut parts is summarised).
MAX_PROBLEMS = 20

#: The first field of each of these names survives the count caps: reading the message needs it.
_ESSENTIAL = frozenset({"content-type", "content-transfer-encoding", "content-disposition", "mime-version",
                        "from", "subject", "date", "message-id"})
#: Read by the stdlib with its string functions (get_param, get_content_type, get_payload).
_MIME_PARAM = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})


def cap_lines(raw: bytes, limit: int = MAX_LINES) -> tuple[bytes, str | None]:
    """``raw`` cut after ``limit`` lines (CR, LF or CRLF, as the stdlib splits them), and what was cut."""
    if len(raw) <= limit:
        return raw, None
    lines = _count_lines(raw)
    if lines <= limit:
        return raw, None
    step = 1 << 20
    seen = pos = 0
    while pos < len(raw):  # find the megabyte that holds the limit-th line end, then the end itself
        chunk = raw[pos:pos + step]
        n = _count_lines(chunk)
        if seen + n >= limit:
            break
        seen += n
        pos += step
    m = re.compile(rb"(?:[^\r\n]*(?:\r\n|\r|\n)){%d}" % (limit - seen)).match(raw, pos)
    if m:
        pos = m.end()
    return raw[:pos], f"message has {lines:,} lines; read up to line {limit:,} ({len(raw) - pos:,} bytes not read)"


def _count_lines(data: bytes) -> int:
    cr = data.count(b"\r")
    return data.count(b"\n") + (cr - data.count(b"\r\n") if cr else 0)


# --- header sections -----------------------------------------------------------------


def cap_section(lines: list[str], where: str) -> tuple[list[str], list[str]]:
    """A header section's lines within the caps, and what was cut (``where``: 'message', 'part at depth 2')."""
    if len(lines) <= 64 and sum(map(len, lines)) <= MAX_FIELD_CHARS:
        return lines, []  # the common case, at no cost
    kept: list[str] = []
    problems: list[str] = []
    counts: dict[str, int] = {}
    dropped: dict[str, int] = {}
    over = 0  # fields dropped for the section's field or character cap
    chars = fields = 0
    i, n = 0, len(lines)
    while i < n:
        # One field: a line, then its continuation lines (a section may also start with those).
        j = i + 1
        while j < n and lines[j][:1] in (" ", "\t"):
            j += 1
        first = lines[i]
        name = "" if first[:1] in (" ", "\t") else first.partition(":")[0][:80].strip().lower()
        seen = counts.get(name, 0)
        counts[name] = seen + 1
        if seen >= MAX_SAME_FIELDS or fields >= MAX_FIELDS or chars >= MAX_SECTION_CHARS:
            if not (seen == 0 and name in _ESSENTIAL):
                if seen >= MAX_SAME_FIELDS:
                    dropped[name] = dropped.get(name, 0) + 1
                else:
                    over += 1
                i = j
                continue
        size = 0
        for k in range(i, j):
            size += len(lines[k])
            if size > MAX_FIELD_CHARS:  # cut inside line k
                cut = lines[k][: len(lines[k]) - (size - MAX_FIELD_CHARS) - 1].rstrip("\r\n")
                space = cut.rfind(" ", len(cut) - 1024)  # at a word's end: no encoded word cut in two
                if space > 0:
                    cut = cut[:space]
                kept.extend(lines[i:k])
                kept.append(cut + "\n")
                total = size + sum(len(lines[m]) for m in range(k + 1, j))
                problems.append(f"{where}: header {first.partition(':')[0][:40]!r} is {total:,} characters;"
                                f" cut to {MAX_FIELD_CHARS:,}")
                size = MAX_FIELD_CHARS
                break
        else:
            kept.extend(lines[i:j])
        chars += size
        fields += 1
        i = j
    for name, k in dropped.items():
        problems.append(f"{where}: {k:,} {name!r} header fields dropped (more than {MAX_SAME_FIELDS} of one name)")
    if over:
        problems.append(f"{where}: {over:,} header fields dropped (more than {MAX_FIELDS} fields or "
                        f"{MAX_SECTION_CHARS // 1024} KB in one header section)")
    return kept, problems


class _CappedFeedParser(FeedParser):
    """The stdlib feed parser, with every header section capped before it is parsed and
    MIME nesting beyond MAX_MIME_DEPTH read as text.

    It hooks ``_parse_headers``, the one place the stdlib turns a section's lines into
    headers (for the message, each part, each attached message, at any depth).
    """

    def __init__(self, policy: _policy.Policy) -> None:
        super().__init__(policy=policy)
        self.problems: list[str] = []
        self.parts = 0
        self.root: EmailMessage | None = None

    def _new_message(self) -> None:
        self.parts += 1
        if self.parts > MAX_MIME_PARTS:
            raise _TooManyParts()
        super()._new_message()  # type: ignore[misc]
        if self.root is None:
            self.root = self._cur  # type: ignore[attr-defined]

    def _parse_headers(self, lines: list[str]) -> None:
        depth = len(self._msgstack)  # type: ignore[attr-defined]
        where = "message" if depth <= 1 else f"part at MIME depth {depth - 1}"
        lines, problems = cap_section(lines, where)
        self.problems.extend(problems)
        super()._parse_headers(lines)  # type: ignore[misc]
        cur = self._cur  # type: ignore[attr-defined]
        if depth > MAX_MIME_DEPTH and cur.get_content_maintype() in ("multipart", "message"):
            self.problems.append(f"MIME parts nested deeper than {MAX_MIME_DEPTH} levels; "
                                 f"the rest is read as text")
            del cur["Content-Type"]
            cur.set_raw("Content-Type", "text/plain")


class _TooManyParts(Exception):
    pass


def parse_bytes(raw: bytes, problems: list[str] | None = None) -> EmailMessage:
    """Parse one message with the caps above; what was cut is appended to ``problems``.

    The message's own header section is capped before the feed parser splits it into
    lines, and a single-part message's body is handed over whole: the feed parser would
    spend a microsecond on each of its lines to build the same string.
    """
    text = raw.decode("ascii", "surrogateescape")
    found: list[str] = []
    head, body = _split_head(text)
    if head > MAX_FIELD_CHARS:
        lines, found = cap_section(_LINE.findall(text, 0, head), "message")
        capped = "".join(lines)
        text, body, head = capped + text[head:], body - head + len(capped), len(capped)
    msg = None
    if len(text) - body > 65536:
        parser = _CappedFeedParser(POLICY)
        parser.feed(text[:head])
        msg = parser.close()
        if msg.get_content_maintype() in ("multipart", "message"):
            msg = None  # structure to parse: the whole way
        else:
            msg.set_payload(text[body:])
    if msg is None:
        parser = _CappedFeedParser(POLICY)
        try:
            for pos in range(0, len(text), 65536):
                parser.feed(text[pos:pos + 65536])
            msg = parser.close()
        except _TooManyParts:  # keep what was read: the parts so far, in their tree
            msg = parser.root
            parser.problems.append(f"more than {MAX_MIME_PARTS} MIME parts; the rest of the message was not read")
    found += parser.problems
    if problems is not None and found:
        seen = dict.fromkeys(found)  # in order, once each
        kept = list(seen)[:MAX_PROBLEMS]
        if len(seen) > len(kept):
            kept.append(f"... and {len(seen) - len(kept):,} more header problems")
        problems.extend(kept)
    # POLICY makes EmailMessages (the stubs cannot follow a policy's factory); the root is made
    # by the first part, before any part can be one too many.
    assert isinstance(msg, EmailMessage)
    return msg


#: The feed parser's test for a header line (email.feedparser.headerRE), and a line end followed
#: by a line that fails it: where the header section ends.
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")
_END_OF_HEAD = re.compile(r"(?:\r\n|\r(?!\n)|\n)(?!From |[\041-\071\073-\176]*:|[\t ])")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _split_head(text: str) -> tuple[int, int]:
    """Where the header section ends and the body starts, by the feed parser's rules.

    The headers end at the first line that is not a header line; a blank line there is
    the separator, any other line is the body's first (the stdlib reads it so too).
    """
    if _HEADER_LINE.match(text):
        m = _END_OF_HEAD.search(text)
        if m is None:
            return len(text), len(text)
        pos = m.end()
    else:
        pos = 0
    if text.startswith("\r\n", pos):
        return pos, pos + 2
    if text[pos:pos + 1] in ("\r", "\n"):
        return pos, pos + 1
    return pos, pos


# --- header values -----------------------------------------------------------------------


class TextHeader(str):
    """A header value as plain text: unfolded, RFC 2047 words decoded, in one linear pass.

    Stands in for the stdlib's header objects where those cost too much; the stdlib
    functions abuso uses (``get_param``, ``get_content_type``, ``get_filename``,
    ``get_payload``) only read a header as a string.
    """

    name: str
    defects: tuple = ()

    def __new__(cls, name: str, value: str, words: bool = True) -> TextHeader:
        text = _LINE_BREAK.sub("", value)
        if words and "=?" in text:
            text = decode_words(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # 8-bit bytes as surrogates: replaced, as the stdlib does
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self = str.__new__(cls, text)
        self.name = name
        return self

    def fold(self, *, policy: _policy.EmailPolicy) -> str:
        registry = policy.header_factory  # an EmailPolicy's HeaderRegistry (the stubs say only "callable")
        assert isinstance(registry, HeaderRegistry)
        return registry["x-unstructured"](self.name, str(self)).fold(policy=policy)


_LINE_BREAK = re.compile(r"\r|\n")
_WORD = re.compile(r"=\?([^?\s]{1,64})\?([QqBb])\?([^?\s]*)\?=")


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded (white space between two of them dropped), in linear time."""
    out: list[str] = []
    pos = 0
    prev_end = -1
    for m in _WORD.finditer(text):
        gap = text[pos:m.start()]
        if not (pos == prev_end and (not gap or gap.isspace())):
            out.append(gap)
        word = _decode_word(m.group(1), m.group(2), m.group(3))
        out.append(m.group(0) if word is None else word)
        pos = prev_end = m.end()
    out.append(text[pos:])
    return "".join(out)


def _decode_word(charset: str, encoding: str, payload: str) -> str | None:
    data = payload.encode("utf-8", "surrogateescape")
    try:
        if encoding in "Qq":
            raw = binascii.a2b_qp(data, header=True)
        else:
            raw = binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
    charset = charset.partition("*")[0]  # RFC 2231 language suffix
    try:
        return raw.decode(charset, "replace")
    except (LookupError, ValueError):
        return raw.decode("utf-8", "replace")


class _CappedPolicy(_policy.EmailPolicy):
    """policy.default, with parsed header objects memoized and long values kept from its parsers.

    The stdlib re-parses a header (Content-Type above all) on every access, and the parser
    itself asks for each part's Content-Type many times: that made parsing 5x slower than it
    needs to be. Header objects are immutable str subclasses, so sharing one between accesses
    is safe. Only short values are memoized (the cache stays small).
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if hasattr(value, "name"):
            return value
        if len(value) > STRUCTURED_CHARS:
            return TextHeader(name, value, words=name.lower() not in _MIME_PARAM)
        key = (name, value)
        header = _HEADER_CACHE.get(key)
        if header is None:
            if len(_HEADER_CACHE) >= 8192:
                _HEADER_CACHE.clear()
            if name.lower() in _MIME_PARAM:  # ~2 µs instead of 0.2-20 ms a part, and never super-linear
                header = TextHeader(name, value, words=False)
            else:
                header = super().header_fetch_parse(name, value)
            _HEADER_CACHE[key] = header
        return header


_HEADER_CACHE: dict[tuple[str, str], str] = {}
POLICY = _CappedPolicy()
