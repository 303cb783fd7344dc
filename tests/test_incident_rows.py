"""Per-report sharing of incident work: the dicts for JSON and the store, the index's columns."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime, timedelta, timezone

from abuso.model import Incident, Report, address_key
from abuso.storage.columns import _clean, _json_text, _port, customer_label, ip_key, time_text, user_label
from abuso.storage.columns import _incident_rows as rows_of
from abuso.zones import as_tzinfo

UTC = timezone.utc
T = datetime(2026, 11, 22, 2, 14, 7, 123456, tzinfo=UTC)


def _incidents() -> list[Incident]:
    acme = {"id": "ACME", "contact": {"email": "noc@acme.example"}, "network": "192.0.2.0/24"}
    out = []
    for n in range(40):
        ip = ipaddress.ip_address(["192.0.2.7", "2001:db8::7", "fe80::1%eth0", "fe80::1", "0.0.0.1", "::1"][n % 6])
        extra = [{}, {"customer": acme}, {"customer": dict(acme)}, {"customer": acme, "user": "alice"},
                 {"radius": [{"name": "bob"}], "time_from": "report Date header"}][n % 5]
        when = [T + timedelta(seconds=n), None, T.astimezone(timezone(timedelta(hours=1))),
                datetime(999, 1, 1, tzinfo=UTC)][n % 4]
        out.append(Incident(ip, ["spam", "brute-force", "weird\x00type"][n % 3], when, ["log", "csv"][n % 2],
                            "explicit" if when else "none", [None, 22, 99999999999, True][n % 4],
                            ["line é", "plain", "nul\x00here", "\udcff"][n % 4], extra))
    return out


def test_rows_are_each_incident_on_its_own():
    """The memoised columns equal what each incident gives alone (the plain reading of the schema)."""
    incidents = _incidents()
    for inc, row in zip(incidents, rows_of(incidents), strict=True):
        assert row == (str(inc.ip), ip_key(inc.ip), _clean(inc.type), _clean(inc.taxonomy), time_text(inc.time),
                       _clean(inc.zone), _clean(inc.parser), _port(inc.port),
                       _clean(customer_label(inc.extra.get("customer"))),
                       _clean(user_label(inc.extra.get("user") or inc.extra.get("radius"))), _clean(inc.evidence),
                       _clean(_json_text(dict(inc.extra))) if inc.extra else None)


def test_time_text_of_utc_and_other_zones():
    assert time_text(T) == "2026-11-22T02:14:07.123456Z"
    assert time_text(T.replace(microsecond=0)) == "2026-11-22T02:14:07.000000Z"
    assert time_text(T.astimezone(as_tzinfo("Europe/Berlin"))) == "2026-11-22T02:14:07.123456Z"
    assert time_text(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000000Z"


def test_address_key_equal_exactly_when_the_addresses_are():
    texts = ["192.0.2.7", "0.0.0.1", "::1", "::0.0.0.1", "fe80::1", "fe80::1%eth0", "fe80::1%eth1", "::ffff:0:1"]
    ips = [ipaddress.ip_address(t) for t in texts] + [ipaddress.ip_address(t) for t in texts]
    for a in ips:
        for b in ips:
            assert (address_key(a) == address_key(b)) == (a == b), (a, b)


def test_incident_dicts_are_built_once_and_rebuilt_when_an_incident_changes():
    r = Report(raw=b"", incidents=_incidents())
    first = r.incident_dicts()
    assert first == [i.to_dict() for i in r.incidents]
    assert r.incident_dicts() is first                      # the store and the JSON output share them
    r.incidents[3] = r.incidents[3].with_extra(customer={"id": "NEW"})
    again = r.incident_dicts()
    assert again is not first and again == [i.to_dict() for i in r.incidents]
    assert again[3]["customer"] == {"id": "NEW"}
    r.incidents.append(r.incidents[0])
    assert len(r.incident_dicts()) == len(r.incidents)
    out = r.to_dict()["incidents"]                           # a copy: changing it changes nothing shared
    out[0]["ip"] = "changed"
    assert r.incident_dicts()[0]["ip"] == str(r.incidents[0].ip)
    json.dumps(r.to_dict(), default=str)
