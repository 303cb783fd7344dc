"""The received parser: the entry hop of a carried message's Received chain."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_string
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abuso.model import ZONES
from abuso.normalize import normalize, rejoin_headers
from abuso.parsers.received import (
    ReceivedParser,
    carried_chains,
    chains_in_text,
    entry_hop,
    parse_received,
    source_of,
)
from abuso.pipeline import Pipeline

from .conftest import CORPUS, NO_CORPUS


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


# --- one header: which address is the client's ---------------------------------------

@pytest.mark.parametrize("header, ip", [
    # Sendmail / Postfix: "helo (rdns [addr])"; the by clause's version string is not an address
    ("from sauron.julianhaight.com (sauron.julianhaight.com [216.127.43.85]) by rs26s3.x.else "
     "(8.12.9/8.12.6/3.0) with SMTP id h5K; Thu, 19 Jun 2003 20:14:43 -0400", "216.127.43.85"),
    ("from mx.example.org (unknown [IPv6:2001:db8::25]) by mx2.example.net (Postfix) with ESMTPS id 4A; "
     "Mon, 23 Nov 2026 10:00:00 +0100", "2001:db8::25"),
    ("from helo.example (rdns.example [198.51.100.4]) (may be forged) by mx; Mon, 23 Nov 2026 10:00:00 +0100",
     "198.51.100.4"),
    # Exim, with and without a verified name, with a port, IPv6
    ("from [10.0.0.1] (helo=ibm.com) by relay.victim.net with smtp (Exim 3.34 #2) id 19T72p-0004wF-00 for x; "
     "Thu, 19 Jun 2003 17:34:13 -0400", "10.0.0.1"),
    ("from host.example ([198.51.100.7]:51234 helo=foo) by mx with esmtps (Exim 4.96); "
     "Mon, 23 Nov 2026 09:00:00 +0000", "198.51.100.7"),
    ("from [2001:db8:1::7] (port=4242 helo=[192.0.2.1]) by mx (Exim 4.96); Mon, 23 Nov 2026 09:00:00 +0000",
     "2001:db8:1::7"),
    # qmail: the HELO is a claim, the parenthesised address is what qmail saw
    ("from unknown (HELO 207.44.214.92) (10.0.0.1) by us5-1.noname-dns.net with SMTP; 11 Nov 2003 15:11:04 -0000",
     "10.0.0.1"),
    ("from mailgate.cesmail.net (216.154.195.36) by blade3.cesmail.net with SMTP; 11 Nov 2003 08:14:29 -0000",
     "216.154.195.36"),
    # Microsoft: the by host's address is never the client
    ("from ex1.example.com (203.0.113.5) by ex2.example.com (10.1.1.6) with Microsoft SMTP Server id 15.1.2; "
     "Mon, 23 Nov 2026 09:00:00 +0000", "203.0.113.5"),
    ("from NAM1.outbound.protection.outlook.com (2a01:111:f400:fe5b::601) by BN8.prod.outlook.com "
     "(2603:10b6:408:70::25) with Microsoft SMTP Server; Mon, 23 Nov 2026 09:00:00 +0000", "2a01:111:f400:fe5b::601"),
    # a HELO literal is used only when nothing else is there
    ("from x (helo [192.0.2.9]) by mx; Mon, 23 Nov 2026 09:00:00 +0000", "192.0.2.9"),
    ("from [::ffff:192.0.2.44] by mx; Mon, 23 Nov 2026 09:00:00 +0000", "192.0.2.44"),
    # Postfix with a literal HELO: the bracket outside the parentheses is the claim
    ("from [192.168.1.5] (dsl-1.isp.example [198.51.100.9]) (Authenticated sender: bob@isp.example) by "
     "smtp.isp.example (Postfix) with ESMTPSA id 1; Mon, 23 Nov 2026 10:00:00 +0100", "198.51.100.9"),
    # ecelerity writes the port inside the brackets
    ("from [10.17.18.21] ([198.51.100.21:41423] helo=domain3.tld) by mx.mymts.net with ESMTP id A9; "
     "Sun, 10 Jan 2016 16:56:23 -0500", "198.51.100.21"),
    # Postfix TLS comment with "with" inside it
    ("from mail.example.com (mail.example.com [IPv6:2001:db8::1]) (using TLSv1.3 with cipher "
     "TLS_AES_256_GCM_SHA384 (256/256 bits)) (No client certificate requested) by mx.example.org (Postfix) "
     "with ESMTPS id 4Qx; Mon, 23 Nov 2026 10:00:00 +0100", "2001:db8::1"),
])
def test_client_address(header: str, ip: str) -> None:
    assert parse_received(header).ip == ip_address(ip)


@pytest.mark.parametrize("header", [
    "from mail.example.com (InterMail vK.4.04.00.00 201-232-137-20010605) by mx; Mon, 23 Nov 2026 09:00:00 +0000",
    "(qmail 30067 invoked from network); 20 Jun 2003 00:14:32 -0000",
    "from userid 1000 by host.example.org; Mon, 23 Nov 2026 09:00:00 +0000",
    "by mx.example.org (Postfix, from userid 0) id 4A2; Mon, 23 Nov 2026 09:00:00 +0000",
    "from mx (8.12.9/8.12.9) by relay (1.2.3.4) ; Mon, 23 Nov 2026 09:00:00 +0000",
])
def test_no_client_address(header: str) -> None:
    assert parse_received(header).ip is None


def test_header_time_is_after_the_last_semicolon() -> None:
    r = parse_received("from a (a [192.0.2.1]) by b with SMTP id x; for <u;v@example>; "
                       "Thu, 19 Jun 2003 17:34:13 -0400 (EDT)")
    assert (r.time, r.zone) == (utc(2003, 6, 19, 21, 34, 13), "explicit")


def test_header_time_without_semicolon() -> None:
    r = parse_received("from yahoo.fr ([10.0.0.1]) by gideon.mail.atl.earthlink.net (EarthLink SMTP Server) "
                       "with ESMTP id 1ajtCI2rB3Nl3pK0 Tue, 11 Nov 2003 03:11:35 -0500 (EST)")
    assert r.time == utc(2003, 11, 11, 8, 11, 35)


def test_header_time_without_offset_uses_configured_zone() -> None:
    h = "from a (a [192.0.2.1]) by b; Mon, 23 Nov 2026 10:00:00"
    assert (parse_received(h).time, parse_received(h).zone) == (utc(2026, 11, 23, 10), "assumed-utc")
    r = parse_received(h, default_zone="CET")
    assert (r.time, r.zone) == (utc(2026, 11, 23, 9), "default" if "default" in ZONES else "stated")


def test_unparseable_date_gives_no_time() -> None:
    r = parse_received("from a (a [192.0.2.1]) by b; sometime last week")
    assert r.ip == ip_address("192.0.2.1") and r.time is None


# --- the chain: which hop is the entry ---------------------------------------------------

def test_walks_past_the_reporters_relays_by_domain() -> None:
    hop = entry_hop([
        "from mail.victim.net [204.204.204.204] by ux1.victim.net with esmtp (Exim 1.61 #1) id 1; "
        "Thu, 19 Jun 2003 17:34:24 -0400",
        "from [10.0.0.1] (helo=ibm.com) by relay.victim.net with smtp (Exim 3.34 #2) id 2 for x; "
        "Thu, 19 Jun 2003 17:34:13 -0400",
    ])
    assert hop is not None
    assert (hop.ip, hop.time, hop.zone) == (ip_address("10.0.0.1"), utc(2003, 6, 19, 21, 34, 13), "explicit")
    assert hop.index == 1 and "relay.victim.net" in hop.evidence


def test_internal_private_relays_are_skipped_when_a_public_client_follows() -> None:
    hop = entry_hop([
        "from mbox1.isp.example (mbox1.isp.example [10.2.0.5]) by store.isp.example; Mon, 23 Nov 2026 10:00:05 +0000",
        "from filter (localhost [127.0.0.1]) by mbox1.isp.example; Mon, 23 Nov 2026 10:00:04 +0000",
        "from mx1 (mx1 [10.2.0.9]) by mbox1.isp.example; Mon, 23 Nov 2026 10:00:03 +0000",
        "from spammer.example (dsl-7.example [198.51.100.77]) by mx1.isp.example; Mon, 23 Nov 2026 10:00:02 +0000",
        "from [192.168.1.20] by spammer.example; Mon, 23 Nov 2026 10:00:01 +0000",
    ])
    assert hop is not None and hop.ip == ip_address("198.51.100.77")
    assert hop.time == utc(2026, 11, 23, 10, 0, 2)


def test_private_client_above_a_forged_hop_is_the_source() -> None:
    # spamcop-03: the spammer HELOs as 207.44.214.92 and forges a hop "by 207.44.214.92" below.
    hop = entry_hop([
        "(qmail 10122 invoked from network); 11 Nov 2003 15:11:04 -0000",
        "from unknown (HELO 207.44.214.92) (10.0.0.1) by us5-1.noname-dns.net with SMTP; 11 Nov 2003 15:11:04 -0000",
        "from [242.21.16.157] by 207.44.214.92 id dEQ8AHL5o5Bw; Tue, 11 Nov 2003 17:07:06 +0200",
    ])
    assert hop is not None and hop.ip == ip_address("10.0.0.1")


def test_public_client_with_a_foreign_name_stops_the_walk() -> None:
    hop = entry_hop([
        "from relay.other.example (relay.other.example [192.0.2.30]) by mx.isp.example; "
        "Mon, 23 Nov 2026 10:00:02 +0000",
        "from [198.51.100.1] by relay.other.example; Mon, 23 Nov 2026 10:00:01 +0000",
    ])
    assert hop is not None and hop.ip == ip_address("192.0.2.30")


def test_helo_claiming_the_reporters_domain_is_not_trusted() -> None:
    hop = entry_hop([
        "from mx.isp.example ([198.51.100.9]) by store.isp.example; Mon, 23 Nov 2026 10:00:02 +0000",
        "from [192.0.2.1] by relay.elsewhere.example; Mon, 23 Nov 2026 10:00:01 +0000",
    ])
    assert hop is not None and hop.ip == ip_address("198.51.100.9")


@pytest.mark.parametrize("chain, ip", [
    # Comcast: the claimed name is the receiver of the header below
    (["from reszmta-po-08v.sys.comcast.net (LHLO reszmta-po-08v.sys.comcast.net) (96.114.154.200) by "
      "resmail-po-048v.sys.comcast.net with LMTP; Tue, 19 Jan 2016 12:42:59 +0000 (UTC)",
      "from resimta-po-11v.sys.comcast.net ([96.114.154.139]) by reszmta-po-08v.sys.comcast.net with comcast id "
      "7oV; Tue, 19 Jan 2016 12:42:59 +0000",
      "from mta15.domain3.tld ([198.51.100.5]) by resimta-po-11v.sys.comcast.net with comcast id 7oiw; "
      "Tue, 19 Jan 2016 12:42:58 +0000",
      "from localhost.localdomain (memdoo01.domain3.tld [XX.YY.ZZ.7]) by mta15.domain3.tld (Postfix) with ESMTPA "
      "id BF2; Tue, 19 Jan 2016 13:42:56 +0100 (CET)"], "198.51.100.5"),
    # Cox: a single-label internal host name, confirmed by the header below
    (["from fed1rmimpi210 ([68.230.241.25]) by fed1rmfepi202.cox.net (InterMail vM.8.01.05.15 201-2260-151-145) "
      "with ESMTP id <2015@fed1rmimpi210>; Mon, 21 Dec 2015 17:52:31 -0500",
      "from domain3.tld ([198.51.100.7]) by fed1rmimpi210 with cox id wNsU; Mon, 21 Dec 2015 17:52:30 -0500"],
     "198.51.100.7"),
    # RoadRunner: a private client is the source when the public hop below it was received elsewhere
    (["from dnvrco-pub-iedge-vip.email.rr.com ([107.14.70.245]) by dnvrco-fep21.email.rr.com with ESMTP id <x>; "
      "Wed, 13 Jan 2016 16:42:14 +0000",
      "from [10.17.18.16] ([10.17.18.16:50449] helo=server.domain4.tld) by dnvrco-iedge02 with ESMTP id 11; "
      "Wed, 13 Jan 2016 16:42:12 +0000",
      "from User (unknown [105.112.29.52]) by server.domain4.tld (Postfix) with ESMTPA id 7A7; "
      "Wed, 13 Jan 2016 17:41:53 +0100 (CET)"], "10.17.18.16"),
])
def test_provider_internal_hops(chain: list[str], ip: str) -> None:
    hop = entry_hop(chain)
    assert hop is not None and hop.ip == ip_address(ip)


def test_trusted_option_extends_the_reporters_relays() -> None:
    chain = [
        "from fwd.partner.example (fwd.partner.example [192.0.2.30]) by mx.isp.example; "
        "Mon, 23 Nov 2026 10:00:02 +0000",
        "from bad.example (bad.example [198.51.100.1]) by fwd.partner.example; Mon, 23 Nov 2026 10:00:01 +0000",
    ]
    assert entry_hop(chain, trusted=["partner.example"]).ip == ip_address("198.51.100.1")
    assert entry_hop(chain, trusted=["192.0.2.0/24"]).ip == ip_address("198.51.100.1")


def test_fetchmail_retrieval_continues_into_the_mailbox_providers_chain() -> None:
    hop = entry_hop([
        "from pop.mindspring.com [207.69.200.119] by mailgate.cesmail.net with POP3 (fetchmail-6.2.1) "
        "for x (single-drop); Tue, 11 Nov 2003 03:14:28 -0500 (EST)",
        "from yahoo.fr ([198.51.100.3]) by gideon.mail.atl.earthlink.net with ESMTP id 1aj; "
        "Tue, 11 Nov 2003 03:11:35 -0500 (EST)",
    ])
    assert hop is not None and hop.ip == ip_address("198.51.100.3")


def test_loopback_and_link_local_are_never_the_source() -> None:
    assert entry_hop([
        "from localhost (localhost [127.0.0.1]) by mx; Mon, 23 Nov 2026 10:00:00 +0000",
        "from EX (fe80::1%12) by EX2 with Microsoft SMTP Server; Mon, 23 Nov 2026 10:00:00 +0000",
    ]) is None


def test_all_hops_internal_gives_the_innermost_client() -> None:
    hop = entry_hop([
        "from a.isp.example (a.isp.example [192.0.2.2]) by b.isp.example; Mon, 23 Nov 2026 10:00:02 +0000",
        "from c.isp.example (c.isp.example [192.0.2.3]) by a.isp.example; Mon, 23 Nov 2026 10:00:01 +0000",
    ])
    assert hop is not None and hop.ip == ip_address("192.0.2.3")


def test_source_of_reads_a_message_object() -> None:
    msg = message_from_string(
        "Received: from relay.victim.net (relay.victim.net [192.0.2.10])\n"
        "\tby mx.victim.net (Postfix) with ESMTP id 1; Mon, 23 Nov 2026 10:00:02 +0100\n"
        "Received: from spam.example (spam.example [198.51.100.66])\n"
        "\tby relay.victim.net (Postfix) with ESMTP id 2; Mon, 23 Nov 2026 10:00:01 +0100\n"
        "Subject: hi\n\nbody\n")
    hop = source_of(msg)
    assert hop is not None
    assert (hop.ip, hop.time, hop.zone) == (ip_address("198.51.100.66"), utc(2026, 11, 23, 9, 0, 1), "explicit")
    assert hop.evidence.startswith("Received: from spam.example")
    assert source_of(message_from_string("Subject: no chain\n\nx\n")) is None


# --- the parser on whole reports -------------------------------------------------------

def _parse(raw: bytes):
    return ReceivedParser().parse(normalize(raw))


def test_report_transport_headers_are_not_evidence() -> None:
    raw = (b"Received: from spam.example (spam.example [198.51.100.66]) by mx.isp.example; "
           b"Mon, 23 Nov 2026 10:00:01 +0000\nFrom: a@b.example\nSubject: complaint\n\nYou spammed me.\n")
    v = _parse(raw)
    assert not v.applied and not v.incidents and "no forwarded message" in v.reason


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
@pytest.mark.parametrize("name, ip, time", [
    ("received-01.eml", "10.0.0.1", utc(2003, 6, 19, 21, 34, 13)),    # after "Offending message:"
    ("received-02.eml", "10.0.0.1", utc(2003, 6, 19, 21, 34, 13)),    # the same, '>'-quoted
    ("received-03.eml", "204.204.204.204", utc(2003, 6, 19, 21, 34, 24)),  # pasted into the body
    ("spamcop-02.eml", "10.0.0.1", utc(2003, 11, 11, 8, 11, 35)),    # fetchmail hop, no ';' before the date
    ("spamcop-03.eml", "10.0.0.1", utc(2003, 11, 11, 15, 11, 4)),    # forged hop below the entry
    ("spamcop-05.eml", "10.0.0.1", utc(2003, 11, 10, 17, 20, 14)),
])
def test_corpus_carried_chain(name: str, ip: str, time: datetime) -> None:
    chains = carried_chains(normalize((CORPUS / "mail-abuse" / name).read_bytes()))
    assert len(chains) == 1
    hop = entry_hop(chains[0])
    assert hop is not None and (hop.ip, hop.time, hop.zone) == (ip_address(ip), time, "explicit")


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
def test_pasted_chain_gives_one_spam_incident() -> None:
    v = _parse((CORPUS / "mail-abuse" / "received-03.eml").read_bytes())
    assert [(i.ip, i.type, i.time, i.zone, i.parser) for i in v.incidents] == [
        (ip_address("204.204.204.204"), "spam", utc(2003, 6, 19, 21, 34, 24), "explicit", "received")]
    assert "by daver.bungi.com" in v.incidents[0].evidence


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
@pytest.mark.parametrize("name, why", [
    ("mail-abuse/spamcop-01.eml", "SpamCop"),
    ("abuseio/feedback-loop/AOL_example_1.eml", "ARF"),
    ("abuseio/netcraft/Netcraft_Example_1.eml", "X-ARF"),
])
def test_reports_that_name_the_source_are_not_second_guessed(name: str, why: str) -> None:
    # Listed first, received still runs after the authorities (declared priority) and reads their verdicts.
    pipeline = Pipeline.from_config({"parsers": ["received", "arf", "xarf", "spamcop"]})
    report = pipeline.analyse((CORPUS / name).read_bytes())
    assert list(report.verdicts)[-1] == "received"
    v = report.verdicts["received"]
    assert not v.applied and not v.incidents and why in v.reason and "not second-guessed" in v.reason
    assert [x.parser for x in report.verdicts.values() if x.source_stated] == [why.lower().replace("-", "")]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
def test_without_an_authority_in_the_chain_the_carried_chain_is_read() -> None:
    """Nobody ran who names the source (no arf parser configured): the Received chain is the evidence."""
    raw = (CORPUS / "abuseio/feedback-loop/AOL_example_1.eml").read_bytes()
    v = Pipeline.from_config({"parsers": ["received"]}).analyse(raw).verdicts["received"]
    assert v.applied and v.incidents


@pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
def test_source_of_matches_arf_source_ip() -> None:
    """The ARF fallback: on real feedback loops the entry hop is the stated Source-IP."""
    for name, ip in [("Comcast_example_1.eml", "10.17.18.5"), ("Cox_example_1.eml", "10.17.18.7"),
                     ("AOL_example_2.eml", "10.17.18.2"), ("RoadRunner_example_1.eml", "10.17.18.16"),
                     ("Synacor_example_1.eml", "10.17.18.21"), ("Zoho_example_1.eml", "10.17.18.28"),
                     # re-sent copies: a local re-submission in the middle of the chain
                     ("Bluetie_example_1.eml", "10.17.18.3"), ("Fastmail_example_1.eml", "10.17.18.9"),
                     # intranet receivers (store155a.mail.ord1a) and a provider's own relays
                     ("Rackspace_example_1.eml", "10.17.18.14")]:
        msg = normalize((CORPUS / "abuseio" / "feedback-loop" / name).read_bytes())
        hops = [source_of(e) for e in msg.embedded if e.get_all("Received")]
        assert [h.ip for h in hops if h] == [ip_address(ip)], name


def test_rejoin_received_broken_anywhere_by_quoting() -> None:
    """shared normalize.rejoin_headers: a forwarder's client wraps Received lines at any word."""
    text = ("Received: from host-203-0-113-7.isp.example (host-203-0-113-7.isp.example\n"
            "[203.0.113.7]) by mx.customer.example (Postfix) with\n"
            "ESMTP id 8E2; Tue, 24\n"
            "Nov 2026 07:58:10 -0500 (EST)\n"
            "Received: from a (a [192.0.2.1]) by b; Tue, 24 Nov 2026\n"
            "07:58:09 -0500\n"
            "Subject: hello\n"
            "continued prose is not joined to Subject\n")
    lines = rejoin_headers(text).split("\n")
    assert lines[0].endswith("with ESMTP id 8E2; Tue, 24 Nov 2026 07:58:10 -0500 (EST)")
    assert lines[1] == "Received: from a (a [192.0.2.1]) by b; Tue, 24 Nov 2026 07:58:09 -0500"
    assert lines[2:4] == ["Subject: hello", "continued prose is not joined to Subject"]
    hop = entry_hop([lines[0][len("Received: "):]])
    assert hop is not None and (hop.ip, hop.time) == (ip_address("203.0.113.7"), utc(2026, 11, 24, 12, 58, 10))


# --- hostile input -----------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_parse_received_never_raises(value: str) -> None:
    r = parse_received(value)
    assert r.time is None or r.time.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.sampled_from([
    "from h (h [{a}]) by mx; Mon, 23 Nov 2026 10:00:00 +0000",
    "from [{a}] (helo=x) by mx; Mon, 23 Nov 2026 10:00:00 +0000",
    "from unknown (HELO x) ({a}) by mx with SMTP; 23 Nov 2026 10:00:00 -0000",
    "from h ([{a}]:2525 helo=x) by mx (Exim 4.96); Mon, 23 Nov 2026 10:00:00 +0000",
    "from h ({a}) by mx (10.1.1.1) with Microsoft SMTP Server; Mon, 23 Nov 2026 10:00:00 +0000",
]))
def test_any_address_in_any_style_is_found(addr, template: str) -> None:
    text = str(addr) if addr.version == 4 else ("IPv6:" if "h [" in template else "") + str(addr)
    want = addr.ipv4_mapped if addr.version == 6 and addr.ipv4_mapped else addr  # ::ffff:a.b.c.d is IPv4
    assert parse_received(template.format(a=text)).ip == want


def test_header_stuffing_is_bounded() -> None:
    chain = [f"from h{i}.isp.example (h{i}.isp.example [10.0.{i // 250}.{i % 250}]) by h{i - 1}.isp.example; "
             f"Mon, 23 Nov 2026 10:00:00 +0000" for i in range(5000)]
    hop = entry_hop(chain)
    assert hop is not None and hop.index < 100
    huge = parse_received("from " + "(" * 50000 + "x [192.0.2.1] by mx; Mon, 23 Nov 2026 10:00:00 +0000")
    assert huge.time == utc(2026, 11, 23, 10)


def test_date_fallback_for_a_hop_without_date() -> None:
    raw = (b"From: a@example.org\nSubject: spam\nDate: Mon, 23 Nov 2026 10:00:00 +0100\n\n"
           b"Received: from x.example (x.example [192.0.2.5]) by mx.example.org\n")
    assert [(i.time, i.zone) for i in _parse(raw).incidents] == [(None, "none")]
    v = ReceivedParser({"date_fallback": True}).parse(normalize(raw))
    assert [(i.ip, i.time, i.zone) for i in v.incidents] == [
        (ip_address("192.0.2.5"), utc(2026, 11, 23, 9), "date-header")]


def test_config_rejects_bad_trusted_entries() -> None:
    from abuso.config import load
    from abuso.errors import ConfigError

    load({"parsers": [{"received": {"trusted": ["192.0.2.0/24", "mail.example.net"]}}]})
    for bad, key in [({"trusted": "example.net"}, "trusted"), ({"trusted": ["not a domain!"]}, "trusted[0]"),
                     ({"trustd": []}, "trustd")]:
        with pytest.raises(ConfigError) as e:
            load({"parsers": [{"received": bad}]})
        assert f"parsers.received.{key}" in str(e.value)


def test_entry_hop_without_address_stops_the_walk() -> None:
    """Below an entry hop that recorded no address, every header was written by the sender: not evidence."""
    assert entry_hop([
        "from relay.victim.example (relay.victim.example [192.0.2.2]) by store.victim.example; "
        "Mon, 23 Nov 2026 10:00:02 +0000",
        "from mail.spammer.example by relay.victim.example with SMTP; Mon, 23 Nov 2026 10:00:01 +0000",
        "from [198.51.100.1] by mail.spammer.example; Mon, 23 Nov 2026 10:00:00 +0000",
    ]) is None
    # an internal hop without address (demon.net's "by mailstore") is walked past
    hop = entry_hop([
        "from punt-3.mail.demon.net by mailstore for x id 1AJFhy-0004Ba-6Y; Mon, 10 Nov 2003 17:20:18 +0000",
        "from [198.51.100.2] (helo=vn.fi) by punt-3.mail.demon.net with smtp id 1AJFhy-0004Ba-6Y for x; "
        "Mon, 10 Nov 2003 17:20:14 +0000",
    ])
    assert hop is not None and hop.ip == ip_address("198.51.100.2")


def test_a_bounce_is_not_spam_evidence() -> None:
    raw = (b"From: MAILER-DAEMON@mx.remote.example\nTo: abuse@isp.example\nSubject: Undelivered Mail\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
           b"--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
           b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.remote.example\n\n"
           b"Final-Recipient: rfc822; nobody@remote.example\nAction: failed\nStatus: 5.1.1\n"
           b"--b\nContent-Type: message/rfc822\n\n"
           b"Received: from out.isp.example (out.isp.example [192.0.2.25]) by mx.remote.example; "
           b"Mon, 23 Nov 2026 10:00:00 +0000\nFrom: abuse@isp.example\nSubject: your complaint\n\nThanks.\n--b--\n")
    v = _parse(raw)
    assert not v.applied and not v.incidents and "bounce" in v.reason


def test_exchange_machine_names_need_a_server_like_label() -> None:
    def chain(helo: str, below_by: str) -> list[str]:
        return [
            "from relay.corp.example (relay.corp.example [192.0.2.9]) by store.corp.example; "
            "Tue, 24 Nov 2026 14:02:05 +0000",
            f"from {helo} (198.51.100.70) by relay.corp.example (192.0.2.9) with Microsoft SMTP Server id 15.2; "
            "Tue, 24 Nov 2026 14:02:04 +0000",
            f"from x.example (203.0.113.45) by {below_by} (10.1.1.1) with Microsoft SMTP Server id 15.2; "
            "Tue, 24 Nov 2026 14:02:03 +0000",
        ]
    assert entry_hop(chain("EX01SRV0042.a.example", "EX01SRV0042.b.example")).ip == ip_address("203.0.113.45")
    assert entry_hop(chain("mail.a.example", "mail.b.example")).ip == ip_address("198.51.100.70")


def test_pasted_chain_survives_double_spacing_and_prose_separates_messages() -> None:
    text = ("Here are the headers:\n\n"
            "Received: from relay.victim.example (relay.victim.example [192.0.2.2])\n"
            "    by store.victim.example; Mon, 23 Nov 2026 10:00:02 +0000\n\n"
            "Received: from spammer.example (spammer.example [198.51.100.1])\n"
            "    by relay.victim.example; Mon, 23 Nov 2026 10:00:01 +0000\n"
            "Subject: buy\n\n"
            "Buy now!\n\nAnd another one:\n"
            "Received: from other.example (other.example [203.0.113.9]) by mx.victim.example; "
            "Mon, 23 Nov 2026 11:00:00 +0000\n")
    chains = list(chains_in_text(text))
    assert [len(c) for c in chains] == [2, 1]
    assert [entry_hop(c).ip for c in chains] == [ip_address("198.51.100.1"), ip_address("203.0.113.9")]


def test_resubmitted_copy_is_walked_from_the_mailbox_that_resent_it() -> None:
    resent = [
        "from outbound004.roc2.bluetie.com (outbound004.roc2.bluetie.com [208.89.132.144]) by mxh.fbl.example "
        "(Postfix) with ESMTP id D; Tue, 19 Jan 2016 09:54:47 -0700",
        "from mstore010.roc2.bluetie.com ([10.200.3.104]) by outbound004.roc2.bluetie.com with outbound004 id 7; "
        "Tue, 19 Jan 2016 11:54:46 -0500",
        "by mstore010.roc2.bluetie.com (Postfix, from userid 3118234) id 7EE; Tue, 19 Jan 2016 11:54:46 -0500",
        "from inbound004.roc2.bluetie.com (inbound004.roc2.bluetie.com [10.200.2.204]) by mstore010.roc2.bluetie.com "
        "(Postfix) with ESMTP id D55; Sat, 16 Jan 2016 01:10:15 -0500",
        "from sender.example ([198.51.100.3]) by inbound004.roc2.bluetie.com with inbound001 id 6W; "
        "Sat, 16 Jan 2016 01:10:14 -0500",
    ]
    hop = entry_hop(resent)
    assert hop is not None and (hop.ip, hop.index) == (ip_address("198.51.100.3"), 4)
    # A re-submission header that no lower hop connects to its host is not trusted: the walk stops
    # at the real entry above it.
    forged = [resent[0], "by elsewhere.example (Postfix, from userid 1) id 1; Tue, 19 Jan 2016 11:54:46 -0500",
              "from [192.0.2.99] by other.example; Tue, 19 Jan 2016 11:54:45 -0500"]
    assert entry_hop(forged).ip == ip_address("208.89.132.144")
    # The sender's own local submission at the bottom changes nothing.
    bottom = [resent[0], "by outbound004.roc2.bluetie.com (Postfix, from userid 48) id 2; "
              "Tue, 19 Jan 2016 11:54:40 -0500"]
    assert entry_hop(bottom).ip == ip_address("208.89.132.144")


def test_one_incident_per_carried_spam() -> None:
    def spam(ip: str, minute: int) -> str:
        return ("Content-Type: message/rfc822\n\n"
                f"Received: from s.example (s.example [{ip}]) by mx.victim.example; "
                f"Mon, 23 Nov 2026 10:{minute:02d}:00 +0000\nSubject: spam\n\nbuy\n")
    raw = ("From: user@victim.example\nSubject: three spams\nMIME-Version: 1.0\n"
           "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nattached\n"
           f"--b\n{spam('192.0.2.1', 1)}--b\n{spam('192.0.2.2', 2)}--b\n{spam('192.0.2.1', 1)}--b--\n").encode()
    v = _parse(raw)
    assert [(str(i.ip), i.time) for i in v.incidents] == [("192.0.2.1", utc(2026, 11, 23, 10, 1)),
                                                          ("192.0.2.2", utc(2026, 11, 23, 10, 2))]
    assert v.reason == "entry hop of 3 Received chains"


def test_header_time_without_offset_in_a_dst_region() -> None:
    from abuso import timestamps

    if not hasattr(timestamps, "zone_tzinfo"):
        pytest.skip("region zones arrive with the log parser's timestamps module")
    r = parse_received("from a (a [192.0.2.1]) by b; Wed, 15 Jul 2026 10:00:00", default_zone="Europe/Berlin")
    assert r.time == utc(2026, 7, 15, 8)  # CEST, +02:00


def test_sendmail_ident_is_not_part_of_the_verified_name() -> None:
    r = parse_received("from helo (spam@dsl-9.isp.example [198.51.100.19]) by mx.victim.example (8.17.1/8.17.1); "
                       "Mon, 23 Nov 2026 10:00:00 +0000")
    assert (r.ip, r.name) == (ip_address("198.51.100.19"), "dsl-9.isp.example")
