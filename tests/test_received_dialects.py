"""Every Received dialect in the wild yields its client's address (what the receiving MTA saw).

One line per MTA shape, written after each software's own format: the HELO/EHLO
name or literal is the client's claim, a loopback written first (Yahoo's proxy)
is not the client, and the ``by`` clause (versions, the receiver's own address)
is never read for it.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from abuso.parsers.received import entry_hop, parse_received

D = "Thu, 29 Apr 2026 23:45:06 -0800"

DIALECTS = [
    # qmail-smtpd: "from <rdns|unknown> (HELO <claim>) (<addr>)", optionally "user@addr" when authenticated
    ("qmail", f"from unknown (HELO mx.sender.example) (192.0.2.8) by mail.victim.example with SMTP; {D}",
     "192.0.2.8"),
    ("qmail-rdns", f"from mx.sender.example (HELO mx.sender.example) (192.0.2.8) by mail.victim.example with SMTP; {D}",
     "192.0.2.8"),
    ("qmail-auth", f"from unknown (HELO laptop) (joe@192.0.2.8) by mail.victim.example with SMTP; {D}", "192.0.2.8"),
    ("qmail-helo-literal", f"from unknown (HELO 203.0.113.99) (192.0.2.8) by mail.victim.example with SMTP; {D}",
     "192.0.2.8"),
    ("qmail-scanner", f"from 192.0.2.8 by mail.victim.example (envelope-from <a@b.example>, uid 1013) with "
     f"qmail-scanner-1.25 (clamdscan: 0.90.2/3156. Clear:RC:0(198.51.100.7):SA:0(1.4/5.0):.); {D}", "192.0.2.8"),
    # Yahoo: the proxy writes a loopback first, the EHLO claim, then the client's address
    ("yahoo", f"from 127.0.0.1 (EHLO mx8.sender.example) (192.0.2.8) by mta34.mail.g9.yahoo.com with SMTP; {D}",
     "192.0.2.8"),
    ("yahoo-sonic", f"from sonic.sender.example (EHLO sonic.sender.example) (192.0.2.8) by "
     f"sonic311.consmr.mail.gq1.yahoo.com with HTTP; {D}", "192.0.2.8"),
    ("yahoo-webmail", f"from [192.0.2.8] by web12345.mail.yahoo.com via HTTP; {D}", "192.0.2.8"),
    # Google: a trailing dot on the verified name
    ("google", f"from mx.sender.example (mx.sender.example. [192.0.2.8]) by mx.google.com with ESMTPS id "
     f"a1si123 for <x@gmail.example> (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); {D}", "192.0.2.8"),
    ("google-unknown", f"from sender.example (unknown [2001:db8:5::8]) by mx.google.com with ESMTP id b2; {D}",
     "2001:db8:5::8"),
    # Outlook / Office 365: "(addr)" after the name, the frontend's own address in the by clause
    ("o365-inbound", f"from mx.sender.example (192.0.2.8) by AM4PEPF00027A6B.mail.protection.outlook.com "
     f"(10.167.16.89) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA) id 15.20.7 via "
     f"Frontend Transport; {D}", "192.0.2.8"),
    ("outlook-hotmail", f"from COL004-W12 ([192.0.2.8]) by col004-omc2s2.hotmail.com with Microsoft "
     f"SMTPSVC(7.5.7601.23143); {D}", "192.0.2.8"),
    ("outlook-ipv6", f"from AM0PR01MB1234.eurprd01.prod.exchangelabs.com (2001:db8:208:1::8) by "
     f"AM0PR01MB5678.eurprd01.prod.exchangelabs.com with HTTPS; {D}", "2001:db8:208:1::8"),
    # Exim
    ("exim", f"from mx.sender.example ([192.0.2.8]:51234 helo=mx.sender.example) by mail.victim.example with "
     f"esmtps (TLS1.2) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (Exim 4.94.2) (envelope-from <a@b.example>) "
     f"id 1kXyZ-0001 for c@victim.example; {D}", "192.0.2.8"),
    ("exim-nameless", f"from [192.0.2.8] (helo=203.0.113.99) by mail.victim.example with smtp (Exim 4.96); {D}",
     "192.0.2.8"),
    ("exim-port-ipv6", f"from [2001:db8::8] (port=4242 helo=x) by mail.victim.example with esmtp (Exim 4.96); {D}",
     "2001:db8::8"),
    # Postfix
    ("postfix", f"from mx.sender.example (mx.sender.example [192.0.2.8]) by mail.victim.example (Postfix) with "
     f"ESMTPS id 4Xyz for <c@victim.example>; {D}", "192.0.2.8"),
    ("postfix-unknown-helo-literal", f"from [203.0.113.99] (unknown [192.0.2.8]) by mail.victim.example (Postfix) "
     f"with ESMTP id 4Q; {D}", "192.0.2.8"),
    ("postfix-ipv6", f"from mx (unknown [IPv6:2001:db8::8]) by mail.victim.example (Postfix) with ESMTP id 4Q; {D}",
     "2001:db8::8"),
    # Sendmail
    ("sendmail", f"from helo.sender.example (rdns.sender.example [192.0.2.8]) by mail.victim.example "
     f"(8.15.2/8.15.2) with ESMTP id 0A1B for <c@victim.example>; {D}", "192.0.2.8"),
    ("sendmail-forged", f"from helo.sender.example (rdns.sender.example [192.0.2.8] (may be forged)) by "
     f"mail.victim.example (8.14.4/8.14.4) with ESMTP id 0A1B; {D}", "192.0.2.8"),
    ("sendmail-ident", f"from helo (root@rdns.sender.example [192.0.2.8]) by mail.victim.example (8.14.7/8.14.7) "
     f"with ESMTP id 0A1B; {D}", "192.0.2.8"),
    ("sendmail-no-rdns", f"from helo.sender.example ([192.0.2.8]) by mail.victim.example (8.13.1/8.13.1) with "
     f"SMTP id 0A1B; {D}", "192.0.2.8"),
    # Exchange on premises
    ("exchange", f"from mx.sender.example (192.0.2.8) by EX01.victim.example (10.1.1.1) with Microsoft SMTP "
     f"Server (TLS) id 14.3.123.3; {D}", "192.0.2.8"),
    ("exchange-smtpsvc", f"from mail.sender.example ([192.0.2.8]) by exch.victim.example with Microsoft "
     f"SMTPSVC(6.0.3790.4675); {D}", "192.0.2.8"),
    # Courier
    ("courier", f"from mx.sender.example (mx.sender.example [192.0.2.8]) (AUTH: LOGIN joe, TLS: TLSv1/SSLv3,"
     f"256bits,AES256-SHA) by mail.victim.example with ESMTPSA; {D}", "192.0.2.8"),
    ("courier-mapped", f"from mx.sender.example (mx.sender.example [::ffff:192.0.2.8]) by mail.victim.example "
     f"with ESMTP; {D}", "192.0.2.8"),
    ("courier-old", f"from mx.sender.example ([192.0.2.8]) by mail.victim.example with esmtp; {D}", "192.0.2.8"),
    # Zimbra: Postfix at the edge, LMTP with qmail-like parentheses inside
    ("zimbra-mta", f"from mx.sender.example (mx.sender.example [192.0.2.8]) by zmta.victim.example (Postfix) with "
     f"ESMTPS id 4B; {D}", "192.0.2.8"),
    ("zimbra-lmtp", f"from zmta.sender.example (LHLO zmta.sender.example) (192.0.2.8) by zmbox.victim.example with "
     f"LMTP; {D}", "192.0.2.8"),
    # Haraka
    ("haraka", f"from mx.sender.example (mx.sender.example [192.0.2.8]) by haraka.victim.example (Haraka/2.8.28) "
     f"with ESMTPS id 8C4E0F2A-1B2C-4D5E-9F00-A1B2C3D4E5F6.1 envelope-from <a@b.example> tls "
     f"TLS_AES_256_GCM_SHA384; {D}", "192.0.2.8"),
    ("haraka-nameless", f"from helo.sender.example (Unknown [192.0.2.8]) by haraka.victim.example "
     f"(Haraka/3.0.3) with ESMTP id 1A; {D}", "192.0.2.8"),
    # KumoMTA: "from <ehlo> (<peer>)"; the by clause names the version, sometimes an address-like one
    ("kumomta", f"from mx.sender.example (192.0.2.8) by mta.kumo.example (KumoMTA 2024.06.10-84e84b89) with ESMTP "
     f"id 459cb2c1903011f19f1302c9fa07781d for <c@victim.example>; {D}", "192.0.2.8"),
    ("kumomta-version-address", f"from mx.sender.example (192.0.2.8) by mta.kumo.example (KumoMTA 10.97.242.83) "
     f"with ESMTP id 999e56c6 for <c@victim.example>; {D}", "192.0.2.8"),
]


@pytest.mark.parametrize("header, ip", [(h, ip) for _, h, ip in DIALECTS], ids=[d for d, _, _ in DIALECTS])
def test_dialect_gives_the_client_address(header: str, ip: str) -> None:
    got = parse_received(header)
    assert got.ip == ip_address(ip)
    assert got.time is not None and got.zone == "explicit"


@pytest.mark.parametrize("header, ip", [(h, ip) for _, h, ip in DIALECTS], ids=[d for d, _, _ in DIALECTS])
def test_dialect_alone_is_the_entry_hop(header: str, ip: str) -> None:
    """A one-header chain (the provider's own line in a feedback loop's copy) names its client."""
    hop = entry_hop([header])
    assert hop is not None and hop.ip == ip_address(ip)


def test_loopback_first_word_never_wins_over_the_address_seen() -> None:
    r = parse_received("from 127.0.0.1 (EHLO mx.sender.example) (192.0.2.8) by mta.provider.example with SMTP; "
                       + D)
    assert r.ip == ip_address("192.0.2.8") and r.helo == "mx.sender.example"


def test_helo_claim_is_not_the_client_when_an_address_was_seen() -> None:
    r = parse_received(f"from unknown (HELO 203.0.113.99) (192.0.2.8) by mx.victim.example; {D}")
    assert r.ip == ip_address("192.0.2.8") and not r.from_helo


# --- whole chains as the big providers write them: the entry hop is the sender's -------------

C = "Tue, 24 Nov 2026 10:00:0{} +0000"
PROVIDER_CHAINS = {
    "office365": [
        f"from DM6PR11MB1234.namprd11.prod.outlook.com (2603:10b6:5:1::10) by SN6PR11MB5678.namprd11.prod.outlook.com"
        f" with HTTPS; {C.format(5)}",
        f"from BN9PR03CA0001.namprd03.prod.outlook.com (2603:10b6:408:13e::6) by DM6PR11MB1234.namprd11.prod.outlook"
        f".com (2603:10b6:5:1::10) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE) id 15.20.1; "
        f"{C.format(4)}",
        f"from BN8NAM11FT012.eop-nam11.prod.protection.outlook.com (2603:10b6:408:13e:cafe::1) by BN9PR03CA0001."
        f"outlook.office365.com (2603:10b6:408:13e::6) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE) "
        f"id 15.20.1 via Frontend Transport; {C.format(4)}",
        f"from mx.sender.example (192.0.2.8) by BN8NAM11FT012.mail.protection.outlook.com (10.13.177.1) with Microsoft "
        f"SMTP Server (version=TLS1_2, cipher=TLS_ECDHE) id 15.20.1 via Frontend Transport; {C.format(3)}"],
    "gmail": [
        f"by 2002:a05:7000:1234:b0:5a1:1234:5678 with SMTP id abc; {C.format(5)}",
        f"from mx.sender.example (mx.sender.example. [192.0.2.8]) by mx.google.com with ESMTPS id x.123 for "
        f"<u@gmail.example> (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); {C.format(3)}",
        f"from [10.0.0.5] (unknown [10.0.0.5]) by mx.sender.example (Postfix) with ESMTPSA id 1; {C.format(1)}"],
    "yahoo": [f"from 127.0.0.1 (EHLO mx.sender.example) (192.0.2.8) by mta34.mail.gq1.yahoo.com with SMTP; "
              f"{C.format(3)}"],
    "hotmail": [f"from BAY004-MC1F12.hotmail.com ([192.0.2.8]) by BAY004-OMC1S12.hotmail.com with Microsoft "
                f"SMTPSVC(7.5.7601.23143); {C.format(3)}"],
    "aol": [f"from mx.sender.example (mx.sender.example [192.0.2.8]) by mtaig-maa01.mx.aol.com (Internet Inbound) "
            f"with ESMTPS id 4A; {C.format(3)}",
            f"from localhost (localhost [127.0.0.1]) by mx.sender.example (Postfix) with ESMTP id 2; {C.format(1)}"],
    "comcast": [f"from resomta-ch2-01v.sys.comcast.net ([69.252.207.97]) by resimta-ch2-05v.sys.comcast.net with "
                f"ESMTP id x; {C.format(4)}",
                f"from mx.sender.example ([192.0.2.8]) by resomta-ch2-01v.sys.comcast.net with ESMTP id y; "
                f"{C.format(3)}"],
    "zimbra": [
        f"from zmbox.victim.example (LHLO zmbox.victim.example) (10.9.9.9) by zmbox.victim.example with LMTP; "
        f"{C.format(5)}",
        f"from localhost (localhost [127.0.0.1]) by zmta.victim.example (Postfix) with ESMTP id 3; {C.format(4)}",
        f"from zmta.victim.example ([127.0.0.1]) by localhost (zmta.victim.example [127.0.0.1]) (amavisd-new, port "
        f"10032) with ESMTP id 4; {C.format(4)}",
        f"from mx.sender.example (mx.sender.example [192.0.2.8]) by zmta.victim.example (Postfix) with ESMTPS id 5; "
        f"{C.format(3)}"],
}


@pytest.mark.parametrize("chain", list(PROVIDER_CHAINS.values()), ids=list(PROVIDER_CHAINS))
def test_provider_chain_entry_hop_is_the_sender(chain: list[str]) -> None:
    hop = entry_hop(chain)
    assert hop is not None and hop.ip == ip_address("192.0.2.8")
    assert hop.time is not None and hop.time.second == 3  # the entry hop's own date, not a later one
