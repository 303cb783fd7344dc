"""Who may be answered, and in words why not (RFC 3834, mail loops, robot senders).

Hostile mail arrives unattended, so the rule is to answer less rather than more.
:meth:`Policy.recipient` looks at the headers only, never at state, and either
returns the one plain address to answer or raises :class:`Skip` with a reason
a person can read and a short rule name for programs. In this order:

``loop``
    our own ``X-Abuso-Loop`` header (any value); an ``X-Loop`` header naming one of
    our addresses (the ``from`` address, ``envelope_from`` and the ``ours`` list);
    our own Message-IDs, or replies to them; mail whose From, Sender or Return-Path
    is ours; a ``Received`` header naming ours as the envelope sender; two
    ``Delivered-To`` headers naming ours (a forwarding loop through our mailbox).
``automatic``
    null sender (``Return-Path: <>``, an mbox ``From MAILER-DAEMON`` line),
    ``Auto-Submitted`` other than ``no``, vacation headers, ``X-Auto-Response-Suppress``,
    ``Precedence: bulk/list/junk``, ``List-*`` headers; after the robot checks, machine
    reports (delivery-status, read receipts, ARF feedback loops).
``robot``
    RFC 3834 section 2 robots and list addresses (``MAILER-DAEMON``, ``LISTSERV``,
    ``owner-*``, ``*-request`` ...) in Return-Path, Sender, From or the address to answer.
``never``
    the author (From) or the address to answer matches the ``never`` list: senders of
    reports that nobody reads (:data:`DEFAULT_NEVER`, extended by the config's ``never``,
    replaced when ``never_builtin: false``). Answers to them are backscatter.
``no-address``
    no plain ASCII address to answer in Reply-To (or From when there is none).
``unauthenticated``
    with ``authserv_id``: our MTA did not see SPF, DKIM or DMARC pass for that domain.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ...errors import ConfigError
from ...lazy import lazy_compile
from .templates import clean

if TYPE_CHECKING:
    from email.message import Message

#: Added to every answer; mail carrying it (any value) is never answered.
LOOP_HEADER = "X-Abuso-Loop"
#: Our Message-IDs start with this, so replies to our answers are recognised
#: even when a forwarder stripped the loop headers.
ID_PREFIX = "abuso-reply."

#: Robot senders of reports, as address patterns (see :class:`Patterns`): nobody reads
#: what is sent to them, so an answer is only backscatter. The config's ``never`` adds to these.
DEFAULT_NEVER: tuple[str, ...] = (
    # nobody reads these
    "noreply", "no-reply", "no_reply", "noreply-*", "*-noreply", "do-not-reply", "donotreply", "do_not_reply",
    # delivery robots and bounce handlers (VERP: bounces+id@, bounce-id@)
    "mailer-daemon", "mailerdaemon", "postmaster", "bounce", "bounces", "bounce-*", "bounces-*", "bounces_*",
    "*-bounce", "*-bounces",
    # feedback loops and report robots
    "fbl", "fbl-*", "*-fbl", "fblbounces", "feedbackloop", "feedback-loop", "arf", "arf-*",
    "abuse-report", "abuse-reports", "autoreports",
    # SpamCop: its summaries, and its reports (answers are relayed to the reporter who asked for none)
    "summary@spamcop.net", "@reports.spamcop.net", "@bounces.spamcop.net",
)

#: Local parts of robots and lists (RFC 3834 section 2): checked in Return-Path, Sender, From
#: and the address to answer. Protocol, not taste: not configurable.
_ROBOT = lazy_compile(r"^(?:mailer-?daemon|mail-daemon|postmaster|listserv|majordomo|owner-.*|.*-owner|.*-request)$",
                      re.I)
_MSGID = lazy_compile(r"<[^<>\s\x00-\x1f\x7f]{1,250}>")
_CONTROL = lazy_compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDRESS = lazy_compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
#: Splits free text (X-Loop: 'abuse@x', '<abuse@x>', 'Desk <abuse@x>') into words that may be addresses.
_WORDS = lazy_compile(r"[\s<>()\[\]\",;]+")
_ENVELOPE_FROM = lazy_compile(r"envelope-from\s*[=:]?\s*<?([^\s<>()\[\]\",;]{1,64}@[^\s<>()\[\]\",;]{1,253})", re.I)
_AUTH_RESULT = lazy_compile(r"(dkim|spf|dmarc)\s*=\s*pass\b(.*)", re.I | re.S)
_AUTH_PROP = lazy_compile(r"(?:header\.[di]|header\.from|smtp\.mailfrom|smtp\.helo)\s*=\s*(\S+)", re.I)
#: Headers that mark automatic mail besides Auto-Submitted (vacation programs in the wild).
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")
#: Hostile mail may carry 100,000 headers of a kind or a megabyte in one: loop evidence is looked for
#: in the first headers of each kind, and the first characters of each (real ones are far shorter).
_MAX_HEADERS = 50
_MAX_CHARS = 4000
#: What the stdlib header parsers raise on hostile text (RecursionError: deeply nested comments).
_PARSER_ERRORS = (ValueError, LookupError, TypeError, AttributeError, RecursionError)
_PATTERN = lazy_compile(r"^[^\s\x00-\x1f\x7f@]*@?[^\s\x00-\x1f\x7f@]*$")


class Skip(Exception):
    """Why a report gets no answer: ``reason`` in words, ``rule`` a short name (loop, never, ...)."""

    def __init__(self, reason: str, rule: str) -> None:
        super().__init__(reason)
        self.reason, self.rule = reason, rule


def address(header: str | None) -> str | None:
    """The first address in a header, lower-cased, if it is a plain ASCII addr-spec we dare send to."""
    if not header or len(header) > _MAX_CHARS:  # nobody's address; the stdlib parser is slow on these
        return None
    try:
        pairs = getaddresses([header])
    except _PARSER_ERRORS:  # hostile text: nested comments '((((' recurse in the stdlib parser
        return None
    for _, addr in pairs:
        addr = addr.strip()
        if addr:
            return addr.lower() if _ADDRESS.match(addr) and ".." not in addr else None
    return None


class Patterns:
    """Address patterns, case-insensitive shell globs (``*``, ``?``, ``[...]``).

    ``noreply`` (no ``@``) matches the local part at any domain; ``summary@spamcop.net`` or
    ``*@bounces.example.org`` the whole address; ``@example.org`` that domain and its
    subdomains. A ``+tag`` in the local part is ignored too (``noreply+123@x`` is ``noreply@x``).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(p.strip().lower() for p in patterns))

    @staticmethod
    def check(value: Any, key: str) -> None:
        """ConfigError unless ``value`` is a list of pattern strings."""
        if not isinstance(value, list):
            raise ConfigError("must be a list of address patterns, e.g. [noreply, summary@spamcop.net]", key=key)
        for p in value:
            if not isinstance(p, str) or not p.strip() or not _PATTERN.match(p.strip()) or p.strip() == "@":
                raise ConfigError(f"not an address pattern: {p!r} (local, local@domain or @domain; "
                                  "* and ? as wildcards)", key=key)

    def match(self, addr: str) -> str | None:
        """The first pattern that matches ``addr`` (lower-cased), or None."""
        local, _, domain = addr.rpartition("@")
        candidates = (addr, local.partition("+")[0] + "@" + domain) if "+" in local else (addr,)
        for pattern in self.patterns:
            for cand in candidates:
                c_local, _, c_domain = cand.rpartition("@")
                if pattern.startswith("@"):
                    ok = fnmatchcase(c_domain, pattern[1:]) or fnmatchcase(c_domain, "*." + pattern[1:])
                elif "@" in pattern:
                    ok = fnmatchcase(cand, pattern)
                else:
                    ok = fnmatchcase(c_local, pattern)
                if ok:
                    return pattern
        return None


class Policy:
    """The RFC 3834 decision for one mailbox: whom to answer, or :class:`Skip` with the reason."""

    def __init__(self, ours: Sequence[str], never: Iterable[str] = DEFAULT_NEVER,
                 authserv_id: str | None = None) -> None:
        #: Our own addresses, lower-cased; the first is the one we answer from.
        self.ours = tuple(dict.fromkeys(a.lower() for a in ours))
        self.domains = frozenset(a.rpartition("@")[2] for a in self.ours)
        self.never = Patterns(never)
        self.authserv_id = (authserv_id or "").strip().lower() or None

    def recipient(self, msg: Message | Headers) -> str:
        """The address to answer, or Skip with the reason not to answer at all.

        ``msg`` is an ``email.message.Message`` or its :class:`Headers`.
        """
        h = msg if isinstance(msg, Headers) else Headers(msg)
        self.loops(h)
        self.automatic(h)
        self.robots(h)
        to = self.target(h)
        if self.authserv_id:
            self.authenticated(h, to)
        return to

    def is_ours(self, msgid: str) -> bool:
        """Is ``<msgid>`` one of our answers' Message-IDs?"""
        local, _, domain = msgid[1:-1].rpartition("@")
        return local.startswith(ID_PREFIX) and domain.lower() in self.domains

    def loops(self, h: Headers) -> None:
        """Any header evidence that this is our own mail coming back."""
        if h.get(LOOP_HEADER) is not None:
            raise Skip(f"{LOOP_HEADER}: {clean(h.get(LOOP_HEADER), 80)} (our own answer came back)", "loop")
        for value in h.raw("X-Loop"):
            for word in _WORDS.split(value.lower()):
                word = word.removeprefix("mailto:").strip(".:")
                if word in self.ours:
                    raise Skip(f"X-Loop names our address {word} (a mail loop)", "loop")
        for ref in _MSGID.findall(h.get("Message-ID") or ""):
            if self.is_ours(ref):
                raise Skip(f"our own answer {ref} came back", "loop")
        refs = " ".join(filter(None, (h.get("In-Reply-To"), h.get("References"))))
        for ref in _MSGID.findall(refs):
            if self.is_ours(ref):
                raise Skip(f"a reply to our answer {ref}", "loop")
        for name in ("From", "Sender", "Return-Path"):
            addr = address(h.get(name))
            if addr in self.ours:
                raise Skip(f"mail from our own address {addr} ({name})", "loop")
        for value in h.raw("Received"):
            for found in _ENVELOPE_FROM.findall(value):
                if found.lower() in self.ours:
                    raise Skip(f"a Received header names our address {found.lower()} as its envelope sender "
                               "(our own mail came back)", "loop")
        delivered = [a for a in (address(v) for v in h.raw("Delivered-To")) if a in self.ours]
        if len(delivered) > 1:
            raise Skip(f"delivered to our address {delivered[0]} {len(delivered)} times (a forwarding loop)", "loop")

    def automatic(self, h: Headers) -> None:
        """Bounces, auto-replies, list and bulk mail (RFC 3834 section 2)."""
        rp = h.get("Return-Path")
        if rp is not None and rp.strip() in ("<>", "", "< >"):
            raise Skip("null sender (Return-Path: <>)", "automatic")
        unixfrom = h.msg.get_unixfrom() or ""
        env = unixfrom[5:].split(None, 1)[0] if unixfrom.startswith("From ") and unixfrom[5:].split() else None
        if env is not None and env.lower() in ("<>", "mailer-daemon"):
            raise Skip(f"null sender (From_ line: {clean(env)})", "automatic")
        auto = h.get("Auto-Submitted")
        if auto is not None and auto.split(";")[0].strip().lower() != "no":
            raise Skip(f"Auto-Submitted: {clean(auto, 80)}", "automatic")
        for name in _AUTO_HEADERS:
            if h.get(name) is not None:
                raise Skip(f"{name} header (automatic reply)", "automatic")
        suppress = (h.get("X-Auto-Response-Suppress") or "").lower()
        if any(v.strip() in ("all", "autoreply", "oof") for v in suppress.split(",")):
            raise Skip(f"X-Auto-Response-Suppress: {clean(suppress, 80)}", "automatic")
        prec = (h.get("Precedence") or "").strip().lower()
        if prec in ("bulk", "list", "junk", "auto_reply"):
            raise Skip(f"Precedence: {prec}", "automatic")
        for key in h.names():
            if key.lower().startswith("list-"):
                raise Skip(f"{clean(key, 40)} header (mailing-list mail)", "automatic")

    def robots(self, h: Headers) -> None:
        """RFC 3834 robots in the envelope or author headers; the never list for the author; machine reports."""
        for name in ("Return-Path", "Sender", "From"):
            addr = address(h.get(name))
            if addr and _ROBOT.match(addr.partition("@")[0]):
                raise Skip(f"{name} is a robot or list address: {addr}", "robot")
        self._never(address(h.get("From")))
        try:
            ctype = h.msg.get_content_type()
            rtype = str(h.msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
        except _PARSER_ERRORS:  # a malformed Content-Type is no reason to stay silent
            rtype = ""
        if rtype.lower() in ("delivery-status", "disposition-notification", "feedback-report"):
            raise Skip(f"a {rtype} report (machine-generated: bounce, read receipt or ARF feedback loop)",
                       "automatic")

    def target(self, h: Headers) -> str:
        """Reply-To, else From, if it is a plain address of somebody who reads mail."""
        header = "Reply-To" if h.get("Reply-To") else "From"
        to = address(h.get(header))
        if not to:
            raise Skip(f"no usable address in {header}: {clean(h.get(header) or '(none)', 80)}", "no-address")
        if to in self.ours:
            raise Skip(f"{header} is our own address {to}", "loop")
        if _ROBOT.match(to.partition("@")[0]):
            raise Skip(f"{header} is a robot or list address: {to}", "robot")
        self._never(to)
        return to

    def _never(self, addr: str | None) -> None:
        pattern = self.never.match(addr) if addr else None
        if pattern:
            raise Skip(f"{addr} is a robot sender (never list: {pattern})", "never")

    def authenticated(self, h: Headers, to: str) -> None:
        """Backscatter guard: our own MTA must have seen SPF, DKIM or DMARC pass for the domain we answer.

        abuse@ mailboxes are spam magnets and most spam forges its sender; only
        Authentication-Results headers carrying our ``authserv_id`` are believed
        (RFC 8601 5: the border MTA removes forged ones with its own id).
        """
        domain = to.rpartition("@")[2]
        passed: list[str] = []
        for value in h.raw("Authentication-Results"):
            parts = [p.strip() for p in _CONTROL.sub(" ", value).split(";")]
            if not parts or [w.lower() for w in parts[0].split()[:1]] != [self.authserv_id]:
                continue
            for part in parts[1:]:
                m = _AUTH_RESULT.match(part)
                if not m:
                    continue
                for prop in _AUTH_PROP.findall(m.group(2)):
                    d = prop.rpartition("@")[2].strip('"<>;').lower().rstrip(".")
                    passed.append(d)
                    if d and (domain == d or domain.endswith("." + d) or d.endswith("." + domain)):
                        return
        seen = f" (passed: {', '.join(sorted(set(passed)))})" if passed else ""
        raise Skip(f"{domain} not authenticated by SPF, DKIM or DMARC at {self.authserv_id}{seen}", "unauthenticated")


def message_ids(value: str | None) -> list[str]:
    """The ``<id>`` tokens in a Message-ID, In-Reply-To or References value."""
    return _MSGID.findall(value or "")


class Headers:
    """One message's headers, indexed in one pass.

    Hostile mail may carry 100,000 headers, and every ``msg.get(name)`` scans them all;
    here each look-up is a dict access. The first :data:`_MAX_HEADERS` of each name are kept.
    """

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        self._index: dict[str, list[tuple[str, Any]]] = {}
        for key, value in msg.raw_items():
            values = self._index.setdefault(key.lower(), [])
            if len(values) < _MAX_HEADERS:
                values.append((key, value))
        self._decoded: dict[str, str | None] = {}

    def get(self, name: str) -> str | None:
        """The first value, decoded as ``normalize.header_str`` does; stripped; None when absent.

        A value longer than :data:`_MAX_CHARS` stays as written (decoding it costs more than
        it is worth, and :func:`address` finds no address in it).
        """
        key = name.lower()
        if key not in self._decoded:
            values = self._index.get(key)
            value = None
            if values:
                name, raw = values[0]
                value = str(raw)
                if len(value) <= _MAX_CHARS:
                    try:
                        value = str(self.msg.policy.header_fetch_parse(name, raw))
                    except _PARSER_ERRORS:
                        pass
                value = value.strip()
            self._decoded[key] = value
        return self._decoded[key]

    def raw(self, name: str) -> list[str]:
        """The first values of a header as written (not decoded), each cut to :data:`_MAX_CHARS`."""
        return [str(v)[:_MAX_CHARS] for _, v in self._index.get(name.lower(), [])]

    def names(self) -> list[str]:
        """Each header name once, as first written."""
        return [values[0][0] for values in self._index.values()]
