"""Every built-in parser, filter and processor keeps the stage contract (tests/stage_contract.py).

One test class per stage in ``abuso.registry.BUILTINS``, made here: a stage registered there is
covered without a line of test written for it. A stage that cannot work without options gets its
fewest working ones in MINIMAL_OPTIONS (the contract test says so when one is missing).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import pytest

from abuso import registry
from abuso.filters.base import Filter
from abuso.model import Verdict
from abuso.parsers.base import Parser

from .stage_contract import FilterContract, ParserContract, ProcessorContract, StageContract


def _table(tmp: Path) -> dict[str, Any]:
    table = tmp / "networks.txt"
    table.write_text("192.0.2.0/24 id=C1;contact.email=noc@example.net\n10.0.0.0/8 id=POOL\n2001:db8::/32 id=V6\n")
    return {"file": str(table)}


def _radius(tmp: Path) -> dict[str, Any]:
    detail = tmp / "radacct"
    detail.mkdir()
    (detail / "detail-20261122").write_text(
        "Sun Nov 22 02:00:00 2026\n\tAcct-Session-Id = \"s1\"\n\tUser-Name = \"alice\"\n\tNAS-IP-Address = 10.0.0.1\n"
        "\tAcct-Status-Type = Start\n\tFramed-IP-Address = 192.0.2.17\n\tTimestamp = 1795312800\n\n")
    return {"detail": str(detail), "index": str(tmp / "radius.idx"), "zone": "UTC"}


def _mailer(tmp: Path) -> dict[str, Any]:
    good, bad = tmp / "good.txt", tmp / "bad.txt"
    good.write_text("Subject: your report ${message_id}\n\nThank you: ${count} incidents.\n${incidents}\n")
    bad.write_text("Subject: your report ${message_id}\n\nWe found no incident in it.\n${reasons}\n")
    return {"from": "abuse@example.net", "good": str(good), "bad": str(bad), "dry_run": str(tmp / "answers"),
            "state": str(tmp / "mailer.sqlite")}


def _asn(tmp: Path) -> dict[str, Any]:
    table = tmp / "pfx2as.txt"
    table.write_text("192.0.2.0\t24\t64500\n198.51.100.0\t24\t64510_64511\n2001:db8::\t32\t64530\n")
    return {"file": str(table)}


#: (kind, name) -> the fewest options the stage needs, with its files under the test's tmp_path.
MINIMAL_OPTIONS: dict[tuple[str, str], Callable[[Path], dict[str, Any]]] = {
    ("processors", "store"): lambda tmp: {"path": str(tmp / "store"), "fsync": False},
    ("processors", "table"): _table,
    ("processors", "radius"): _radius,
    ("processors", "mailer"): _mailer,
    ("processors", "asn"): _asn,
}

#: Stages that do not reject unknown options yet (strict: once one does, this test fails until the
#: name is removed here). Every built-in declares its options now (abuso.options, branch config).
OPTIONS_NOT_YET_DECLARED: set[tuple[str, str]] = set()

CONTRACTS: dict[str, type[StageContract]] = {
    "parsers": ParserContract, "filters": FilterContract, "processors": ProcessorContract,
}


def _contract_for(kind: str, name: str) -> type[StageContract]:
    base = CONTRACTS[kind]
    minimal = MINIMAL_OPTIONS.get((kind, name))
    body: dict[str, Any] = {"name": name, "__module__": __name__,
                            "__doc__": f"The stage contract for the built-in {kind[:-1]} {name!r}."}
    if minimal is not None:
        body["options"] = lambda self, tmp_path, _minimal=minimal: _minimal(tmp_path)
    if (kind, name) in OPTIONS_NOT_YET_DECLARED:
        @pytest.mark.xfail(strict=True, reason="declares no options yet (branch config)",
                           raises=pytest.fail.Exception)
        def test_an_unknown_option_is_rejected_by_name(self: StageContract, tmp_path: Path) -> None:
            base.test_an_unknown_option_is_rejected_by_name(self, tmp_path)

        body["test_an_unknown_option_is_rejected_by_name"] = test_an_unknown_option_is_rejected_by_name
    return type(f"Test{name.title()}{kind[:-1].title()}Contract", (base,), body)


for _kind in CONTRACTS:
    for _name in registry.BUILTINS[_kind]:
        _cls = _contract_for(_kind, _name)
        globals()[_cls.__name__] = _cls


def test_every_builtin_stage_has_its_contract_class() -> None:
    made = {(cls.kind, cls.name) for cls in globals().values()
            if isinstance(cls, type) and issubclass(cls, StageContract) and cls.__module__ == __name__}
    assert made == {(k, n) for k in CONTRACTS for n in registry.BUILTINS[k]}
    assert {k for k, _ in MINIMAL_OPTIONS} <= set(CONTRACTS) and OPTIONS_NOT_YET_DECLARED <= made


# --- the contract itself can fail ------------------------------------------------------------------


class RaisingParser(Parser):
    name = "zz-raising"

    def parse(self, message: Any) -> Verdict:
        raise IndexError("a bug on hostile input")


class SilentParser(Parser):
    name = "zz-silent"

    def parse(self, message: Any) -> Verdict:
        return Verdict(self.name, False, "")


class SilentFilter(Filter):
    name = "zz-silent"

    def reject(self, incident: Any, report: Any) -> str | None:
        return ""


@pytest.mark.parametrize("kind, cls, method, complaint", [
    ("parsers", RaisingParser, "test_garbage_gives_a_verdict_never_an_exception", "raised IndexError"),
    ("parsers", SilentParser, "test_every_sample_gets_a_verdict_with_a_reason", "gives no reason"),
    ("filters", SilentFilter, "test_garbage_incidents_are_kept_or_dropped_with_a_reason", "reason ''"),
])
def test_the_contract_fails_a_stage_that_breaks_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   rnd: Any, kind: str, cls: type, method: str,
                                                   complaint: str) -> None:
    monkeypatch.setitem(registry.BUILTINS[kind], cls.name, f"{__name__}:{cls.__name__}")
    contract = type("Probe", (CONTRACTS[kind],), {"name": cls.name})()
    test = getattr(contract, method)
    with pytest.raises((AssertionError, pytest.fail.Exception), match=complaint):
        test(tmp_path, rnd) if "rnd" in inspect.signature(test).parameters else test(tmp_path)
