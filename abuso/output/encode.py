"""A report's incidents as JSON text, made once per report and shared by the JSON output and the store.

``incidents_json(report)`` is exactly ``json.dumps([i.to_dict() for i in report.incidents],
ensure_ascii=False, default=str)``, made without building the dicts: a long log's incidents share a
few addresses, types, zones and (per report, the table processor's) customers, whose text is
encoded once. An incident this fast path cannot mirror exactly (an extra key that is also a field,
a key that is not a string) is encoded from its dict. :func:`dumps_with` puts that text into the
JSON of a dict in place of one of its values, as ``json.dumps`` would have written it there.
"""

from __future__ import annotations

import json
import operator
from json.encoder import encode_basestring  # the C function when _json is there, as json.dumps uses

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..model import Incident, Report

#: json.dumps(..., ensure_ascii=False, default=str) as the JSON output and the store call it.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
#: Incident.to_dict's own keys: an extra with one of them replaces that field's value in place.
_FIELDS = frozenset(("ip", "type", "taxonomy", "time", "zone", "parser", "port", "evidence"))


def incidents_json(report: Report) -> str:
    """The JSON text of the report's incidents' dicts, made once while its incidents stay the same objects."""
    incidents = report.incidents
    cached = report.__dict__.get("_incidents_json")
    if cached is not None and len(cached[0]) == len(incidents) and all(map(operator.is_, cached[0], incidents)):
        return cached[1]
    text = encode_incidents(incidents)
    report.__dict__["_incidents_json"] = (tuple(incidents), text)
    return text


def encode_incidents(incidents: list[Incident]) -> str:
    """``json.dumps([i.to_dict() for i in incidents], ensure_ascii=False, default=str)``, exactly.

    The memos keyed by ``id`` live for this call only, while every incident (and what it holds) is alive.
    """
    names: dict[int, str] = {}
    kinds: dict[Any, str] = {}
    labels: dict[tuple[Any, Any], str] = {}
    extras: dict[tuple[Any, ...], str | None] = {}
    parts = []
    for inc in incidents:
        extra = inc.extra
        tail = ""
        if extra:
            same = (tuple(extra), tuple(map(id, extra.values())))
            found = extras.get(same, "")
            if found == "":
                found = extras[same] = _extra_text(extra)
            if found is None:
                parts.append(_encode(inc.to_dict()))
                continue
            tail = found
        ip = names.get(id(inc.ip))
        if ip is None:
            ip = names[id(inc.ip)] = _encode(str(inc.ip))
        kind = kinds.get(inc.type)
        if kind is None:
            kind = kinds[inc.type] = f'"type": {_encode(inc.type)}, "taxonomy": {_encode(inc.taxonomy)}'
        label = labels.get((inc.zone, inc.parser))
        if label is None:
            label = labels[(inc.zone, inc.parser)] = f'"zone": {_encode(inc.zone)}, "parser": {_encode(inc.parser)}'
        time = inc.time
        when = encode_basestring(time.isoformat()) if time else "null"
        port = inc.port
        if port is None:
            at = ""
        else:
            at = f', "port": {int.__repr__(port) if type(port) is int else _encode(port)}'
        evidence = inc.evidence
        said = encode_basestring(evidence) if type(evidence) is str else _encode(evidence)
        parts.append(f'{{"ip": {ip}, {kind}, "time": {when}, {label}{at}, "evidence": {said}{tail}}}')
    return "[" + ", ".join(parts) + "]"


def _extra_text(extra: Any) -> str | None:
    """``, "key": value, ...`` for an incident's extra after its own fields; None when only its dict
    says it exactly (a key that is also a field or not a string)."""
    if any(type(k) is not str or k in _FIELDS for k in extra):
        return None
    return ", " + _encode(dict(extra))[1:-1]


def dumps_with(d: dict[str, Any], key: str, text: str) -> str:
    """``json.dumps(d, ensure_ascii=False, default=str)`` with ``text`` written as the value of ``key``
    (whatever ``d[key]`` holds is not encoded)."""
    keys = list(d)
    at = keys.index(key)
    parts = []
    if at:
        parts.append(_encode({k: d[k] for k in keys[:at]})[1:-1])
    parts.append(f"{_encode(key)}: {text}")
    if at + 1 < len(keys):
        parts.append(_encode({k: d[k] for k in keys[at + 1:]})[1:-1])
    return "{" + ", ".join(parts) + "}"
