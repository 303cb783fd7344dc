"""X-ARF reports -> incidents: 0.2 (YAML ``report.txt``) and the JSON generations.

X-ARF 0.2 is what fail2ban, blocklist.de, clean-mx and Netcraft send: an
``X-ARF: YES`` (or ``X-XARF: PLAIN``) header and a YAML part named
``report.txt`` with ``Source``, ``Source-Type``, ``Category``, ``Report-Type``,
``Date`` and ``Port``. The JSON generations (abusix ``Report.SourceIp`` /
``ReportType``, X-ARF 4.0 ``source_identifier`` / ``category`` / ``type``) come
as an ``xarf.json`` attachment, sometimes as the JSON body itself, and inside
an ARF wrapper with ``Feedback-Type: xarf`` (AbuseIO #390). Key spellings
differ between all of them, so keys are compared without case and punctuation.

Hostile input: the flat ``Key: value`` reports nearly all senders write are
read line by line; anything else goes through a pure-Python safe YAML loader
(no tags, no timestamps, RecursionError instead of a C stack overflow), JSON
through ``json``; both are size-capped, and a malformed document gives a
verdict that says so, never an exception.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ..errors import INPUT_ERRORS
from ..lazy import lazy_compile, lazy_import
from ..model import Incident, Verdict
from ..normalize import Message, header_all, split_broken_multipart
from ..taxonomy import TAXONOMY, normalize_type
from .arf import fallback_time, header_section, parse_fields, parse_ip, resolve_time
from .base import TIME_OPTIONS, Parser

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from email.message import Message as _StdMessage
    from typing import Any, Iterable, Mapping

    from yaml import SafeLoader  # yaml is imported when an X-ARF report is first read

json = lazy_import('json')
#: Documents larger than this are not parsed (a report is a few hundred bytes).
MAX_DOC_BYTES = 512 * 1024
#: At most this many incidents from one mail.
MAX_INCIDENTS = 1000
MAX_PARTS = 500
#: How much of an attached log file goes into the evidence.
LOG_EVIDENCE_CHARS = 2000

#: Headers by which senders mark an X-ARF mail (any value but "no").
MARK_HEADERS = ("X-ARF", "X-XARF", "Open-ARF")

#: Meanings X-ARF gives to words that mean something else elsewhere.
XARF_TYPES: dict[str, str] = {
    # X-ARF 4 connection/auth_failure: failed logins against a service.
    "auth-failure": "brute-force",
    # X-ARF content/malware and 0.2 MALWARE reports: a host serving malware, not
    # IntelMQ's legacy catch-all "malware" type.
    "malware": "malware-distribution",
}
#: Categories precise enough to type an incident when no report type says more.
CATEGORY_TYPES: dict[str, str] = {
    "fraud": "phishing",
    "copyright": "copyright",
    "malware": "malware-distribution",
    "vulnerability": "vulnerable-system",
    "messaging": "spam",
    "reputation": "blacklist",
    "infected": "infected-system",
}
#: Types whose source is a server: there a bare ``Port`` is the source's own port.
SERVER_TYPES = {"phishing", "malware-distribution", "copyright", "vulnerable-system", "ddos-amplifier"}

# Normalised key names (lower case, letters and digits only), in order of preference.
_SOURCE_KEYS = ("sourceip", "source", "sourceidentifier", "ip", "srcip", "sourceaddress")
_TYPE_KEYS = ("reporttype", "type", "feedtype")
_CATEGORY_KEYS = ("category", "class", "reportclass")
_TIME_KEYS = ("date", "timestamp", "firstseen", "lastseen", "time", "eventtime")
_EVIDENCE = " evidence"  # cannot clash with a normalised key (those have no space)
_SOURCE_PORT_KEYS = ("sourceport", "srcport")

_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)"
_IPV6_BRACKET = r"\[(?:IPv6:)?([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})\]"
_ADDR_RX = lazy_compile(rf"({_IPV4})|{_IPV6_BRACKET}")
_URL_THEN_ADDR = lazy_compile(rf"\b(?:https?|ftp)://\S+\s+\[(?:({_IPV4})|([0-9A-Fa-f:]+:[0-9A-Fa-f:]*))\]")
_IP_PHRASE = lazy_compile(rf"\bIP(?:[- ]?address)?\s*:?\s+({_IPV4})", re.I)
_CAMEL = lazy_compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: An unnamed text part of a marked mail is the report when it starts with
#: "---" or with Key: value lines that include one of the X-ARF key fields
#: (pyxarf and SSHCure send it without a file name).
_KEY_LINES = lazy_compile(r"\A\s*(?:---[ \t]*\n|(?:[A-Za-z][\w-]*:[^\n]*\n)*?(?:Source|Report-Type|Category):)", re.I)
SNIFF_CHARS = 4096
MAX_HEADER_BYTES = 64 * 1024
_MARK_B = lazy_compile(rb"^(?:x-x?arf|open-arf)[ \t]*:", re.I | re.M)
_MARK_S = lazy_compile(r"^(?:x-x?arf|open-arf)[ \t]*:", re.I | re.M)
_JSON_HINT = lazy_compile(r'"(?:xarf_version|source_identifier|SourceIp|ReportType|Report-Type|Source)"', re.I)


def _norm_key(key: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def _type_word(value: str) -> str:
    """'LoginAttack', 'login_attack', 'Comment Spam' -> 'login-attack', 'comment-spam'."""
    return "-".join(_CAMEL.sub(" ", value.strip()).lower().replace("_", " ").replace("-", " ").split())


def type_of(value: Any) -> str | None:
    """The classification.type an X-ARF type or category names, or None if it says nothing."""
    if not isinstance(value, str) or not value.strip():
        return None
    word = _type_word(value)
    if word in XARF_TYPES:
        return XARF_TYPES[word]
    found = normalize_type(word)
    return None if found == "undetermined" else found


def looks_like_xarf(message: Message) -> bool:
    """Cheap pre-check: a marking header (top level or forwarded), a JSON part, or a JSON body.

    Only the header section of the raw mail and the heads of blocks are
    searched, so a message that is not X-ARF costs microseconds whatever its size.
    """
    head = header_section(message.raw)
    # substring first (memchr speed), the anchored regex only to confirm: "arf.mail.yahoo.com" is no mark
    if (b"arf" in head or b"ARF" in head or b"Arf" in head) and _MARK_B.search(head):
        return True
    for b in message.blocks:
        if b.kind == "headers":
            text = b.text[:MAX_HEADER_BYTES]
            if ("arf" in text or "ARF" in text or "Arf" in text) and _MARK_S.search(text):
                return True
        elif b.text[:64].lstrip()[:1] == "{" and _JSON_HINT.search(b.text[:SNIFF_CHARS]):
            return True
    return any(_is_json_name(a.filename, a.content_type) for a in getattr(message, "attachments", ()))


def _is_json_name(filename: str | None, ctype: str) -> bool:
    return ctype == "application/json" or (filename or "").lower().endswith(".json")


def _marked(msg: _StdMessage) -> bool:
    for name in MARK_HEADERS:
        try:
            value = msg.get(name)
        except INPUT_ERRORS:
            continue
        if value is not None and str(value).strip().lower() not in ("no", "false", "0"):
            return True
    return False


def _part_name(part: Any) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except INPUT_ERRORS:
        return ""
    return str(name).strip().lower() if isinstance(name, str) else ""


def _payload(part: Any) -> bytes:
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def _text(data: bytes, part: Any) -> str:
    charset = None
    try:
        charset = part.get_content_charset()
    except INPUT_ERRORS:
        pass
    for cs in ([charset] if charset else []) + ["utf-8"]:
        try:
            return data.decode(cs)
        except (LookupError, ValueError):  # ValueError: undecodable, or a NUL in the charset name
            continue
    return data.decode("latin-1")


class _NoTimestampLoader:
    """A SafeLoader that keeps ``2015-09-23 04:04:18`` a string, so every stamp goes through one path."""

    _cls: type[SafeLoader] | None = None

    @classmethod
    def get(cls) -> type[SafeLoader]:
        if cls._cls is None:
            import yaml

            # Not CSafeLoader: its Cython composer recurses in C, and "[" * 50000
            # (or "- " * 50000) crashes the process; the Python one raises RecursionError.
            class Loader(yaml.SafeLoader):
                pass

            Loader.yaml_implicit_resolvers = {
                k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
                for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
            }
            cls._cls = Loader
        return cls._cls


#: A line of a flat X-ARF 0.2 report: "---", "Key: plain value", or blank. A
#: value that starts like YAML syntax (quotes, [ { & * ! | > % @ `) or holds a
#: " #" comment needs the real parser.
_FLAT_LINE = lazy_compile(r"(?:---|\.\.\.|[A-Za-z][\w.-]*:(?:[ \t]+(?![ \t])[^'\"\[\]{}&*!|>%@`#][^#]*)?|)[ \t]*\r?")


def flat_fields(text: str) -> dict[str, str] | None:
    """The report as written, if it is the flat ``Key: value`` list nearly every sender writes.

    Equal to what YAML makes of such a text for every field the parser reads
    (values stay strings; ports and stamps are parsed from strings anyway),
    and about 20 times cheaper than the pure-Python YAML parser.
    """
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not _FLAT_LINE.fullmatch(line):
            return None
        name, sep, value = line.partition(":")
        if sep and name[:1].isalpha():
            out[name] = value.strip()
    return out or None


def load_yaml(text: str) -> tuple[Any, str]:
    """(data, problem): flat Key: value lines, else a safe YAML loader, else lines despite YAML errors."""
    import yaml

    flat = flat_fields(text)
    if flat is not None:
        return flat, ""
    loader = None
    try:
        loader = _NoTimestampLoader.get()(text)  # the reader already rejects non-printable text
        data = loader.get_single_data()
        if isinstance(data, (dict, list)):
            return data, ""
        problem = "report.txt is not a YAML mapping"
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = f"report.txt is not valid YAML{where}: {getattr(e, 'problem', None) or 'syntax error'}"
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        return None, f"report.txt unreadable: {type(e).__name__}"
    finally:
        if loader is not None:
            loader.dispose()
    fields = parse_fields(text)
    keys = {_norm_key(k) for k in fields}
    if keys & set(_SOURCE_KEYS + _TYPE_KEYS + _CATEGORY_KEYS):
        return {k: v[0] for k, v in fields.items()}, problem + "; read as Key: value lines"
    return None, problem


def load_json(text: str) -> tuple[Any, str]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        return None, f"X-ARF JSON is malformed: {str(e)[:120]}"
    if not isinstance(data, (dict, list)):
        return None, "X-ARF JSON is not an object"
    return data, ""


class _Doc:
    """A parsed report document and the (lower-cased) name of the part it came from."""

    def __init__(self, data: Any, hint: str) -> None:
        self.data, self.hint = data, hint


def find_documents(message: Message) -> tuple[list[_Doc], list[str], bool, str]:
    """The X-ARF documents of a mail (YAML report parts, JSON parts or body), problems, marked?, and
    the head of its attached log file (X-ARF 0.2 ``Attachment: text/plain``), the best evidence."""
    roots = [message.email] + list(getattr(message, "embedded", []))
    marked = any(_marked(m) for m in roots)
    docs: list[_Doc] = []
    problems: list[str] = []
    seen: set[int] = set()
    count = 0
    log = ""
    for root in roots:
        try:
            parts = list(root.walk())
        except INPUT_ERRORS:
            problems.append("MIME structure unreadable")
            continue
        broken = [p for p in parts if not p.is_multipart() and p.get_content_maintype() == "multipart"]
        for part in broken:
            parts.extend(q for sub in split_broken_multipart(part) for q in sub.walk())
        for part in parts:
            if id(part) in seen or part.is_multipart():
                continue
            seen.add(id(part))
            count += 1
            if count > MAX_PARTS:
                problems.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
                return docs, problems, marked, log
            try:
                ctype = part.get_content_type()
            except INPUT_ERRORS:
                continue
            name = _part_name(part)
            is_json = _is_json_name(name, ctype)
            is_yaml = name.endswith(("report.txt", ".yaml", ".yml")) or ctype in ("text/yaml", "application/yaml",
                                                                                  "application/x-yaml")
            if not log and name.endswith(".log") and ctype.startswith("text/"):
                log = _text(_payload(part)[:LOG_EVIDENCE_CHARS], part).strip()
                continue
            if not (is_json or is_yaml or ctype == "text/plain"):
                continue
            data = _payload(part)
            if len(data) > MAX_DOC_BYTES:
                problems.append(f"X-ARF part {name or ctype} is {len(data)} bytes; not read")
                continue
            text = _text(data, part).lstrip("\ufeff")
            head = text[:64].lstrip()[:1]
            if is_json or (head in ("{", "[") and not is_yaml and (marked or _JSON_HINT.search(text[:SNIFF_CHARS]))):
                doc, problem = load_json(text)
            elif is_yaml or (marked and _KEY_LINES.match(text[:SNIFF_CHARS])):
                doc, problem = load_yaml(text)
            else:
                continue
            if problem:
                problems.append(problem)
            if doc is not None:
                docs.append(_Doc(doc, name))
    return docs, problems, marked, log


def _records(data: Any) -> Iterable[dict[str, Any]]:
    """Flat records with normalised keys; abusix' ``Report`` object is merged into its parent."""
    items = data if isinstance(data, list) else [data]
    for item in items[:MAX_INCIDENTS]:
        if not isinstance(item, dict):
            continue
        rec: dict[str, Any] = {}
        written: list[str] = []  # the scalar fields as the reporter wrote them, for evidence
        for key, value in item.items():
            rec.setdefault(_norm_key(key), value)
            if isinstance(value, (str, int, float)):
                written.append(f"{key}: {value}")
        for wrapper in ("report", "machinereadable"):  # abusix JSON; pyxarf's JSON
            inner = rec.get(wrapper)
            if isinstance(inner, dict):
                for key, value in inner.items():
                    rec.setdefault(_norm_key(key), value)
                    if isinstance(value, (str, int, float)):
                        written.append(f"{key}: {value}")
        rec[_EVIDENCE] = "\n".join(written)[:2000]
        yield rec


def _first(rec: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        v = rec.get(k)
        if v not in (None, "", []):
            return v
    return None


def marked_xarf(message: Message) -> bool:
    """``X-ARF: yes`` on the mail or a message it carries: the format's statement of the source."""
    return any((header_all(msg, "X-ARF") or [""])[0].strip().lower() == "yes"
               for msg in [message.email, *message.embedded])


class XarfParser(Parser):
    """X-ARF 0.2 YAML and X-ARF JSON reports: one incident per reported source."""

    name = "xarf"
    priority = 90
    authority = True
    OPTIONS = TIME_OPTIONS

    def parse(self, message: Message) -> Verdict:
        verdict = self._read(message)
        if marked_xarf(message):
            self.states_source(verdict, "an X-ARF report")
        return verdict

    def _read(self, message: Message) -> Verdict:
        if not looks_like_xarf(message):
            return self.not_applicable("not an X-ARF report (no X-ARF header, report.txt or xarf.json)")
        docs, problems, marked, log = find_documents(message)
        if not docs:
            if marked or problems:
                reason = "; ".join(problems) or "X-ARF header but no report.txt or JSON report part"
                return self.found([], reason)
            return self.not_applicable("not an X-ARF report (no X-ARF header, report.txt or xarf.json)")
        incidents: list[Incident] = []
        notes: list[str] = list(problems)
        useful = 0
        for doc in docs:
            # An unmarked, generically named JSON/YAML part must look like a whole
            # report (a source and a type), not just share a key such as "source".
            vouched = marked or "xarf" in doc.hint or doc.hint.endswith("report.txt")
            for rec in _records(doc.data):
                has_source = any(k in rec for k in _SOURCE_KEYS)
                has_type = any(k in rec for k in _TYPE_KEYS + _CATEGORY_KEYS)
                if not (has_source and has_type) and not (vouched and (has_source or has_type)):
                    continue  # some other YAML or JSON attachment
                useful += 1
                found, note = self._incidents(rec, doc, message, log)
                incidents.extend(found)
                if note and note not in notes:
                    notes.append(note)
                if len(incidents) >= MAX_INCIDENTS:
                    notes.append(f"more than {MAX_INCIDENTS} incidents; the rest were not read")
                    return self.found(incidents[:MAX_INCIDENTS], "; ".join(notes))
        if not useful and not marked:
            return self.not_applicable("not an X-ARF report (attached YAML/JSON has no X-ARF fields)")
        if not useful:
            notes.append("X-ARF header but no report with Source, Category or Report-Type")
        return self.found(incidents, "; ".join(notes))

    def _incidents(self, rec: dict[str, Any], doc: _Doc, message: Message, log: str) -> tuple[list[Incident], str]:
        notes: list[str] = []
        type_ = self._type(rec, doc.hint)
        if type_ is None:
            type_ = "undetermined"
            notes.append("X-ARF category/report type not recognised: type undetermined")
        stamp = _first(rec, _TIME_KEYS)
        time, zone = resolve_time(stamp, message, self.options) if stamp is not None else (None, "none")
        if stamp is not None and time is None:
            notes.append(f"unreadable X-ARF Date {str(stamp)[:60]!r}")
        extra: dict[str, Any] = {}
        if time is None:
            time, zone, extra = fallback_time(message, self.options)
        category = _first(rec, _CATEGORY_KEYS)
        report_type = _first(rec, _TYPE_KEYS)
        for key, value in (("xarf_category", category), ("xarf_type", report_type)):
            if isinstance(value, str):
                extra[key] = value[:100]
        port, dst_port = self._ports(rec, type_)
        if dst_port is not None:
            extra["destination_port"] = dst_port

        sources = _first(rec, _SOURCE_KEYS)
        if sources is None:
            return [], "; ".join(notes + ["X-ARF report without Source"])
        out: list[Incident] = []
        alt_ip = next((ip for k in ("ip", "sourceip", "srcip") if isinstance(rec.get(k), str)
                       and (ip := parse_ip(rec[k])) is not None), None)
        for source in (sources if isinstance(sources, list) else [sources])[:MAX_INCIDENTS]:
            if not isinstance(source, (str, int)):
                continue
            source = str(source).strip()
            ip = parse_ip(source)
            more = dict(extra)
            if ip is None and alt_ip is not None:  # Netcraft: Source is the URL, Ip its address
                ip = alt_ip
                more["source"] = source[:500]
            if ip is None and "@" in source and "://" not in source:
                notes.append(f"X-ARF Source {source[:80]!r} is a mail address, not a host")
                continue
            if ip is None:
                ip = ip_for_source(source, message)
                if ip is None:
                    notes.append(f"X-ARF Source {source[:80]!r} is not an address, and the report's text "
                                 "names no single address for it")
                    continue
                more["derived"] = "text"
                more["source"] = source[:500]
            evidence = rec.get(_EVIDENCE, "") + (f"\n\n{log}" if log else "")
            try:
                out.append(Incident(ip=ip, type=type_, time=time, parser=self.name, zone=zone, port=port,
                                    evidence=evidence, extra=more))
            except (ValueError, TypeError) as e:
                notes.append(f"report skipped: {e}")
        return out, "; ".join(notes)

    @staticmethod
    def _type(rec: Mapping[str, Any], hint: str) -> str | None:
        for key in _TYPE_KEYS + ("service",):
            found = type_of(rec.get(key))
            if found:
                return found
        for key in _CATEGORY_KEYS:
            value = rec.get(key)
            if isinstance(value, str):
                word = _type_word(value)
                if word in CATEGORY_TYPES:
                    return CATEGORY_TYPES[word]
        # Cyscon names the part after the kind of report: "MALWARE-report.txt".
        stem = hint.rsplit("/", 1)[-1].split("-report", 1)[0] if "-report" in hint else ""
        found = type_of(stem)
        return found if found in TAXONOMY else None

    @staticmethod
    def _ports(rec: Mapping[str, Any], type_: str) -> tuple[int | None, int | None]:
        """(source port, destination port): X-ARF 0.2's bare ``Port`` is the source's own only for servers."""
        port = _port(_first(rec, _SOURCE_PORT_KEYS))
        bare = _port(rec.get("port"))
        dst = _port(_first(rec, ("destinationport", "dstport")))
        if port is None and bare is not None:
            if type_ in SERVER_TYPES or str(rec.get("sourcetype", "")).lower() in ("uri", "url"):
                port = bare
            elif dst is None:
                dst = bare
        return port, dst


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 < value < 65536:
        return value
    return None


def ip_for_source(source: str, message: Message) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The one address the report's own text gives for a URI or host ``Source``.

    Netcraft reports a phishing URL as Source and writes ``URL [address]`` or
    "located at IP address A" in the text. Only an unambiguous answer counts:
    the addresses on lines naming the host, else the ``URL [address]`` pairs,
    else "IP (address) A" phrases, each used only when it gives exactly one.
    """
    host = ""
    try:
        host = (urlsplit(source if "://" in source else f"//{source}").hostname or "").lower()
    except ValueError:
        pass
    if host:
        ip = parse_ip(host)
        if ip is not None:
            return ip
    lines = [ln for b in message.blocks if b.depth == 0 and b.kind in ("body", "html")
             for ln in b.text[:200_000].splitlines()]
    if host:
        on_host = {a for ln in lines if host in ln.lower() for a in _addresses(ln)}
        if len(on_host) == 1:
            return on_host.pop()
    pairs = set()
    for ln in lines:
        for m in _URL_THEN_ADDR.finditer(ln):
            ip = parse_ip(m.group(1) or m.group(2))
            if ip is not None:
                pairs.add(ip)
    if len(pairs) == 1:
        return pairs.pop()
    phrases = {ip for ln in lines for m in _IP_PHRASE.finditer(ln) if (ip := parse_ip(m.group(1)))}
    if len(phrases) == 1:
        return phrases.pop()
    return None


def _addresses(line: str) -> set[Any]:
    out = set()
    for m in _ADDR_RX.finditer(line):
        ip = parse_ip(m.group(1) or m.group(2))
        if ip is not None:
            out.add(ip)
    return out
