"""Roles of addresses in free text (issue 11 classes 4, 5 and 10): the reporter's words are weak
hints, whois blocks are context, tables that name both ends accuse only their source column."""

from __future__ import annotations

from abuso.addresses import find_addresses
from abuso.normalize import normalize
from abuso.parsers.log import LogParser
from abuso.parsers.log.roles import line_roles


def message(body: str, subject: str = "report") -> bytes:
    return (f"From: r@example.org\nTo: abuse@example.net\nSubject: {subject}\n"
            "Date: Wed, 25 Nov 2026 12:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n" + body).encode()


def found(body: str, subject: str = "report") -> set[tuple[str, str | None]]:
    v = LogParser({}).parse(normalize(message(body, subject)))
    return {(str(i.ip), i.time.isoformat() if i.time else None) for i in v.incidents}


def roles(line: str) -> list[tuple[str, str, bool]]:
    return [(str(r.ip), r.kind, r.weak) for r in line_roles(line, find_addresses(line))]


# --- class 4: the reporter's words -----------------------------------------------------------


def test_the_label_nearest_the_address_wins() -> None:
    assert roles("Scanning of our web server from 198.51.100.7") == [("198.51.100.7", "source", False)]
    assert roles("attacks from our network to 192.0.2.1") == [("192.0.2.1", "victim", True)]
    assert roles("our mail relay 192.0.2.25 was hit by 203.0.113.3") == [
        ("192.0.2.25", "victim", True), ("203.0.113.3", "source", False)]


def test_our_must_name_a_thing_with_an_address() -> None:
    assert roles("our logs show 203.0.113.61 hammering the gateway") == [("203.0.113.61", "unclear", False)]
    assert roles("on our customer's web server 192.0.2.10") == [("192.0.2.10", "victim", True)]


def test_fields_and_arrows_are_strong_victims() -> None:
    assert roles("DST=192.0.2.1") == [("192.0.2.1", "victim", False)]
    assert roles("Destination: 192.0.2.5") == [("192.0.2.5", "victim", False)]
    assert roles("198.51.100.7:5022 -> 192.0.2.8:22") == [("198.51.100.7", "unclear", False),
                                                        ("192.0.2.8", "victim", False)]


def test_log_lines_accuse_an_address_the_subject_called_ours() -> None:
    body = ('198.51.100.77 - - [24/Nov/2026:08:41:12 +0000] "GET /a.php HTTP/1.1" 404 153 "-" "curl/8.4.0"\n'
            '198.51.100.77 - - [24/Nov/2026:08:41:13 +0000] "GET /b.php HTTP/1.1" 404 153 "-" "curl/8.4.0"\n')
    # Even where the subject's wording makes it "ours", the lines that accuse it win.
    assert found(body, "Requests against our server 198.51.100.77") == {
        ("198.51.100.77", "2026-11-24T08:41:12+00:00"), ("198.51.100.77", "2026-11-24T08:41:13+00:00")}


def test_a_host_field_beside_a_labelled_source_stays_the_victim() -> None:
    body = ("Attacks on our server 192.0.2.10:\n\n"
            "Nov 24 08:44:02 192.0.2.10 sshd[2211]: Failed password for root from 198.51.100.77 port 50412 ssh2\n")
    assert found(body) == {("198.51.100.77", "2026-11-24T08:44:02+00:00")}


def test_a_strong_victim_is_never_accused_by_a_log_line() -> None:
    body = ("Target: 192.0.2.44\n\n"
            "2026-11-24T08:00:01Z 192.0.2.44 connection reset\n"
            "2026-11-24T08:00:02Z SRC=203.0.113.8 DST=192.0.2.44 DPT=22\n")
    assert found(body) == {("203.0.113.8", "2026-11-24T08:00:02+00:00")}


# --- class 5: pasted whois ---------------------------------------------------------------------

RIPE = """% Information related to '203.0.113.0 - 203.0.113.255'

inetnum:        203.0.113.0 - 203.0.113.255
netname:        EXAMPLE-HOSTING
descr:          gateway 203.0.113.1
created:        2019-03-04T10:22:31Z
last-modified:  2024-07-15T08:01:09Z
source:         RIPE
"""
LACNIC = """inetnum:     200.160.0.0/20
owner:       Example Provedor Ltda
ownerid:     BR-EXPR-LACNIC
nserver:     ns1.example.com.br 200.160.2.3
nsstat:      20241101 AA
created:     20030101
changed:     20200101
"""
ARIN = """NetRange:       198.51.100.0 - 198.51.100.255
CIDR:           198.51.100.0/24
NetName:        EXAMPLE-NET-2
RegDate:        2012-05-01
Updated:        2023-01-10
OrgAbuseEmail:  abuse@example.net
"""


def test_whois_blocks_are_found_by_their_registry_keys() -> None:
    from abuso.parsers.log.whois import whois_lines

    lines = ("Whois:\n\n" + RIPE + "\nThanks.").split("\n")
    got = whois_lines(lines)
    assert lines.index("% Information related to '203.0.113.0 - 203.0.113.255'") in got
    assert lines.index("source:         RIPE") in got
    assert lines.index("Whois:") not in got and lines.index("Thanks.") not in got
    # A report's own fields share some words with whois, but no registry key: not a block.
    report = ["Source: 203.0.113.9", "Created: 2026-11-24 10:00", "Status: open", "Country: NL"]
    assert whois_lines(report) == set()


def test_no_address_of_a_whois_block_is_accused() -> None:
    for block in (RIPE, LACNIC, ARIN):
        assert found("SSH brute force from 203.0.113.45 on Nov 24 08:00:01\n\n" + block) == {
            ("203.0.113.45", "2026-11-24T08:00:01+00:00")}, block


def test_whois_dates_date_nothing() -> None:
    # The record heading rule ("Date: ..." above an address) must not take a whois "created:".
    body = RIPE + "\n\n\n\nOffending IP: 203.0.113.45\n"
    assert found(body) == {("203.0.113.45", None)}
    body = "Offending IP: 203.0.113.45\n" + LACNIC
    assert found(body) == {("203.0.113.45", None)}


def test_a_report_field_beside_a_whois_block_is_still_read() -> None:
    body = "Source: 203.0.113.9\n" + RIPE
    assert found(body) == {("203.0.113.9", None)}


# --- class 10: tables that name both ends ------------------------------------------------------


def test_an_aligned_table_accuses_only_its_source_column() -> None:
    body = ("Date                 Sourceip         port   destips\n"
            "-------------------  ---------------  -----  ----------------------\n"
            "2026-11-27 03:12:01  203.0.113.80     22     192.0.2.10 192.0.2.11\n"
            "2026-11-27 03:12:09  198.51.100.31    3389   192.0.2.12, 192.0.2.25\n")
    assert found(body) == {("203.0.113.80", "2026-11-27T03:12:01+00:00"),
                           ("198.51.100.31", "2026-11-27T03:12:09+00:00")}


def test_destination_first_tables_and_single_space_headers() -> None:
    body = ("time dst_ip src_ip proto\n"
            "2026-11-27 03:12:01 192.0.2.10 203.0.113.80 tcp\n")
    assert found(body) == {("203.0.113.80", "2026-11-27T03:12:01+00:00")}


def test_a_row_with_one_end_masked_puts_the_other_in_its_own_column() -> None:
    body = ("time                protocol src_ip src_port          dest_ip dest_port\n"
            "Fri Nov 27 03:12:01 2026 TCP     XXX.X.XX.XX 49348 =     192.0.2.17 9852\n"
            "Fri Nov 27 03:12:05 2026 TCP     203.0.113.7 49350 =     192.0.2.17 9852\n")
    assert found(body) == {("203.0.113.7", "2026-11-27T03:12:05+00:00")}


def test_a_comma_list_in_the_last_column_of_a_csv_table_stays_in_it() -> None:
    body = ("Date, Source IP, Port, Destination IPs\n"
            "2026-11-27 04:00:00, 203.0.113.81, 22, 192.0.2.40, 192.0.2.41, 192.0.2.42\n")
    assert found(body) == {("203.0.113.81", "2026-11-27T04:00:00+00:00")}


def test_a_sentence_of_column_words_is_not_a_header() -> None:
    from abuso.parsers.log.table import spaced_header

    assert spaced_header("Source and destination addresses follow") is None
    assert spaced_header("source ip to destination ip") is None
    assert spaced_header("Date  Sourceip  port  destips") is not None


def test_the_reports_own_relay_is_the_host_field_of_its_pasted_log() -> None:
    relay = "Received: from mx1.reporter.example (mx1.reporter.example [192.0.2.25]) by mx.example.net; " \
            "Sat, 28 Nov 2026 07:02:11 +0000\n"
    line = ("Nov 28 06:10:02 192.0.2.25 postfix/smtpd[771]: NOQUEUE: reject: RCPT from unknown[203.0.113.19]: "
            "554 5.7.1 Relay access denied\n")
    raw = relay.encode() + message(line)
    v = LogParser({}).parse(normalize(raw))
    assert {str(i.ip) for i in v.incidents} == {"203.0.113.19"}
    # Without the Received header the line alone cannot tell the host field from the client.
    assert {str(i.ip) for i in LogParser({}).parse(normalize(message(line))).incidents} == {
        "192.0.2.25", "203.0.113.19"}
    # Alone on its line (an anonymised report reusing an address), a relay is still accused.
    alone = "Nov 28 06:10:02 192.0.2.25 probed port 22\n"
    assert {str(i.ip) for i in LogParser({}).parse(normalize(relay.encode() + message(alone))).incidents} == {
        "192.0.2.25"}


def test_jpnic_bracketed_whois_is_context_too() -> None:
    jpnic = ("a. [Network Number]            203.0.113.0/24\n"
             "b. [Network Name]              EXAMPLE-NET\n"
             "g. [Organization]              Example K.K.\n"
             "p. [Nameserver]                ns1.example.jp 203.0.113.53\n"
             "[Assigned Date]                2004/06/01\n"
             "[Last Update]                  2024/06/01 01:05:24(JST)\n")
    assert found("Offending IP: 203.0.113.45\n" + jpnic) == {("203.0.113.45", None)}


def test_a_line_label_of_the_reporters_words_is_weak_too() -> None:
    assert roles("Our logs: 203.0.113.9 again") == [("203.0.113.9", "victim", True)]
    assert roles("Reporter: 192.0.2.1") == [("192.0.2.1", "victim", False)]
    body = ("Our logs: 203.0.113.9 again\n\n"
            "2026-11-24T08:00:01Z 203.0.113.9 GET /wp-admin 404\n")
    assert found(body) == {("203.0.113.9", "2026-11-24T08:00:01+00:00")}


def test_a_host_field_beside_another_unlabelled_address_is_not_accused_against_the_prose() -> None:
    body = ("Connections to 192.0.2.1:\n\n"
            "Nov 24 10:00:00 192.0.2.1 sshd[1]: Connection closed by 203.0.113.5 port 4022 [preauth]\n")
    assert {ip for ip, _ in found(body)} == {"203.0.113.5"}


def test_labels_before_an_address_are_read_alike_whatever_the_digits() -> None:
    """The labels' spans are kept by the text with its digits made 0: the same spans as searching
    the text itself, for every address of every sample message and for digits inside labels."""
    from pathlib import Path

    from abuso.parsers.log import roles as r

    def direct(before: str) -> tuple:
        m, src = r._VICTIM_BEFORE.search(before), r._SOURCE_BEFORE.search(before)
        return (m.span() if m else None, src.span() if src else None)

    befores = ["our 2 servers ", "our server2 ", "src9= ", "Src: ", "DST=", "[7.007] DROP SRC=", "mon1 ",
               "user u17 from ", "user u1 from ", "9 -> ", "ip6: ", "to 4 ", "against 12 "]
    for path in sorted((Path(__file__).resolve().parent.parent / "samples").rglob("*.eml")):
        for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
            befores += [line[max(0, f.start - 40):f.start] for f in find_addresses(line)]
    assert len(befores) > 200
    for before in befores:
        assert r._labels_before(before) == direct(before), before
