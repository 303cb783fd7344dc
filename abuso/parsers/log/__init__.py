"""The free-text ``log`` parser: addresses and timestamps in pasted logs and prose.

What it does, in order, for every text block except header blocks (the
``received`` parser owns Received chains of attached messages; a pasted header
section, SpamCop's "[ Offending message ]", is left to it with the spam after it):

1. Read each line once: its addresses (abuso.addresses), its timestamps
   (abuso.timestamps) and the role of each address from the words before it
   ("SRC=", "from", "Source IP:" vs "DST=", "Destination", "our server",
   "->"), plus whole-line labels ("Reporter:", "inetnum:"). Whois ranges,
   CIDR networks, traceroute hops and URL hosts inside a logged request are
   not accused.
2. Tables with a header row (myNetWatchman's "AgentName, Event Date Time,
   Destination IP, ...", W3C "#Fields:") are read by column name, so a
   destination column is never taken for the source. A table whose rows name
   no source takes the one address the report labels as source ("Source IP:").
3. Pair each source address with a time: a stamp on its own line; else the
   stamps listed under it ("  - Mon, 21 Sep 2015 10:00AM PDT"); else the
   nearest stamp within two lines, not across a "-----" rule (every line
   counts, including the first body line and each adjacent pair, which
   Mail::Abuse skipped); else a record's "Time:" field below it or its
   "Date:" heading above it (Windows events).
4. Type: keywords of the line, else of the list heading it is under
   ("IPs Engaged In Harvesting:"), else of the lines around it, else of the
   subject, else of the whole block; "undetermined" when nothing says.
5. One incident per (ip, time): the same event logged by two lines (a firewall
   deny and the worm signature behind it) gets the highest-priority type of the
   taxonomy keyword rules, never a random one. Stamps without seconds merge
   into a precise stamp of the same minute. An address that never got a stamp
   gives one incident without time (or the report's Date with date_fallback).

Options: ``zone`` (config defaults.zone, for naive stamps when the report has
no Date offset), ``date_fallback``, ``dayfirst`` (slash dates; by default a
block is day-first when it shows a slash date starting with a day > 12).
Work is capped (lines, characters, addresses, dateparser calls) and the
verdict says when a cap cut the reading short.

Modules: ``lines`` (caps, lazy per-line stamps and types), ``roles`` (step 1's roles),
``table`` (step 2), ``context`` (one message's reading and pairing, steps 1-4), ``group``
(step 5).
"""

from __future__ import annotations

from ...model import Verdict
from ...options import Option
from ...taxonomy import type_from_text
from ...timestamps import zone_tzinfo
from ..base import TIME_OPTIONS, Parser
from .context import Context
from .lines import MAX_ADDRESSES, MAX_CHARS, MAX_LINE, MAX_LINES, MAX_PER_LINE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:
    from typing import Any

    from ...normalize import Message

__all__ = ["LogParser", "MAX_ADDRESSES", "MAX_CHARS", "MAX_LINE", "MAX_LINES", "MAX_PER_LINE"]


class LogParser(Parser):
    """Free text: pasted logs and prose. See the module doc for the rules."""

    name = "log"
    priority = 10
    fallback = True

    OPTIONS = TIME_OPTIONS + (
        Option("dayfirst", "bool", help="slash dates are day first (default: month first unless a day > 12 shows)"),
    )

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        zone = self.options.get("zone")
        self.default_zone = zone_tzinfo(str(zone)) if zone else None
        self.date_fallback = bool(self.options.get("date_fallback", False))
        #: Slash dates are month first (US) unless this says so, or the block shows a day > 12 first.
        self.dayfirst = self.options.get("dayfirst")

    def parse(self, message: Message) -> Verdict:
        blocks = [b for b in message.blocks if b.kind != "headers"]
        if not blocks:
            return self.not_applicable("no text to read")
        subject_hint = type_from_text(message.subject or "")
        ctx = Context(self, message)
        for b in blocks:
            if ctx.exhausted:
                break
            ctx.read_block(b.text, subject_hint, ctx.stated_by_block.get(id(b)))
        ctx.read_subject(message.subject or "", subject_hint)
        return self._verdict(ctx, message)

    def _verdict(self, ctx: Context, message: Message) -> Verdict:
        """Say what was found, or why nothing was: "0 incidents" alone is what desks hate most."""
        incidents = ctx.incidents()
        notes = []
        if ctx.excluded:
            notes.append(f"{_n(len(ctx.excluded), 'victim/reporter address', 'victim/reporter addresses')} left out"
                         f" ({', '.join(sorted(ctx.excluded_labels)[:4])})")
        if ctx.ranges:
            notes.append(f"{_n(ctx.ranges, 'whois or network-range address', 'whois or network-range addresses')}"
                         " skipped")
        if ctx.hops:
            notes.append(f"{_n(ctx.hops, 'traceroute hop')} skipped")
        if ctx.pasted:
            notes.append("a pasted message (headers and body) left to the received/spamcop parsers")
        if ctx.useless:
            notes.append(f"unusable {_n(len(ctx.useless), 'address', 'addresses')} ignored "
                         f"({', '.join(sorted(ctx.useless)[:3])})")
        if ctx.cap:
            notes.append(f"read only the first {ctx.lines_read} lines ({ctx.cap})")
        tail = "; " + "; ".join(notes) if notes else ""
        if incidents:
            head = _n(len(ctx.sources), "source address", "source addresses")
            untimed = sum(1 for i in incidents if i.time is None or i.extra.get("time_from"))
            if untimed:
                head += f", {untimed} without a timestamp" + (" (the report's Date used)" if self.date_fallback else "")
            return self.found(incidents, head + tail)
        if notes:
            return self.found([], f"no accused address in {_n(ctx.lines_read, 'line')}" + tail)
        return self.not_applicable(f"no IP address in {ctx.lines_read} lines of text")



def _n(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"
