"""Whois and RIR output pasted into a report: context, never incidents or times (issue 11 class 5).

RIPE/AFRINIC/APNIC RPSL objects (``inetnum:``, ``route:``, ``mnt-by:``, ``created:``,
``last-modified:``, ``% Information related to ...``), ARIN's (``NetRange:``, ``CIDR:``,
``OrgAbuseEmail:``, ``RegDate:``, ``Updated:``) and LACNIC's (``owner:``, ``nserver:``,
``changed:``), JPNIC's bracketed keys (``[Network Number]``, ``[Last Update]``). A block is a run
of such ``key: value`` lines, ``%`` comments and blank lines
holding at least one key only registries use; its range bounds, name servers and remarks
accuse nobody and its dates date nothing.
"""

from __future__ import annotations

import re

from ...lazy import lazy_compile

#: "inetnum:  ...", and JPNIC's "a. [Network Number]  ..." / "[Last Update]  ...".
_KEY = lazy_compile(r"^\s*(?:([A-Za-z][\w-]{1,24})\s*:(?:\s|$)|(?:[a-z]\.\s*)?\[([A-Za-z][\w ]{1,30})\](?:\s|$))")
_COMMENT = lazy_compile(r"^\s*(?:%|#(?:\s|$))")
#: RIR comments that open whois output on their own.
_STRONG_COMMENT = lazy_compile(r"^\s*%\s*(?:Information related to|Abuse contact for|This is the \w+ Database"
                               r"|\[whois\.|Whois data copyright|The objects are in RPSL|This query was served"
                               r"|Note: this output has been filtered|No abuse contact registered)", re.I)
#: Keys only registries use.
_STRONG = frozenset("""
inetnum inet6num netrange cidr route route6 netname nethandle nettype parent originas regdate
orgabuseemail orgabusehandle orgabusename orgabusephone orgtechemail orgtechhandle orgnochandle orgname orgid
abuse-mailbox abuse-c admin-c tech-c zone-c mnt-by mnt-lower mnt-routes mnt-irt mnt-ref mnt-domains nic-hdl
aut-num as-name nserver nsstat nslastaa owner-c ownerid inetrev sponsoring-org assignment-size irt
organisation org-name org-type last-modified
""".split()) | frozenset({"network number", "network name", "last update", "assigned date", "return date",
                          "administrative contact", "technical contact", "nameserver", "allocated date"})
#: A first test over the whole text: a registry-only key or a registry comment starts some line.
# Longest first; ties in a fixed order (a set's order differs per process: the same pattern text in every
# process lets abuso.startcache keep it compiled; two keys of one length never match at the same place).
_ANY_STRONG = lazy_compile(r"^[ \t]*(?:(?:[a-z]\.[ \t]*)?\[|(?:" + "|".join(sorted(map(re.escape, _STRONG),
                                                                                  key=lambda k: (-len(k), k)))
                           + r")[ \t]*:|%)", re.I | re.M)
#: Keys registries share with ordinary prose or reports: they continue a block, never start one.
_WEAK = frozenset("""
descr country status created changed source remarks person role address phone fax-no e-mail org
organization city stateprov postalcode updated ref comment responsible owner notify language geoloc
origin member-of holes abuse contact name email
""".split())
#: A report's own fields: inside a block still read as the report's when they hold an address.
REPORT_KEYS = frozenset({"source", "address", "ip", "host", "origin"})


def whois_lines(lines: list[str]) -> set[int]:
    """Indices of the lines that belong to pasted whois blocks."""
    if not _ANY_STRONG.search("\n".join(lines)):
        return set()  # most reports: one scan in C
    out: set[int] = set()
    run: list[int] = []
    strong = False

    def close() -> None:
        nonlocal run, strong
        if strong:
            out.update(j for j in run if lines[j].strip())
        run, strong = [], False

    for i, ln in enumerate(lines):
        if not ln.strip():
            if run:
                run.append(i)
            continue
        key = key_of(ln)
        if key in _STRONG:
            strong = True
            run.append(i)
        elif key in _WEAK or (run and ln[:1] in " \t" and not _KEY.match(ln)):
            run.append(i)  # a shared key, or a continuation line of a value
        elif _COMMENT.match(ln):
            strong = strong or bool(_STRONG_COMMENT.match(ln))
            run.append(i)
        else:
            close()
    close()
    return out


def key_of(line: str) -> str | None:
    m = _KEY.match(line)
    return (m.group(1) or m.group(2)).lower() if m else None
