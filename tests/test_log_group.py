"""Grouping of the log parser's occurrences: one incident per (address, time), coarse into finer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

from abuso.parsers.log.group import Occurrence, group
from abuso.timestamps import Stamp

UTC = timezone.utc
T0 = datetime(2026, 11, 22, 3, 14, tzinfo=UTC)


def occ(ip: str, seconds: float | None, precision: float = 1.0) -> Occurrence:
    stamp = None
    if seconds is not None:
        stamp = Stamp(T0 + timedelta(seconds=seconds), "explicit", precision=precision)
    return Occurrence(ip_address(ip), stamp, "line", None)


def test_a_minute_folds_into_the_first_finer_stamp_of_its_minute_only() -> None:
    a, b = "192.0.2.1", "192.0.2.2"
    occs = [occ(a, 30), occ(a, 7), occ(a, 0, precision=60), occ(a, 60), occ(b, 0, precision=60), occ(a, None)]
    groups = group(occs)
    # The minute 03:14 of a folds into 03:14:30 (first to occur), not 03:14:07 nor 03:15:00;
    # b's minute has no finer stamp and stays; a's mention without time joins nothing.
    assert {(str(ip), (t - T0).seconds if t else None): len(g) for (ip, t), g in groups.items()} == {
        (a, 30): 2, (a, 7): 1, (a, 60): 1, (b, 0): 1}
    assert groups[(ip_address(a), T0 + timedelta(seconds=60))][0].stamp.precision == 1.0


def test_one_busy_address_groups_every_stamp_and_folds_each_minute_once() -> None:
    ip = "198.51.100.7"
    seconds = [occ(ip, s) for s in range(0, 3000, 3)]
    minutes = [occ(ip, m * 60, precision=60) for m in range(50)]
    groups = group(minutes + seconds)
    assert len(groups) == 1000  # every minute found the first second-stamp inside it
    assert sum(len(g) for g in groups.values()) == 1050
    assert all(len(g) == (2 if t.second == 0 else 1) for (_, t), g in groups.items())


def test_untimed_addresses_give_one_group() -> None:
    groups = group([occ("192.0.2.5", None), occ("192.0.2.5", None)])
    assert list(groups) == [(ip_address("192.0.2.5"), None)]


def _plain_group(occurrences: list[Occurrence]) -> dict:
    """The rule read plainly: every group against every group, no index, no positions."""
    groups: dict = {}
    timed_ips = {o.ip for o in occurrences if o.stamp is not None}
    for o in occurrences:
        if o.stamp is None and o.ip in timed_ips:
            continue
        groups.setdefault((o.ip, o.stamp.time if o.stamp else None), []).append(o)
    order = list(groups)
    span = {k: min(o.stamp.precision for o in g if o.stamp) for k, g in groups.items() if k[1] is not None}
    for key in sorted(span, key=lambda k: -span[k]):
        ip, t = key
        finer = [k for k in order if k in groups and k != key and k[0] == ip and k[1] is not None
                 and span[k] < span[key] and t <= k[1] < t + timedelta(seconds=span[key])]
        if finer:
            groups[finer[0]].extend(groups.pop(key))
    return groups


def test_grouping_equals_the_plain_reading_on_random_logs() -> None:
    import random

    rnd = random.Random(8)
    ips = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]
    for _ in range(300):
        occs = []
        for _ in range(rnd.randrange(1, 40)):
            kind = rnd.random()
            if kind < 0.1:
                occs.append(occ(rnd.choice(ips), None))
            elif kind < 0.4:
                occs.append(occ(rnd.choice(ips), 60 * rnd.randrange(6), precision=60))
            elif kind < 0.5:
                occs.append(occ(rnd.choice(ips), rnd.randrange(360) + rnd.randrange(1000) / 1000, precision=1e-3))
            else:
                occs.append(occ(rnd.choice(ips), rnd.randrange(360)))
        got, want = group(occs), _plain_group(occs)
        assert list(got) == list(want)
        assert all([id(o) for o in got[k]] == [id(o) for o in want[k]] for k in got)


def test_addresses_equal_only_when_ipaddress_says_so() -> None:
    """Grouping keys addresses by their int (and scope): 0.0.0.1 is not ::1, fe80::1%eth0 not fe80::1."""
    import random

    rnd = random.Random(9)
    ips = ["0.0.0.1", "::1", "fe80::1", "fe80::1%eth0", "::ffff:0.0.0.1"]
    for _ in range(200):
        occs = [occ(rnd.choice(ips), rnd.choice([None, 0, 0, 60, 7.5]), rnd.choice([60, 1, 1e-3]))
                for _ in range(rnd.randrange(1, 25))]
        got, want = group(occs), _plain_group(occs)
        assert list(got) == list(want)
        assert all([id(o) for o in got[k]] == [id(o) for o in want[k]] for k in got)
        assert all(g[0].ip is k[0] for k, g in got.items())  # a group's key is its first occurrence's
