"""What decode() must make of one message, written without any of its code paths.

The contract, read from the strict JSON grammar and PostgreSQL's jsonb, not from the decoder:
the payload is UTF-8 JSON (stdlib ``json`` with NaN/Infinity refused, nested at most
MAX_JSON_DEPTH deep), a repeated key keeps its last value, numbers are judged by their exact
decimal value (``Decimal``, never a double first), and attrs are stored as sent, so every part
of their text must be valid for jsonb (repeated keys included). Then the schema rules, in the
decoder's documented order. Only decode.py's public constants are shared.

``expect(message, limits, now_us)`` gives (events, dead letters) of the message: rows
``(device_id, event_id, kind, ts_us, value, unit, attrs)`` and ``(reason, detail)`` pairs.
"""

from __future__ import annotations

import calendar
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ioc.ingest.decode import (
    BAD_JSON,
    BAD_TIMESTAMP,
    EVENT_ID_NAMESPACE,
    MAX_ATTRS_BYTES,
    MAX_ATTRS_DEPTH,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_UNIT_CHARS,
    MQTT_TOPIC_PREFIX,
    NOT_FINITE,
    PG_NUMERIC_MAX_EXPONENT,
    PG_NUMERIC_MAX_INT_DIGITS,
    PG_NUMERIC_MAX_SCALE,
    SCHEMA,
    TOO_FAR_FUTURE,
    TOO_LARGE,
    TOO_OLD,
    TOPIC_MISMATCH,
    UNKNOWN_DEVICE,
    DecodeLimits,
    RawMessage,
)

Row = tuple[str, str, str, int, float, str | None, str | None]
Dead = tuple[str, str]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_WS = re.compile(r"[ \t\n\r]*")
_D = "[0-9]"
_RFC3339 = re.compile(
    rf"({_D}{{4}})-({_D}{{2}})-({_D}{{2}})[Tt ]({_D}{{2}}):({_D}{{2}}):({_D}{{2}})"
    rf"(?:\.({_D}+))?(?:[Zz]|([+-])({_D}{{2}}):({_D}{{2}}))")
_NO_COLON = re.compile(rf"{_D}{{4}}-{_D}{{2}}-{_D}{{2}}[Tt ]{_D}{{2}}:{_D}{{2}}:{_D}{{2}}"
                       rf"(?:\.{_D}+)?[+-]{_D}{{4}}")
_NAIVE = re.compile(rf"{_D}{{4}}-{_D}{{2}}-{_D}{{2}}[Tt ]{_D}{{2}}:{_D}{{2}}(?::{_D}{{2}}(?:\.{_D}+)?)?")
_DEVICE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_KIND = re.compile(r"[a-z0-9._-]{1,64}")


class Lit:
    """A number as written."""

    def __init__(self, text: str) -> None:
        self.text = text


class Pairs(list):  # type: ignore[type-arg]
    """An object as its (key, value) pairs in order, repeated keys kept."""


class NotJson(Exception):
    pass


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _constant(name: str) -> Any:
    raise NotJson(name)


_DECODER = json.JSONDecoder(object_pairs_hook=Pairs, parse_int=Lit, parse_float=Lit,
                            parse_constant=_constant)


def loads(text: str) -> Any:
    return _DECODER.decode(text)


def nesting(text: str) -> int:
    """The most brackets open at once, strings (backslash escapes the next char) skipped."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
        i += 1
    return deepest


def walk(node: Any) -> Any:
    """Every string (keys too) and number of a tree, in the order of the text."""
    if isinstance(node, Pairs):
        for key, value in node:
            yield key
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
    elif isinstance(node, str | Lit):
        yield node


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {Lit: "number", str: "string", Pairs: "object", list: "array"}[type(value)]


def show(value: object) -> str:
    return clip(repr(value))


def clip(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


def iso(us: int) -> str:
    if not _MIN_US <= us <= _MAX_US:
        return f"{us} µs from the Unix epoch"
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def numeric_out_of_range(literal: str) -> bool:
    """Outside PostgreSQL's numeric: judged on the exact decimal value."""
    d = Decimal(literal)
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    point = re.search(r"\.([0-9]+)", literal)
    written_exponent = exponent + (len(point.group(1)) if point else 0)
    if abs(written_exponent) > PG_NUMERIC_MAX_EXPONENT or max(0, -exponent) > PG_NUMERIC_MAX_SCALE:
        return True
    return d != 0 and d.adjusted() >= PG_NUMERIC_MAX_INT_DIGITS


def members(text: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    """The (key, raw value text) pairs of the object at text[pos] and the index after it."""
    out: list[tuple[str, str]] = []
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos] == "}":
        return out, pos + 1
    while True:
        key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        pos = _WS.match(text, pos).end() + 1  # type: ignore[union-attr]  # the ':'
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        _, end = _DECODER.raw_decode(text, pos)
        out.append((key, text[pos:end]))
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[pos] == "}":
            return out, pos + 1
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


def elements(text: str, pos: int) -> list[str]:
    """The raw texts of the elements of the array at text[pos]."""
    out: list[str] = []
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos] == "]":
        return out
    while True:
        _, end = _DECODER.raw_decode(text, pos)
        out.append(text[pos:end])
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[pos] == "]":
            return out
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


def vouched(message: RawMessage) -> tuple[str | None, str]:
    if (message.source == "mqtt" and message.topic is not None
            and message.topic.startswith(MQTT_TOPIC_PREFIX)):
        return message.topic[len(MQTT_TOPIC_PREFIX):], "topic"
    if message.source == "kafka" and message.key:
        return message.key.decode("utf-8", "replace"), "key"
    return None, ""


def expect(message: RawMessage, limits: DecodeLimits, now_us: int) -> tuple[list[Row], list[Dead]]:
    payload = message.payload
    if len(payload) > limits.max_payload_bytes:
        return [], [(TOO_LARGE, f"payload: {len(payload)} bytes, more than the "
                                f"{limits.max_payload_bytes} allowed")]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [(BAD_JSON, f"payload: not valid UTF-8 (byte {exc.start})")]
    if nesting(text) > MAX_JSON_DEPTH:
        return [], [(BAD_JSON, f"payload: nested deeper than {MAX_JSON_DEPTH} levels")]
    try:
        tree = loads(text)
    except NotJson as exc:
        return [], [(BAD_JSON, f"payload: {exc} is not valid JSON (JSON has no NaN or Infinity)")]
    except json.JSONDecodeError as exc:
        at = len(text[:exc.pos].encode())
        return [], [(BAD_JSON, f"payload: {exc.msg.removesuffix(' at')} at byte {at}")]
    for item in walk(tree):
        if isinstance(item, str) and (lone := [c for c in item if 0xD800 <= ord(c) <= 0xDFFF]):
            return [], [(BAD_JSON, f"payload: lone surrogate escape \\u{ord(lone[0]):04x}")]
    reference = _Event(message, limits, now_us)
    start = _WS.match(text).end()  # type: ignore[union-attr]
    if isinstance(tree, Pairs):
        reference.event(members(text, start)[0], "")
    elif isinstance(tree, list):
        if not tree:
            reference.dead.append((SCHEMA, "payload: empty array"))
        for k, (node, raw) in enumerate(zip(tree, elements(text, start), strict=True)):
            if isinstance(node, Pairs):
                reference.event(members(raw, 0)[0], f"[{k}]")
            else:
                reference.dead.append((SCHEMA, f"[{k}]: expected an event object, got {jtype(node)}"))
    else:
        reference.dead.append((SCHEMA, f"payload: expected an object or array, got {jtype(tree)}"))
    return reference.rows, reference.dead


def parse_rfc3339(text: str) -> int | Refused:
    """µs since the epoch: fractions beyond the µs rounded half up, as msgspec (in local time;
    past 9999-12-31 refused)."""
    if _NO_COLON.fullmatch(text):
        return Refused(BAD_TIMESTAMP, f"ts: {show(text)} has an offset without a colon (must be ±HH:MM)")
    m = _RFC3339.fullmatch(text)
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        fraction, sign, oh, om = m.group(7) or "", m.group(8), m.group(9), m.group(10)
        valid = (year >= 1 and 1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 59
                 and (sign is None or (int(oh) <= 23 and int(om) <= 59)))
        if valid and 1 <= day <= calendar.monthrange(year, month)[1]:
            us = int((fraction + "000000")[:6]) + (len(fraction) > 6 and fraction[6] >= "5")
            try:
                local = datetime(year, month, day, hour, minute, second) + timedelta(microseconds=us)
            except OverflowError:
                local = None
            if local is not None:
                offset = 0 if sign is None else (int(oh) * 60 + int(om)) * (1 if sign == "+" else -1)
                return (local - datetime(1970, 1, 1)) // timedelta(microseconds=1) - offset * 60_000_000
    if re.fullmatch("[0-9]+", text):
        return Refused(BAD_TIMESTAMP, "ts: epoch milliseconds must be a JSON number, not a string")
    if _NAIVE.fullmatch(text):
        return Refused(BAD_TIMESTAMP, f"ts: {show(text)} has no UTC offset (add Z or +07:00)")
    return Refused(BAD_TIMESTAMP, f"ts: {show(text)} is not an RFC 3339 timestamp")


def attrs_text(raw: str) -> str | Refused:
    """The attrs to store (the text as sent) or why not, checks in the documented order."""
    node = loads(raw)
    if not isinstance(node, Pairs):
        return Refused(SCHEMA, f"attrs: expected an object, got {jtype(node)}")
    size = len(raw.encode())
    if size > MAX_ATTRS_BYTES:
        return Refused(SCHEMA, f"attrs: {size} bytes, more than the {MAX_ATTRS_BYTES} allowed")
    if nesting(raw) > MAX_ATTRS_DEPTH:
        return Refused(SCHEMA, f"attrs: nested deeper than {MAX_ATTRS_DEPTH} levels")
    items = list(walk(node))
    if any(isinstance(item, str) and "\x00" in item for item in items):
        return Refused(SCHEMA, "attrs: contains \\u0000, which PostgreSQL jsonb cannot store")
    for item in items:
        if isinstance(item, Lit) and numeric_out_of_range(item.text):
            return Refused(SCHEMA, f"attrs: {clip(item.text)} is outside the range of PostgreSQL's numeric")
    return raw


def number(value: Any, field: str) -> float | Refused:
    if isinstance(value, Lit):
        x = float(Decimal(value.text))  # correctly rounded; beyond a double: inf
        if x in (float("inf"), float("-inf")):
            return Refused(NOT_FINITE, f"{field}: {clip(value.text)} overflows a double")
        return x + 0.0  # a zero reading is +0.0
    return Refused(SCHEMA, f"{field}: expected a number, got {jtype(value)}")


def text_problem(text: Any, field: str, low: int, high: int) -> Refused | None:
    if not isinstance(text, str):
        return Refused(SCHEMA, f"{field}: expected a string, got {jtype(text)}")
    if not low <= len(text) <= high:
        return Refused(SCHEMA, f"{field}: must be {low}-{high} characters")
    if not text.isprintable():
        return Refused(SCHEMA, f"{field}: contains control or unpaired surrogate characters")
    return None


def str_map(value: Any) -> dict[str, str] | None:
    """An object of strings (a repeated key: the last value counts), else None."""
    if isinstance(value, Pairs) and all(isinstance(v, str) for v in dict(value).values()):
        return dict(value)
    return None


class _Event:
    def __init__(self, message: RawMessage, limits: DecodeLimits, now_us: int) -> None:
        self.limits = limits
        self.too_old = now_us - limits.max_event_age_s * 1e6
        self.too_far = now_us + limits.max_future_skew_s * 1e6
        self.expect, self.expect_from = vouched(message)
        self.rows: list[Row] = []
        self.dead: list[Dead] = []

    def event(self, pairs: list[tuple[str, str]], where: str) -> None:
        raw = dict(pairs)  # a repeated key: the last one
        fields = {key: loads(text) for key, text in raw.items()}
        try:
            self._event(raw, fields, where)
        except Refused as refused:
            self.refuse(refused, where)

    def refuse(self, refused: Refused, where: str) -> None:
        self.dead.append((refused.reason, f"{where}.{refused.detail}" if where else refused.detail))

    def _event(self, raw: dict[str, str], f: dict[str, Any], where: str) -> None:
        device = f.get("device_id")
        taken = ""
        if device is None:
            device, taken = self.expect, f" (taken from the {self.expect_from})"
            if device is None:
                raise Refused(SCHEMA, "device_id: missing")
        if not isinstance(device, str):
            raise Refused(SCHEMA, f"device_id: expected a string, got {jtype(device)}")
        if not _DEVICE.fullmatch(device):
            raise Refused(SCHEMA, f"device_id: {show(device)} must be 1-128 characters of "
                                  f"A-Z a-z 0-9 . _ : -{taken}")
        if self.expect is not None and device != self.expect:
            raise Refused(TOPIC_MISMATCH, f"device_id: {show(device)} does not match the "
                                          f"{self.expect_from} ({show(self.expect)})")
        known = self.limits.known_devices
        if known is not None and device not in known:
            raise Refused(UNKNOWN_DEVICE, f"device_id: {show(device)} is not registered")
        ts_us = self.ts(f)
        attrs = None
        if f.get("attrs") is not None:
            attrs = attrs_text(raw["attrs"])
            if isinstance(attrs, Refused):
                raise attrs
        if f.get("values") is not None:
            self.multi(f, device, ts_us, attrs, where)
        else:
            self.rows.append(self.single(f, device, ts_us, attrs))

    def ts(self, f: dict[str, Any]) -> int:
        if "ts" not in f:
            raise Refused(SCHEMA, "ts: missing")
        ts = f["ts"]
        if isinstance(ts, str):
            us = parse_rfc3339(ts)
            if isinstance(us, Refused):
                raise us
        elif isinstance(ts, Lit):
            if re.fullmatch("-?[0-9]+", ts.text):
                if len(ts.text) > 30:
                    raise Refused(BAD_TIMESTAMP, f"ts: {clip(ts.text)} ms is outside years 1-9999")
                ms: float = int(ts.text)
                us = int(ms) * 1000
            else:
                ms = float(Decimal(ts.text))
                if ms in (float("inf"), float("-inf")):
                    raise Refused(BAD_TIMESTAMP, f"ts: {clip(ts.text)} ms is outside years 1-9999")
                scaled = ms * 1000
                if scaled in (float("inf"), float("-inf")):
                    raise Refused(BAD_TIMESTAMP, f"ts: {show(ms)} ms is outside years 1-9999")
                us = round(scaled)
            if not _MIN_US <= us <= _MAX_US:
                raise Refused(BAD_TIMESTAMP, f"ts: {show(ms)} ms is outside years 1-9999")
        else:
            raise Refused(BAD_TIMESTAMP,
                          f"ts: expected RFC 3339 text or epoch milliseconds, got {jtype(ts)}")
        if us < self.too_old:
            hint = ""
            if isinstance(ts, Lit) and abs(ms) < 1e11:
                hint = " (epoch seconds? ts must be in milliseconds)"
            raise Refused(TOO_OLD, f"ts: {iso(us)} is older than {span(self.limits.max_event_age_s)}{hint}")
        if us > self.too_far:
            raise Refused(TOO_FAR_FUTURE, f"ts: {iso(us)} is more than "
                                          f"{span(self.limits.max_future_skew_s)} ahead")
        return us

    def single(self, f: dict[str, Any], device: str, ts_us: int, attrs: str | None) -> Row:
        if "kind" not in f:
            raise Refused(SCHEMA, "kind: missing")
        kind = f["kind"]
        if not isinstance(kind, str):
            raise Refused(SCHEMA, f"kind: expected a string, got {jtype(kind)}")
        if not _KIND.fullmatch(kind):
            raise Refused(SCHEMA, f"kind: {show(kind)} must be 1-64 characters of a-z 0-9 . _ -")
        if "value" not in f:
            raise Refused(SCHEMA, "value: missing")
        value = number(f["value"], "value")
        if isinstance(value, Refused):
            raise value
        if kind.startswith("camera.") and not 0.0 <= value <= 1.0:
            raise Refused(SCHEMA, f"value: camera confidence {value:g} is outside 0..1")
        event_id = f.get("event_id")
        if event_id is None:
            event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{device}|{kind}|{ts_us}"))
        elif problem := text_problem(event_id, "event_id", 1, MAX_ID_CHARS):
            raise problem
        unit = f.get("unit")
        if isinstance(unit, Pairs):
            raise Refused(SCHEMA, "unit: expected a string, got object" if str_map(unit) is not None
                          else "unit: expected an object of strings, got object")
        if unit is not None and (problem := text_problem(unit, "unit", 0, MAX_UNIT_CHARS)):
            raise problem
        if f.get("units") is not None:
            raise Refused(SCHEMA, "units: only allowed with values")
        return (device, event_id, kind, ts_us, value, unit, attrs)

    def multi(self, f: dict[str, Any], device: str, ts_us: int, attrs: str | None, where: str) -> None:
        values = f["values"]
        if not isinstance(values, Pairs):
            raise Refused(SCHEMA, f"values: expected an object, got {jtype(values)}")
        if "kind" in f or "value" in f:
            raise Refused(SCHEMA, "values: cannot be combined with kind or value")
        if f.get("event_id") is not None:
            raise Refused(SCHEMA, "event_id: not allowed with values (ids derive per kind)")
        readings = dict(values)
        if not readings:
            raise Refused(SCHEMA, "values: empty")
        unit, units = f.get("unit"), f.get("units")
        if units is not None and str_map(units) is None:
            units_bad = Refused(SCHEMA, f"units: expected an object of strings, got {jtype(units)}")
        else:
            units_bad, units = None, str_map(units)
        if isinstance(unit, Pairs) and str_map(unit) is not None:
            if f.get("units") is not None:
                raise Refused(SCHEMA, "units: give per-kind units in unit or units, not both")
            unit, units, units_bad = None, str_map(unit), None
        if isinstance(unit, Pairs):
            raise Refused(SCHEMA, "unit: expected an object of strings, got object")
        if unit is not None and (problem := text_problem(unit, "unit", 0, MAX_UNIT_CHARS)):
            raise problem
        if units_bad is not None:
            raise units_bad
        for kind, text in (units or {}).items():
            if kind not in readings:
                raise Refused(SCHEMA, f"units: {show(kind)} has no reading in values")
            if problem := text_problem(text, f"units.{kind}", 0, MAX_UNIT_CHARS):
                raise problem
        for kind, node in readings.items():
            field = f"values.{kind}"
            if not _KIND.fullmatch(kind):
                self.refuse(Refused(SCHEMA, f"values: {show(kind)} must be 1-64 characters of "
                                            "a-z 0-9 . _ -"), where)
                continue
            value = number(node, field)
            if isinstance(value, Refused):
                self.refuse(value, where)
                continue
            if kind.startswith("camera.") and not 0.0 <= value <= 1.0:
                self.refuse(Refused(SCHEMA, f"{field}: camera confidence {value:g} is outside 0..1"),
                            where)
                continue
            event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{device}|{kind}|{ts_us}"))
            self.rows.append((device, event_id, kind, ts_us, value,
                              (units or {}).get(kind, unit), attrs))
