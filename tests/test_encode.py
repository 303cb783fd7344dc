"""The incidents' JSON text made without their dicts equals json.dumps of the dicts, byte for byte."""

from __future__ import annotations

import ipaddress
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType

import pytest

from abuso.model import Incident, Report
from abuso.output.encode import dumps_with, encode_incidents, incidents_json
from abuso.output.json import render

T = datetime(2026, 11, 22, 3, 14, 7, tzinfo=timezone.utc)


class Text(str):
    pass


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, default=str)


def _random_incidents(rnd: random.Random, n: int) -> list[Incident]:
    acme = {"id": "ACME", "contact": {"email": "noc@acme.example", "phone": ["+1", 2]}, "network": "192.0.2.0/24"}
    extras = [{}, {"customer": acme}, {"customer": acme}, {"customer": dict(acme), "user": "alice"},
              {"time_from": "report Date header"}, {"port": 99, "customer": acme}, {"evidence": "replaced"},
              {1: "int key", "x": None}, {"rate": 1.5, "nan": float("nan"), "big": 10**30, "flag": True},
              {"when": T, "amount": Decimal("1.10")}, MappingProxyType({"proxy": "é\u2028"}),
              {"ip": "extra ip", "type": "extra type"}, {"text": Text("sub\"class")}]
    texts = ["plain", "caf\u00e9 \u2028 \U0001f600", "quote \" back\\slash \t tab \x00 nul", "\udcff lone", "",
             Text("a str subclass")]
    ips = ["192.0.2.7", "0.0.0.1", "::1", "fe80::1%eth0", "2001:db8::7", "::ffff:192.0.2.7"]
    times = [None, T, T + timedelta(microseconds=5), T.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
             datetime(999, 1, 1, tzinfo=timezone.utc)]
    out = []
    for _ in range(n):
        when = rnd.choice(times)
        out.append(Incident(ipaddress.ip_address(rnd.choice(ips)), rnd.choice(["spam", "brute-force", "x\u00e9"]),
                            when, rnd.choice(["log", "arf+log", "c\"sv"]), "explicit" if when else "none",
                            rnd.choice([None, 22, 0, True, 99999999999]), rnd.choice(texts), rnd.choice(extras)))
    return out


def test_incidents_text_equals_json_dumps_of_their_dicts():
    rnd = random.Random(3)
    for n in [0, 1, 2, 5, 40, 300]:
        for _ in range(5):
            incidents = _random_incidents(rnd, n)
            assert encode_incidents(incidents) == _dumps([i.to_dict() for i in incidents])


def test_an_unencodable_extra_fails_as_json_dumps_does():
    bad = Incident(ipaddress.ip_address("192.0.2.7"), "spam", T, "log", "explicit", extra={(1, 2): "tuple key"})
    with pytest.raises(TypeError):
        _dumps([bad.to_dict()])
    with pytest.raises(TypeError):
        encode_incidents([bad])


def test_dumps_with_writes_the_text_where_the_value_was():
    d = {"a": 1, "incidents": [1, 2], "b": {"c": "é"}, "when": T}
    assert dumps_with(d, "incidents", _dumps(d["incidents"])) == _dumps(d)
    assert dumps_with({"incidents": None}, "incidents", "[]") == _dumps({"incidents": []})
    assert dumps_with({"incidents": None, "z": 1}, "incidents", "[]") == _dumps({"incidents": [], "z": 1})
    assert dumps_with({"z": 1, "incidents": None}, "incidents", "[]") == _dumps({"z": 1, "incidents": []})


def test_render_equals_json_dumps_of_the_report_and_is_cached_per_incidents():
    rnd = random.Random(4)
    r = Report(raw=b"", origin="f\u00e9", incidents=_random_incidents(rnd, 50), notes={"table": {"matched": 3},
                                                                                       "arrival": 1.0})
    r.error = "parser x failed"
    want = json.dumps(r.to_dict(), ensure_ascii=False, default=str, sort_keys=False)
    want = want.replace("\udcff", "\ufffd") + "\n"
    assert render(r) == want
    first = incidents_json(r)
    assert incidents_json(r) is first
    r.incidents[0] = r.incidents[0].with_extra(customer={"id": "NEW"})
    assert incidents_json(r) is not first and '"customer": {"id": "NEW"}' in incidents_json(r)
    assert render(r) == json.dumps(r.to_dict(), ensure_ascii=False, default=str).replace("\udcff", "\ufffd") + "\n"
    empty = Report(raw=b"")
    assert render(empty) == json.dumps(empty.to_dict(), ensure_ascii=False, default=str) + "\n"
