"""Decoding is a function of the message alone, strict, and the same on every path.

A differential property pits each path of decode() against the strict reference
(``strict_reference.py``: stdlib json, Decimal, jsonb's limits): the message decoded alone, in
a batch of valid messages that would go column-wise (so that the column-wise scan is tried
and falls back), message by message (the screen, then msgspec's typed decode), forced
through the slow path, column-wise alone when the scan takes it, and alone and in the batch
with the accelerators off (the plain screen, no column-wise path). Payloads are events with
hostile parts: NaN/Infinity literals, invalid UTF-8, huge and edge-of-range numbers, ts
offsets without a colon, -0, ``\\u0000`` and lone surrogates, repeated keys, deep nesting.
Then one example per class of the contract.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from ioc.ingest.decode import (
    _MESSAGE_DECODER,
    MAX_ATTRS_DEPTH,
    MAX_JSON_DEPTH,
    MQTT_TOPIC_PREFIX,
    DecodeLimits,
    DecodeResult,
    RawMessage,
    _decode_each,
    _Run,
    _screen,
    decode,
    decode_uniform,
)
from tests.unit.fast import accelerated
from tests.unit.ingest.strict_reference import expect

ICT = timezone(timedelta(hours=7))
NOW_US = int(datetime(2026, 11, 23, 8, 0, tzinfo=ICT).timestamp()) * 1_000_000
LIMITS = DecodeLimits(max_event_age_s=30 * 86400, max_future_skew_s=3600)
REGISTRY = DecodeLimits(max_event_age_s=30 * 86400, max_future_skew_s=3600,
                        known_devices=frozenset({"hg-vt-wl-001", "hg-nb-rain-002"}))
DEVICES = ["hg-vt-wl-001", "hg-nb-rain-002", "hg-lm-sal-003", "vi.thanh:07"]
KINDS = ["water_level", "rainfall", "salinity", "camera.fire"]
PROFILE = settings(
    max_examples=int(os.environ.get("DECODE_STRICT_EXAMPLES", "2500")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Frag(bytes):
    """JSON text put into a payload as it is."""


class Obj(list):  # type: ignore[type-arg]
    """An object as (key, value) pairs, so that a key can repeat."""


def dump(node: Any, ascii_only: bool = False, spaced: bool = False) -> bytes:
    comma, colon = (b", ", b": ") if spaced else (b",", b":")
    if isinstance(node, Frag):
        return bytes(node)
    if isinstance(node, Obj):
        return b"{" + comma.join(dump(k, ascii_only, spaced) + colon + dump(v, ascii_only, spaced)
                                 for k, v in node) + b"}"
    if isinstance(node, list):
        return b"[" + comma.join(dump(v, ascii_only, spaced) for v in node) + b"]"
    return json.dumps(node, ensure_ascii=ascii_only).encode()


# ---- hostile parts ---------------------------------------------------------------------------

NON_FINITE = st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]).map(Frag)
EDGE_NUMBERS = st.sampled_from([
    "-0", "-0.0", "0e5", "-0e-3", "0.0", "1e400", "-1e400", "1e-400", "1e308", "1.8e308", "2e308",
    "4.9e-324", "1e250", "1e251", "1e-250", "1e-251", "9" * 40, "9" * 41, "1e200000", "1e-16383",
    "1e-16384", "0e-16383", "0e-16384", "0.0e-16383", "1.5e-16382", "1.55e-16382", "1e131071",
    "1e131072", "9.9e131071", "0.1e131072", "0e200000", "0e1073741822", "0e1073741823",
    "1E+0002", "1e0000000000000000000400", "123456789012345678901234567890",
    "0.30000000000000004", "1.7976931348623157e308", "2.2250738585072014e-308",
])
NUMBERS = st.one_of(
    EDGE_NUMBERS,
    st.integers(0, 6000).map(lambda k: "1" + "0" * k),
    st.integers(0, 6000).map(lambda k: "-" + "9" * (k + 1)),
    st.integers(16370, 16390).map(lambda k: "0." + "0" * k + "1"),
    st.integers(16370, 16390).map(lambda k: "1." + "0" * k),
    st.tuples(st.integers(-9, 99), st.integers(-131080, 131080)).map(lambda t: f"{t[0]}e{t[1]}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
).map(lambda text: Frag(text.encode()))
ESCAPES = st.sampled_from([
    b'"\\u0000"', b'"a\\u0000b"', b'"\\\\u0000"', b'"\\\\\\u0000"', b'"\\ud800"', b'"\\uDBFF"',
    b'"\\udc00"', b'"x\\ud800\\u0041"', b'"\\ud800\\ud800\\udc00"', b'"\\udbff\\udfff"',
    b'"\\uD83D\\uDE00"', b'"\\u002b"', b'"\\u00e9"', b'"\\u0041\\/\\n\\t\\"\\\\"', b'"\\u001f"',
]).map(Frag)
BAD_UTF8 = st.sampled_from([
    b'"\xff"', b'"\xc3"', b'"\xc3("', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xc0\x80"',
    b'"abc\xe2\x82"', b'"\xe0\x80\xaf"', b'"V\xe1\xbb\x8b Thanh"',
]).map(Frag)
TEXTS = st.one_of(st.text(max_size=8), st.sampled_from(["", "Cầu Cái Nhúc", "m³/s", "\x7f", "ts"]))
BENIGN = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(-1e9, 1e9) | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(TEXTS, inner), max_size=3).map(Obj),
    max_leaves=6,
)


def nested(depth: int, inner: Any = None, key: bool = False) -> Frag:
    """``inner`` inside ``depth`` arrays (or objects)."""
    core = b"" if inner is None else dump(inner)
    return Frag((b'{"a":' if key else b"[") * depth + core + (b"}" if key else b"]") * depth)


DEEP = st.builds(nested, st.sampled_from([1, 14, 15, 16, 17, 40, 62, 63, 64, 65, 200, 10_000]),
                 st.none() | NUMBERS | st.just(Frag(b"1e400")) | NON_FINITE, st.booleans())
# One hostile part of each class; an event gets one or two, somewhere.
FLAWS: dict[str, st.SearchStrategy[Any]] = {
    "non-finite": NON_FINITE,
    "utf-8": BAD_UTF8,
    "number": NUMBERS,
    "escape": ESCAPES,
    "deep": DEEP,
    "junk": BENIGN,
}
KEYS = st.one_of(TEXTS, ESCAPES, BAD_UTF8, st.sampled_from(["a", "station", "ts", "value"]))


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """RFC 3339 in its forms (fractions of 0 to 12 digits, Z, z, offsets, a space) and near
    misses (no colon, no offset, escaped), epoch ms (as an integer or not)."""
    when = draw(st.datetimes(min_value=datetime(2026, 10, 25), max_value=datetime(2026, 11, 23, 2)))
    minutes = draw(st.sampled_from([0, 420, -210, 23 * 60 + 59]))
    local = when.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes)))
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if minutes == 0:
        zone = draw(st.sampled_from(["Z", "z", "-00:00", "+00:00"]))
    digits = draw(st.integers(0, 12))
    fraction = "." + f"{local.microsecond:06d}{draw(st.integers(0, 999_999)):06d}"[:digits] if digits else ""
    sep = draw(st.sampled_from(["T", "T", "t", " "]))
    text = f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{fraction}{zone}"
    kind = draw(st.sampled_from(["text"] * 8 + ["no-colon", "no-colon", "escaped", "ms", "ms",
                                                 "ms-float", "naive"]))
    if kind == "no-colon" or (kind == "escaped" and draw(st.booleans())):
        text = text[:-3] + text[-2:] if text[-3] == ":" else text[:-1] + "+0000"
    if kind == "escaped":  # one character as a \u escape: msgspec reads the text unescaped
        at = draw(st.integers(0, len(text) - 1))
        return Frag(json.dumps(text[:at]).encode()[:-1] + b"\\u%04x" % ord(text[at])
                    + json.dumps(text[at + 1:]).encode()[1:])
    if kind == "ms":
        return int(when.replace(tzinfo=UTC).timestamp() * 1000)
    if kind == "ms-float":
        return Frag(repr(when.replace(tzinfo=UTC).timestamp() * 1000 + 0.25).encode())
    if kind == "naive":
        return text[:19]
    return text


@st.composite
def event(draw: st.DrawFn) -> Obj:
    """A valid event (either form, optional fields, unknown fields, attrs), then flaws: a
    hostile part in a field, in attrs (value or key), in an unknown field, or a key given
    twice."""
    kind = draw(st.sampled_from(KINDS))
    device = draw(st.sampled_from([DEVICES[0]] * 6 + DEVICES))  # the transport's, mostly
    fields: list[tuple[Any, Any]] = [("device_id", device), ("ts", draw(timestamps()))]
    if draw(st.integers(0, 5)):
        fields += [("kind", kind), ("value", draw(st.floats(0, 1).map(lambda v: round(v, 3))))]
    else:
        fields.append(("values", Obj(draw(st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0, 1)),
                                                   min_size=1, max_size=3)))))
    if draw(st.booleans()):
        fields.append(("unit", draw(st.sampled_from(["m", "mm", "µg/m³"]))))
    if draw(st.integers(0, 3)) == 0:
        fields.append(("event_id", draw(st.sampled_from(["vt-1", "x" * 128, "a b"]))))
    attrs = Obj(draw(st.lists(st.tuples(TEXTS, BENIGN), max_size=2)))
    if draw(st.booleans()):
        attrs.append(("station", draw(st.sampled_from(["Cầu Cái Nhúc", "Long Mỹ"]))))
    if draw(st.booleans()):
        fields.append(("note", draw(BENIGN)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        flaw = draw(st.sampled_from([*FLAWS, "number", "twice", "twice", "units", "zero", "value", "ts"]))
        where = draw(st.sampled_from(["field", "attrs", "attrs", "attrs", "attrs-key", "unknown", "key"]))
        if flaw in ("value", "ts"):  # a number of any size where a number is read
            fields = [(k, draw(NUMBERS)) if k == flaw else (k, v) for k, v in fields]
        elif flaw == "zero":
            fields = [(k, Frag(draw(st.sampled_from([b"-0", b"-0.0", b"-0e-3"])))) if k == "value" else (k, v)
                      for k, v in fields]
        elif flaw == "units":
            fields.append(("units" if draw(st.booleans()) else "unit",
                           Obj(draw(st.lists(st.tuples(st.sampled_from(KINDS), BENIGN), max_size=2)))))
        elif flaw == "twice":  # a key again, before or after, with some other value
            name, _ = draw(st.sampled_from(fields))
            again = draw(BENIGN | st.sampled_from([kind, 0.5, "2026-11-23T07:00:00+07:00", None]) | NUMBERS)
            fields.insert(draw(st.integers(0, len(fields))), (name, again))
        elif where == "field":
            at = draw(st.integers(0, len(fields) - 1))
            fields[at] = (fields[at][0], draw(FLAWS[flaw]))
        elif where == "attrs":
            attrs.insert(draw(st.integers(0, len(attrs))),
                         (draw(st.sampled_from(["a", "bbox", "station"])), draw(FLAWS[flaw])))
        elif where == "attrs-key" and flaw in ("utf-8", "escape"):
            attrs.append((draw(FLAWS[flaw]), draw(BENIGN)))
        elif where == "key" and flaw in ("utf-8", "escape"):
            fields.append((draw(FLAWS[flaw]), draw(BENIGN)))
        else:
            fields.append((draw(st.sampled_from(["zzz", "firmware"])), draw(FLAWS[flaw])))
    if attrs or draw(st.booleans()):
        fields.append(("attrs", attrs if draw(st.integers(0, 5)) else draw(BENIGN)))
    return Obj(draw(st.permutations(fields)) if draw(st.booleans()) else fields)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["one"] * 8 + ["array", "junk"]))
    node: Any = draw(event()) if shape == "one" else (
        draw(st.lists(event() | BENIGN, max_size=3)) if shape == "array" else draw(BENIGN | DEEP))
    data = dump(node, ascii_only=draw(st.booleans()), spaced=draw(st.booleans()))
    mutation = draw(st.sampled_from(["none"] * 16 + ["truncate", "flip", "pad"]))
    if data and mutation == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif data and mutation == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif mutation == "pad":
        data = draw(st.sampled_from([b" ", b"\n", b"\xef\xbb\xbf", b"\t"])) + data + b" \r\n"
    return data


# ---- one message through every path --------------------------------------------------------


def _good(i: int) -> dict[str, Any]:
    return {"device_id": DEVICES[i % 2], "kind": KINDS[i % 3], "value": 1.5 + i,
            "ts": f"2026-11-23T07:0{i}:00+07:00", "unit": "m", "attrs": {"station": "Cầu Cái Nhúc"}}


def message(payload: bytes, transport: str, i: int = 0, device: str = DEVICES[0]) -> RawMessage:
    if transport == "mqtt":
        return RawMessage(payload, "mqtt", f"{MQTT_TOPIC_PREFIX}{device}", offset=i)
    if transport == "kafka":
        return RawMessage(payload, "kafka", "ioc.events", 0, i, device.encode())
    return RawMessage(payload, "http", offset=i)


def outcome(result: DecodeResult, index: int = 0, offset: int = 2) -> Any:
    """Events (the value as float.hex: -0.0 is not 0.0) and dead letters of the message at
    ``index`` of the call, whose offset is ``offset``."""
    e = result.events
    rows = [(e.device_id[i], e.event_id[i], e.kind[i], int(e.ts[i]), float(e.value[i]).hex(),
             e.unit[i], e.attrs[i])
            for i, m in enumerate(result.message_index.tolist()) if m == index]
    dead = [(d.reason, d.detail) for d in result.dead if d.offset == offset]
    return rows, dead


def every_path(payload: bytes, transport: str = "http", limits: DecodeLimits = LIMITS) -> Any:
    """The outcome of ``payload`` on every path, asserted equal to the reference's."""
    m = message(payload, transport, 2, DEVICES[0])
    rows, dead = expect(m, limits, NOW_US)
    want = ([(*r[:4], float(r[4]).hex(), *r[5:]) for r in rows], dead)
    alone = outcome(decode([m], limits, NOW_US))
    assert alone == want, payload[:300]
    goods = [message(json.dumps(_good(i)).encode(), transport, i, DEVICES[i % 2]) for i in (0, 1, 3, 4)]
    batch = decode([*goods[:2], m, *goods[2:]], limits, NOW_US)
    assert outcome(batch, 2) == want, payload[:300]
    assert [outcome(batch, i, i) for i in (0, 1, 3, 4)] == [
        ([(*r[:4], float(r[4]).hex(), *r[5:]) for r in expect(g, limits, NOW_US)[0]], [])
        for g in goods]
    assert outcome(_decode_each(_Run([m], limits, NOW_US))) == want, payload[:300]
    slow = _Run([m], limits, NOW_US)
    slow.feed(0, payload, m.source, m.topic, m.key, False)
    assert outcome(slow.result()) == want, payload[:300]
    column_wise = decode_uniform([[m]], limits, NOW_US)
    if column_wise is not None:
        assert outcome(DecodeResult(column_wise, [], np.zeros(1, np.int32), {})) == want
    with accelerated(False):
        assert outcome(decode([m], limits, NOW_US)) == want, payload[:300]
        assert outcome(decode([*goods[:2], m, *goods[2:]], limits, NOW_US), 2) == want
    return want


@PROFILE
@given(payloads(), st.sampled_from(["http"] * 4 + ["mqtt", "kafka"]), st.integers(0, 9))
@example(b'{"device_id":"hg-vt-wl-001","kind":"water_level","ts":"2026-11-23T07:00:00+0700",'
         b'"value":1}', "http", 1)
def test_every_path_decodes_like_the_strict_reference(payload: bytes, transport: str, registry: int) -> None:
    limits = REGISTRY if registry == 0 else LIMITS
    rows, dead = every_path(payload, transport, limits)
    m = message(payload, transport)
    note("column-wise" if decode_uniform([[m]], limits, NOW_US) is not None
         else "typed decode" if _screen([payload])[0] and _typed(payload) else "slow path")
    note(f"{len(rows)} events" if rows else "no event")
    for reason, detail in dead:
        note(f"{reason}: {_GENERIC.sub('_', detail.split(': ', 1)[-1])[:40]}")


@settings(PROFILE, max_examples=PROFILE.max_examples // 5)
@given(st.lists(payloads(), min_size=2, max_size=5), st.sampled_from(["http", "mqtt", "kafka"]))
def test_hostile_messages_together_decode_as_each_alone(items: list[bytes], transport: str) -> None:
    """Whatever else shares the call: each message's outcome is the reference's for it."""
    messages = [message(p, transport, i) for i, p in enumerate(items)]
    result = decode(messages, LIMITS, NOW_US)
    for i, m in enumerate(messages):
        rows, dead = expect(m, LIMITS, NOW_US)
        assert outcome(result, i, i) == ([(*r[:4], float(r[4]).hex(), *r[5:]) for r in rows], dead)


_GENERIC = re.compile(r"'.*'|[0-9]+")


def _typed(payload: bytes) -> bool:
    try:
        _MESSAGE_DECODER.decode(payload)
    except Exception:
        return False
    return True


# ---- the classes of the contract, one by one ----------------------------------------------------

OK_TS = "2026-11-23T07:00:00+07:00"


def payload_with(**fields: bytes) -> bytes:
    base = {"device_id": b'"hg-vt-wl-001"', "kind": b'"water_level"', "ts": f'"{OK_TS}"'.encode(),
            "value": b"1.5"}
    base.update(fields)
    return b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in base.items() if v) + b"}"


def verdict(payload: bytes) -> tuple[str, str] | list[tuple[Any, ...]]:
    rows, dead = every_path(payload)
    return dead[0] if dead else rows


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("where", ["zzz", "attrs", "value", "ts", "top"])
def test_nan_and_infinity_literals_are_bad_json_anywhere(literal: bytes, where: str) -> None:
    payload = {
        "zzz": payload_with(zzz=literal),
        "attrs": payload_with(attrs=b'{"depth": 1, "depth": %s}' % literal),
        "value": payload_with(value=literal),
        "ts": payload_with(ts=literal),
        "top": literal,
    }[where]
    assert verdict(payload) == ("bad_json", f"payload: {literal.decode()} is not valid JSON "
                                            "(JSON has no NaN or Infinity)")


@pytest.mark.parametrize(("payload", "bad"), [
    (payload_with(zzz=b'"\xff"'), b"\xff"),  # in an unknown field
    (payload_with()[:-1] + b',"\xc3\xa9\xff":1}', b"\xff"),  # in a key
    (payload_with(attrs=b'{"station": "V\xe1\xbb"}'), b"\xe1"),  # truncated, in attrs
    (payload_with(zzz=b'"\xed\xa0\x80"'), b"\xed"),  # a surrogate encoded in UTF-8
])
def test_invalid_utf8_anywhere_is_bad_json(payload: bytes, bad: bytes) -> None:
    assert verdict(payload) == ("bad_json", f"payload: not valid UTF-8 (byte {payload.index(bad)})")


def test_a_huge_integer_is_a_number_not_bad_json() -> None:
    zeros = b"1" + b"0" * 5000
    assert verdict(payload_with(value=zeros)) == (
        "not_finite", f"value: 1{'0' * 38}… overflows a double")
    assert verdict(payload_with(value=b"1e400")) == ("not_finite", "value: 1e400 overflows a double")
    rows = verdict(payload_with(attrs=b'{"serial": %s}' % zeros))
    assert isinstance(rows, list) and rows[0][-1] == '{"serial": ' + zeros.decode() + "}"
    assert verdict(payload_with(value=b"1e-400"))[0][4] == "0x0.0p+0"  # type: ignore[index]


@pytest.mark.parametrize("ts", [b"1" + b"0" * 5000, b"1e400", b"-1e400", b"1e306", b"1" + b"0" * 25])
def test_an_epoch_ms_literal_out_of_range_is_bad_timestamp(ts: bytes) -> None:
    reason, detail = verdict(payload_with(ts=ts))  # type: ignore[misc]
    assert reason == "bad_timestamp" and detail.endswith(" ms is outside years 1-9999"), detail


def test_an_offset_without_colon_is_bad_timestamp_on_every_path() -> None:
    for ts in ("2026-11-23T07:00:00+0700", "2026-11-23T00:00:00.5-0000", "2026-11-23 07:00:00+0700"):
        assert verdict(payload_with(ts=f'"{ts}"'.encode())) == (
            "bad_timestamp", f"ts: '{ts}' has an offset without a colon (must be ±HH:MM)")
    # epoch ms numbers stay accepted, and so does the colon
    assert len(verdict(payload_with(ts=b"1795392000000"))) == 1
    assert len(verdict(payload_with(ts=b'"2026-11-23T07:00:00+07:00"'))) == 1


@pytest.mark.parametrize("zero", [b"-0", b"-0.0", b"-0e3", b"0", b"-0.000"])
def test_a_zero_reading_is_stored_as_plus_zero(zero: bytes) -> None:
    rows = verdict(payload_with(value=zero))
    assert isinstance(rows, list) and rows[0][4] == "0x0.0p+0"
    result = decode([RawMessage(payload_with(value=zero), "http")], LIMITS, NOW_US)
    assert str(result.events.value[0]) == "0.0"


@pytest.mark.parametrize(("attrs", "detail"), [
    (b'{"a": 1e200000}', "attrs: 1e200000 is outside the range of PostgreSQL's numeric"),
    (b'{"a": 1e-16384}', "attrs: 1e-16384 is outside the range of PostgreSQL's numeric"),
    (b'{"a": 1e131072}', "attrs: 1e131072 is outside the range of PostgreSQL's numeric"),
    (b'{"a": 0e1073741823}', "attrs: 0e1073741823 is outside the range of PostgreSQL's numeric"),
    (b'{"a": [0.' + b"0" * 16383 + b"1]}", f"attrs: 0.{'0' * 37}… is outside the range of "
                                           "PostgreSQL's numeric"),
    (b'{"a": 1e200000, "a": 1}', "attrs: 1e200000 is outside the range of PostgreSQL's numeric"),
    (b'{"a": "\\u0000", "a": 1}', "attrs: contains \\u0000, which PostgreSQL jsonb cannot store"),
    (b'{"\\u0000": 1}', "attrs: contains \\u0000, which PostgreSQL jsonb cannot store"),
])
def test_attrs_postgresql_would_refuse_are_refused_at_decode_time(attrs: bytes, detail: str) -> None:
    assert verdict(payload_with(attrs=attrs)) == ("schema", detail)


@pytest.mark.parametrize("attrs", [b'{"a": 1e131071}', b'{"a": 1e-16383}', b'{"a": 0e200000}',
                                   b'{"a": 1.5e-16382}', b'{"a": 1e400}', b'{"a": "\\\\u0000"}',
                                   b'{"a": "\\ud83d\\ude00"}', b'{"a": -0}'])
def test_attrs_at_the_edge_of_jsonb_are_stored_as_sent(attrs: bytes) -> None:
    rows = verdict(payload_with(attrs=attrs))
    assert isinstance(rows, list) and rows[0][-1] == attrs.decode()


def test_attrs_too_deep_have_one_reason_whatever_else_the_event_holds() -> None:
    deep = b'{"a":' * (MAX_ATTRS_DEPTH + 1) + b"1e400" + b"}" * (MAX_ATTRS_DEPTH + 1)
    want = ("schema", f"attrs: nested deeper than {MAX_ATTRS_DEPTH} levels")
    assert verdict(payload_with(attrs=deep)) == want
    assert verdict(payload_with(attrs=deep, zzz=b'"\\u0041"', value=b"1e-5")) == want
    assert verdict(payload_with(attrs=deep, value=b'"x"')) == want  # attrs come before value


@pytest.mark.parametrize(("escape", "where"), [
    (b'"\\ud800"', "zzz"), (b'"\\uDBFF"', "attrs"), (b'"x\\udc00"', "device_id"),
    (b'"\\ud800\\u0041"', "unit"), (b'"\\ud800\\ud800\\udc00"', "key"),
])
def test_lone_surrogate_escapes_are_bad_json_saying_so(escape: bytes, where: str) -> None:
    if where == "attrs":
        payload = payload_with(attrs=b'{"a": %s}' % escape)
    elif where == "key":
        payload = payload_with(attrs=b'{%s: 1}' % escape)
    else:
        payload = payload_with(**{where: escape})
    code = escape.split(b"\\u")[1][:4].decode().lower()
    assert verdict(payload) == ("bad_json", f"payload: lone surrogate escape \\u{code}")


def test_repeated_keys_keep_the_last_value_at_top_level_and_in_values() -> None:
    rows = verdict(payload_with()[:-1] + b',"value":"x","value":2.5,"kind":"rainfall"}')
    assert isinstance(rows, list) and (rows[0][2], rows[0][4]) == ("rainfall", (2.5).hex())
    rows = verdict(b'{"device_id":"hg-vt-wl-001","ts":1795392000000,'
                   b'"values":{"rainfall":1,"salinity":2,"rainfall":3}}')
    assert isinstance(rows, list) and [(r[2], r[4]) for r in rows] == [
        ("rainfall", (3.0).hex()), ("salinity", (2.0).hex())]
    # attrs are stored as sent, every occurrence included
    rows = verdict(payload_with(attrs=b'{"a": 1, "a": 2}'))
    assert isinstance(rows, list) and rows[0][-1] == '{"a": 1, "a": 2}'


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 10_000])
def test_deep_junk_in_an_unknown_field_is_judged_by_a_fixed_depth(depth: int) -> None:
    junk = b"[" * depth + b"]" * depth
    got = verdict(payload_with(zzz=junk))
    if depth + 1 > MAX_JSON_DEPTH:  # the event object is one level more
        assert got == ("bad_json", f"payload: nested deeper than {MAX_JSON_DEPTH} levels")
    else:
        assert isinstance(got, list) and len(got) == 1


def test_malformed_json_names_the_byte() -> None:
    truncated = payload_with()[:-1]
    assert verdict(truncated) == ("bad_json", f"payload: Expecting ',' delimiter at byte {len(truncated)}")
    assert verdict(b'{"a": "x') == ("bad_json", "payload: Unterminated string starting at byte 6")
    assert verdict(b"") == ("bad_json", "payload: Expecting value at byte 0")
