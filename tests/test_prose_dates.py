"""Dates written in prose (issue 8.1, issue 11 class 7): the fast readers, not dateparser, read them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from abuso import datefallback, timestamps
from abuso.timestamps import find_timestamps, parse_timestamp
from abuso.zones import zone_tzinfo

from .test_log_parser import keys, parse


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


PLUS1 = timedelta(hours=1)


@pytest.mark.parametrize("line, want, zone", [
    ("wurde am 12.11.2026 um 23:14:05 Uhr (MEZ) ein Angriff", utc(2026, 11, 12, 22, 14, 5), "explicit"),
    ("am 14. Juli 2026 um 09:30 Uhr (MESZ) hat", utc(2026, 7, 14, 7, 30), "explicit"),
    ("el 12/11/2026 a las 21:05:33 (GMT-3).", utc(2026, 11, 13, 0, 5, 33), "explicit"),
    ("el 12 de noviembre de 2026 a las 21:05 (hora de Madrid)", utc(2026, 11, 12, 20, 5), "explicit"),
    ("le 12/11/2026 à 14h37 (heure de Paris).", utc(2026, 11, 12, 13, 37), "explicit"),
    ("le 3 juillet 2026 à 14h37 (heure de Paris)", utc(2026, 7, 3, 12, 37), "explicit"),  # summer: +2
    ("il 12/11/2026 alle ore 16:20:00 (ora italiana).", utc(2026, 11, 12, 15, 20), "explicit"),
    ("Op 12-11-2026 om 08:15:10 (CET) heeft", utc(2026, 11, 12, 7, 15, 10), "explicit"),
    ("op 12 maart 2026 om 08:15 uur", utc(2026, 3, 12, 7, 15), "date-header"),
    ("em 12 de novembro de 2026 às 18:45:00 (horário de Brasília).", utc(2026, 11, 12, 21, 45), "explicit"),
    ("on 2026-11-12 between 10:00 and 10:30 UTC.", utc(2026, 11, 12, 10), "explicit"),
    ("on 12 Nov 2026 from 14:05 to 14:20 CET.", utc(2026, 11, 12, 13, 5), "explicit"),
    ("am 12.11.2026 zwischen 10:00 und 10:30 Uhr", utc(2026, 11, 12, 9), "date-header"),
    ("on 11/12/2026 at 10:00 UTC", utc(2026, 11, 12, 10), "explicit"),    # English words: month first
    ("el 11/12/2026 a las 10:00 (UTC)", utc(2026, 12, 11, 10), "explicit"),  # Spanish: day first
    # A clock with a dot, right after a prose word.
    ("il 12/11/2026 alle ore 16.20 (ora italiana)", utc(2026, 11, 12, 15, 20), "explicit"),
    ("op 12-11-2026 om 08.15 uur", utc(2026, 11, 12, 7, 15), "date-header"),
    ("am 12.11.2026 um 23.14 Uhr (MEZ)", utc(2026, 11, 12, 22, 14), "explicit"),
    # The clock first, then the date.
    ("attacks at 14:05 UTC on 12 November 2026.", utc(2026, 11, 12, 14, 5), "explicit"),
    ("between 10:00 and 10:30 UTC on 2026-11-12", utc(2026, 11, 12, 10), "explicit"),
    ("at 3:14 PM EST on November 12, 2026", utc(2026, 11, 12, 20, 14), "explicit"),
    ("seen 10:00:00 on 11/12/2026 from the host", utc(2026, 11, 12, 9), "date-header"),   # English: month first
    ("um 23:14:05 Uhr (MEZ) am 12.11.2026", utc(2026, 11, 12, 22, 14, 5), "explicit"),
    ("à 14h37 (heure de Paris) le 12/11/2026", utc(2026, 11, 12, 13, 37), "explicit"),
])
def test_prose_dates_take_the_fast_path(line: str, want: datetime, zone: str) -> None:
    before = timestamps.FALLBACK_CALLS[0]
    found = find_timestamps(line, header_offset=PLUS1, fallback=True)
    assert timestamps.FALLBACK_CALLS[0] == before, "dateparser was asked"
    assert [(s.time, s.zone) for s in found] == [(want, zone)]



@pytest.mark.parametrize("line", ["version 1.2.3.45 at 10.20", "host 10.1.2.3 om 12.30", "ratio 12.50 at 3.14"])
def test_a_dot_between_digits_is_no_clock_without_a_date(line: str) -> None:
    assert find_timestamps(line, header_offset=PLUS1) == []


def test_an_offset_after_seconds_is_no_range() -> None:
    s = parse_timestamp("2015-05-15 17:03:11-07:00")
    assert s is not None and s.time == utc(2015, 5, 16, 0, 3, 11)


def test_zone_names_in_words_resolve_through_zones() -> None:
    paris = zone_tzinfo("heure de Paris")
    assert paris is not None and datetime(2026, 7, 1, tzinfo=paris).utcoffset() == timedelta(hours=2)
    assert zone_tzinfo("horário de Brasília") is not None
    assert zone_tzinfo("ora italiana") is not None
    assert zone_tzinfo("heure de nulle part") is None


def test_unknown_words_in_parentheses_are_no_zone() -> None:
    [s] = find_timestamps("am 12.11.2026 um 10:00 Uhr (siehe unten)", header_offset=PLUS1)
    assert (s.time, s.zone) == (utc(2026, 11, 12, 9), "date-header")


def test_a_terse_subject_dates_its_address() -> None:
    v = parse("Thanks.", subject="Abuse from 192.0.2.45 at 2026-11-12T03:14:07 UTC")
    assert keys(v) == {("192.0.2.45", "undetermined", "2026-11-12T03:14:07+00:00")}
    # A stamp merely appended to the subject dates the report, not the event.
    v = parse("Please stop it.", subject="Spam from 192.0.2.44 - Tue, 24 Nov 2026 10:00:00 +0000")
    assert keys(v) == {("192.0.2.44", "spam", None)}
    # The body's own times win over the subject's.
    v = parse("2026-11-12 05:00:00 +0000 DROP SRC=192.0.2.46", subject="Scan from 192.0.2.46 at 2026-11-12 04:00 UTC")
    assert keys(v) == {("192.0.2.46", "scanner", "2026-11-12T05:00:00+00:00")}


# --- dateparser: only a bounded fallback ------------------------------------------------------------


def test_text_without_a_day_and_month_never_reaches_dateparser() -> None:
    before, skipped = timestamps.FALLBACK_CALLS[0], timestamps.FALLBACK_SKIPPED[0]
    for line in ["login failed for admin at 12:00", "port 22 open since 03:14", "uptime 5 days, 10:22",
                 "am 12. Brumaire 2026 gegen 17:00", "le 3 vendémiaire an 235 vers 14:00"]:  # months of no language
        assert find_timestamps(line, fallback=True) == []
    assert timestamps.FALLBACK_CALLS[0] == before
    assert timestamps.FALLBACK_SKIPPED[0] == skipped + 5


def test_report_languages() -> None:
    assert timestamps.report_languages("Sehr geehrte Damen und Herren, die Adresse wurde am Montag von "
                                       "unserem System gesperrt") == ["de", "en"]
    assert timestamps.report_languages("Estimados, hemos detectado desde la dirección que su servidor") \
        == ["es", "en"]
    assert timestamps.report_languages("Hello, we saw attacks from your network.") == ["en"]
    assert timestamps.report_languages("Уважаемые коллеги, с адреса была зафиксирована атака на наш сервер") is None


def test_a_message_asks_dateparser_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, list[str] | None]] = []

    def spy(text: str, *args: object) -> None:
        asked.append((text, args[-1]))  # type: ignore[arg-type]
        return None

    monkeypatch.setattr(datefallback, "_ask_dateparser", spy)
    # A date shape no fast reader knows (year first with slashes, then words), seven times, twice over.
    lines = [f"Angriff am 2026/11/{d:02d} gegen 17:{d:02d} auf den Server" for d in range(1, 8)]
    with timestamps.message_scope("Sehr geehrte Damen und Herren, die Angriffe wurden von der Adresse "
                                  "am Montag auf unser System gefahren"):
        for ln in lines + lines:
            find_timestamps(ln, fallback=True)
    assert len(asked) == timestamps.MAX_CALLS_PER_MESSAGE
    assert all(langs == ["de", "en"] for _, langs in asked)


def test_the_same_text_is_asked_once_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(datefallback, "_ask_dateparser", lambda text, *a: asked.append(text))
    with timestamps.message_scope("", languages=["en"]):
        for _ in range(5):
            find_timestamps("seen 2026/11/08 around 17:00", fallback=True)
    assert len(asked) == 1
    with timestamps.message_scope("", languages=["en"]):  # a new message asks again
        find_timestamps("seen 2026/11/08 around 17:00", fallback=True)
    assert len(asked) == 2


def test_the_pipeline_bounds_dateparser_per_message() -> None:
    from abuso.pipeline import Pipeline

    body = "\n".join(f"Le {d} vendémiaire an 235 vers 17:{d:02d}, 192.0.2.{d} a attaqué notre serveur."
                     for d in range(1, 11))
    raw = ("From: a@example.org\nTo: abuse@example.net\nSubject: attaques\nDate: Fri, 13 Nov 2026 09:00:00 +0000\n"
           "Content-Type: text/plain; charset=utf-8\n\n" + body + "\n").encode()
    before = timestamps.FALLBACK_CALLS[0]
    report = Pipeline.from_config({}).analyse(raw)
    assert timestamps.FALLBACK_CALLS[0] - before <= timestamps.MAX_CALLS_PER_MESSAGE
    assert len({str(i.ip) for i in report.incidents}) == 10  # the addresses are all still read
