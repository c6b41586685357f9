"""Plain data (the YAML/JSON shape of docs/contract/rules.md) ⇄ typed rules, with every problem collected.

The same validation serves the rule file (where the loader adds line
numbers) and the HTTP API (no lines), so operators see identical messages
in both places. ``rule_from_dict(rule_to_dict(r)) == r`` for every valid rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ioc.durations import format_duration, parse_duration
from ioc.rules.messages import template_problems
from ioc.rules.model import (
    OPS,
    RANGE_OPS,
    SEVERITIES,
    Absent,
    Condition,
    Count,
    Rate,
    Rule,
    Where,
)
from ioc.rules.problems import RuleFileError, RuleProblem

Path = tuple[str | int, ...]
RawProblem = tuple[Path, str]

RULE_FIELDS = (
    "id", "description", "kind", "where", "when", "for", "clear", "rate", "absent", "count",
    "severity", "message", "auto_resolve", "enabled",
)
WHERE_FIELDS = ("district", "districts", "device_ids", "tags")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_PRESENTATION_FIELDS = ("message", "severity", "description", "enabled")


def field_name(path: Path) -> str:
    """``("where", "tags", 1)`` → ``where.tags[1]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


class _Checker:
    """Collects problems while converting; every converter returns None on failure."""

    def __init__(self) -> None:
        self.problems: list[RawProblem] = []

    def err(self, path: Path, message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, v: object, path: Path, allowed: tuple[str, ...]) -> Mapping[str, Any] | None:
        if not isinstance(v, Mapping):
            self.err(path, "must be a mapping")
            return None
        for k in v:
            if k not in allowed:
                self.err((*path, str(k)), f"unknown field; expected one of {', '.join(allowed)}")
        return v

    def number(self, v: object, path: Path) -> float | None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.err(path, "must be a number")
            return None
        if not math.isfinite(v):
            self.err(path, "must be finite")
            return None
        return float(v)

    def duration(self, v: object, path: Path) -> float | None:
        try:
            seconds = parse_duration(v)  # type: ignore[arg-type]
        except (ValueError, TypeError) as e:
            self.err(path, str(e) if isinstance(e, ValueError) else "must be a duration like 5m")
            return None
        if seconds <= 0:
            self.err(path, "must be greater than zero")
            return None
        return seconds

    def text(self, v: object, path: Path) -> str | None:
        if not isinstance(v, str) or not v.strip():
            self.err(path, "must be a non-empty string")
            return None
        return v

    def flag(self, v: object, path: Path) -> bool | None:
        if not isinstance(v, bool):
            self.err(path, "must be true or false")
            return None
        return v

    def texts(self, v: object, path: Path) -> tuple[str, ...] | None:
        if not isinstance(v, list) or not v:
            self.err(path, "must be a non-empty list of strings")
            return None
        out = [self.text(x, (*path, i)) for i, x in enumerate(v)]
        return None if None in out else tuple(dict.fromkeys(out))  # type: ignore[arg-type]

    def condition(
        self, v: object, path: Path, extra: tuple[str, ...] = ()
    ) -> tuple[Condition | None, Mapping[str, Any] | None]:
        d = self.mapping(v, path, ("op", "value", *extra))
        if d is None:
            return None, None
        op = d.get("op")
        ok = True
        if "op" not in d:
            self.err((*path, "op"), "missing")
            ok = False
        elif op not in OPS:
            self.err((*path, "op"), f"must be one of {', '.join(OPS)}")
            ok = False
        if "value" not in d:
            self.err((*path, "value"), "missing")
            return None, d
        raw = d["value"]
        vpath = (*path, "value")
        if op in RANGE_OPS:
            if not isinstance(raw, list) or len(raw) != 2:
                self.err(vpath, f"{op} needs [lo, hi]")
                return None, d
            lo, hi = self.number(raw[0], (*vpath, 0)), self.number(raw[1], (*vpath, 1))
            if lo is None or hi is None:
                return None, d
            if lo > hi:
                self.err(vpath, f"{op} needs lo <= hi, got [{lo:g}, {hi:g}]")
                return None, d
            return (Condition(op, (lo, hi)) if ok else None), d
        if isinstance(raw, list):
            self.err(vpath, "must be a number (only between/outside take [lo, hi])")
            return None, d
        value = self.number(raw, vpath)
        return (Condition(op, value) if ok and value is not None else None), d


def parse_rule(d: object) -> tuple[Rule | None, list[RawProblem]]:
    """Validate one rule's plain data; the rule is None whenever any problem was found."""
    c = _Checker()
    m = c.mapping(d, (), RULE_FIELDS)
    if m is None:
        return None, c.problems
    rid = None
    if "id" not in m:
        c.err(("id",), "missing")
    elif not isinstance(m["id"], str) or not ID_PATTERN.fullmatch(m["id"]):
        c.err(("id",), "must be 1-100 letters, digits, '.', '_' or '-', starting alphanumeric")
    else:
        rid = m["id"]
    kind = c.text(m["kind"], ("kind",)) if "kind" in m else None
    where = _where(c, m["where"]) if "where" in m else Where()
    when = c.condition(m["when"], ("when",))[0] if "when" in m else None
    clear = c.condition(m["clear"], ("clear",))[0] if "clear" in m else None
    for_s = c.duration(m["for"], ("for",)) if "for" in m else 0.0
    rate = None
    if "rate" in m:
        cond, rd = c.condition(m["rate"], ("rate",), extra=("per",))
        per = None
        if rd is not None:
            per = c.duration(rd["per"], ("rate", "per")) if "per" in rd else None
            if "per" not in rd:
                c.err(("rate", "per"), "missing")
        rate = Rate(per, cond) if cond is not None and per is not None else None
    absent = None
    if "absent" in m:
        ad = c.mapping(m["absent"], ("absent",), ("for",))
        if ad is not None and "for" not in ad:
            c.err(("absent", "for"), "missing")
        elif ad is not None:
            dur = c.duration(ad["for"], ("absent", "for"))
            absent = Absent(dur) if dur is not None else None
    count = None
    if "count" in m:
        cd = c.mapping(m["count"], ("count",), ("at_least", "within"))
        if cd is not None:
            n = cd.get("at_least")
            if "at_least" not in cd:
                c.err(("count", "at_least"), "missing")
            elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
                c.err(("count", "at_least"), "must be an integer >= 1")
                n = None
            within = None
            if "within" not in cd:
                c.err(("count", "within"), "missing")
            else:
                within = c.duration(cd["within"], ("count", "within"))
            count = Count(n, within) if n is not None and within is not None else None
    severity = m.get("severity", "warning")
    if severity not in SEVERITIES:
        c.err(("severity",), f"must be one of {', '.join(SEVERITIES)}")
    message = c.text(m["message"], ("message",)) if "message" in m else None
    if message is not None:
        for problem in template_problems(message, absent="absent" in m):
            c.err(("message",), problem)
    description = c.text(m["description"], ("description",)) if "description" in m else None
    auto_resolve = c.flag(m["auto_resolve"], ("auto_resolve",)) if "auto_resolve" in m else True
    enabled = c.flag(m["enabled"], ("enabled",)) if "enabled" in m else True
    _check_combination(c, m)
    if c.problems:
        return None, c.problems
    return Rule(
        id=rid, kind=kind, where=where, when=when, for_s=for_s, clear=clear, rate=rate,  # type: ignore[arg-type]
        absent=absent, count=count, severity=severity, message=message,
        auto_resolve=auto_resolve, enabled=enabled, description=description,  # type: ignore[arg-type]
    ), []


def _where(c: _Checker, v: object) -> Where:
    d = c.mapping(v, ("where",), WHERE_FIELDS)
    if d is None:
        return Where()
    districts: tuple[str, ...] = ()
    if "district" in d:
        one = c.text(d["district"], ("where", "district"))
        districts = (one,) if one else ()
    if "districts" in d:
        districts = tuple(
            dict.fromkeys(districts + (c.texts(d["districts"], ("where", "districts")) or ()))
        )
    device_ids = c.texts(d["device_ids"], ("where", "device_ids")) if "device_ids" in d else ()
    tags = c.texts(d["tags"], ("where", "tags")) if "tags" in d else ()
    return Where(districts, device_ids or (), tags or ())


def _check_combination(c: _Checker, m: Mapping[str, Any]) -> None:
    """Which rule types and options may go together (see docs/contract/rules.md)."""
    types = [k for k in ("when", "rate", "absent") if k in m]
    if not types:
        if "count" in m:
            c.err(("count",), "needs when (count counts events that match when)")
        else:
            c.err(("when",), "missing: a rule needs one of when, rate, absent (count goes with when)")
    for extra in types[1:]:
        c.err((extra,), f"use only one of when, rate, absent (already has {types[0]})")
    if "count" in m and types and "when" not in types:
        c.err(("count",), "needs when (count counts events that match when)")
    if "for" in m and ("absent" in m or "count" in m):
        c.err(("for",), "not allowed with absent or count")
    if "clear" in m and "absent" in m:
        c.err(("clear",), "not allowed with absent (it clears on the device's next event)")


def rule_from_dict(d: object) -> Rule:
    """One rule from API/JSON data; raises RuleFileError (no line numbers) when invalid."""
    rule, raw = parse_rule(d)
    if rule is None:
        rid = d.get("id") if isinstance(d, Mapping) else None
        rid = rid if isinstance(rid, str) and ID_PATTERN.fullmatch(rid) else None
        raise RuleFileError([RuleProblem(None, rid, field_name(p), msg) for p, msg in raw])
    return rule


def _duration_out(seconds: float) -> str | float:
    text = format_duration(seconds)
    return text if parse_duration(text) == seconds else seconds


def _condition_out(cond: Condition) -> dict[str, Any]:
    v = cond.value
    return {"op": cond.op, "value": list(v) if isinstance(v, tuple) else v}


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The YAML/JSON shape of ``rule`` (durations spelled like ``5m``)."""
    d: dict[str, Any] = {"id": rule.id}
    if rule.description is not None:
        d["description"] = rule.description
    if rule.kind is not None:
        d["kind"] = rule.kind
    w = rule.where
    if not w.is_empty():
        where: dict[str, Any] = {}
        if len(w.districts) == 1:
            where["district"] = w.districts[0]
        elif w.districts:
            where["districts"] = list(w.districts)
        if w.device_ids:
            where["device_ids"] = list(w.device_ids)
        if w.tags:
            where["tags"] = list(w.tags)
        d["where"] = where
    if rule.when is not None:
        d["when"] = _condition_out(rule.when)
    if rule.rate is not None:
        d["rate"] = {"per": _duration_out(rule.rate.per_s), **_condition_out(rule.rate.cond)}
    if rule.absent is not None:
        d["absent"] = {"for": _duration_out(rule.absent.for_s)}
    if rule.for_s:
        d["for"] = _duration_out(rule.for_s)
    if rule.clear is not None:
        d["clear"] = _condition_out(rule.clear)
    if rule.count is not None:
        d["count"] = {"at_least": rule.count.at_least, "within": _duration_out(rule.count.within_s)}
    d["severity"] = rule.severity
    if rule.message is not None:
        d["message"] = rule.message
    d["auto_resolve"] = rule.auto_resolve
    d["enabled"] = rule.enabled
    return d


def rule_fingerprint(rule: Rule) -> str:
    """Hash of what shapes evaluation state (not message, severity, description, enabled).

    Persisted state carries it, so state saved under another definition of the
    rule is discarded instead of being applied to different semantics.
    """
    d = rule_to_dict(rule)
    for k in _PRESENTATION_FIELDS:
        d.pop(k, None)
    raw = json.dumps(d, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha1(raw).hexdigest()[:12]
