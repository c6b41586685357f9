"""Property tests: the decoder never raises, accounts for every message, and is exact on valid input."""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioc.ingest.decode import (
    EVENT_ID_NAMESPACE,
    MQTT_TOPIC_PREFIX,
    REASONS,
    DecodeLimits,
    DecodeResult,
    _decode_each,
    _Run,
    decode,
    decode_uniform,
)
from ioc.model import PartitionMessages, RawMessage

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone(timedelta(hours=7)))
NOW_US = int(NOW.timestamp()) * 1_000_000
LIMITS = DecodeLimits(max_event_age_s=30 * 86400, max_future_skew_s=3600)
DEVICES = ["hg-vt-wl-001", "hg-nb-rain-002", "hg-lm-sal-003", "hg-ph-cam-004", "vi.thanh:07"]
KINDS = ["water_level", "rainfall", "salinity", "pm25", "camera.fire", "camera.crowd"]
PROFILE = settings(
    max_examples=int(os.environ.get("DECODE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_invariants(messages: list[RawMessage], result: DecodeResult) -> None:
    """What must hold for any input: accounting, column shapes and storable values."""
    events = result.events
    n = len(events)
    assert len(events.event_id) == len(events.kind) == len(events.unit) == len(events.attrs) == n
    assert events.ts.shape == events.value.shape == result.message_index.shape == (n,)
    assert str(result.message_index.dtype) == "int32"
    index = result.message_index.tolist()
    assert index == sorted(index)
    assert all(0 <= i < len(messages) for i in index)
    dead_offsets = {d.offset for d in result.dead}
    for i, message in enumerate(messages):
        assert i in dead_offsets or i in index, f"message {i} vanished: {message.payload!r}"
    for d in result.dead:
        assert d.reason in REASONS
        assert d.detail and "\n" not in d.detail and len(d.detail) < 200, d.detail
        assert "could not be decoded" not in d.detail, d.detail  # the last-resort guard fired
        assert d.raw == messages[d.offset].payload
        assert d.source == messages[d.offset].source
    assert sum(result.rejected.values()) == len(result.dead)
    assert all(math.isfinite(v) for v in events.value.tolist())
    assert all(
        NOW_US - LIMITS.max_event_age_s * 1e6 <= t <= NOW_US + LIMITS.max_future_skew_s * 1e6
        for t in events.ts.tolist()
    )
    for device, event_id, kind, unit, attrs in zip(
        events.device_id, events.event_id, events.kind, events.unit, events.attrs, strict=True
    ):
        assert 1 <= len(device) <= 128 and 1 <= len(event_id) <= 128 and 1 <= len(kind) <= 64
        assert unit is None or len(unit) <= 32
        if attrs is not None:
            assert "\\u0000" not in attrs
            assert isinstance(msgspec.json.decode(attrs), dict)


def as_messages(payloads: list[bytes], source: str = "http") -> list[RawMessage]:
    return [RawMessage(p, source, offset=i) for i, p in enumerate(payloads)]


@PROFILE
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_arbitrary_bytes_never_raise(payloads: list[bytes]) -> None:
    messages = as_messages(payloads)
    check_invariants(messages, decode(messages, LIMITS, now_us=NOW_US))


# ---- near-valid JSON -------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "\x00", "2026-11-23T07:00:00", "Vị Thanh", "m³/s", "\ud800"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(2026, 10, 20),
        max_value=datetime(2026, 11, 23, 3),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30))]
        ),
    ).map(lambda d: d.isoformat()),
    st.integers(min_value=NOW_US // 1000 - 40 * 86400_000, max_value=NOW_US // 1000 + 7200_000),
    st.floats(min_value=NOW_US / 1000 - 20 * 86400e3, max_value=NOW_US / 1000),
)


@st.composite
def near_valid_event(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "device_id": draw(st.sampled_from(DEVICES)),
        "ts": draw(timestamps),
        "attrs": {"station": draw(st.sampled_from(["Cầu Cái Nhúc", "Chợ Ngã Bảy", "Long Mỹ"]))},
    }
    if draw(st.booleans()):
        body["kind"] = draw(st.sampled_from(KINDS))
        body["value"] = draw(st.floats(min_value=0, max_value=1) | json_scalars)
        body["unit"] = draw(st.sampled_from(["m", "mm", "g/l"]))
        body["event_id"] = draw(st.none() | st.text(min_size=1, max_size=20))
    else:
        body["values"] = draw(st.dictionaries(st.sampled_from(KINDS), st.floats(0, 1), max_size=3))
        body["units"] = {k: "u" for k in body["values"] if draw(st.booleans())}
    fields = [*body, "kind", "value", "values", "value", "zzz"]
    for field in draw(st.lists(st.sampled_from(fields), max_size=2)):
        if draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = draw(json_values)
    return body


@st.composite
def near_valid_payload(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["one", "array", "junk"]))
    doc: Any
    if shape == "one":
        doc = draw(near_valid_event())
    elif shape == "array":
        doc = draw(st.lists(near_valid_event() | json_values, max_size=4))
    else:
        doc = draw(json_values)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none"] * 4 + ["truncate", "flip", "insert"]))
    if data and mutation == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif data and mutation == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif mutation == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"NaN", b"1e999", b"]", b"\\u0000", b"\xc3"])) + data[at:]
    return data


transports = st.one_of(
    st.just(("http", None, None)),
    st.just(("http", None, None)),
    st.tuples(
        st.just("mqtt"),
        st.sampled_from(
            [f"{MQTT_TOPIC_PREFIX}{d}" for d in DEVICES] + ["ioc/v1/events/", "ioc/v1/events/a/b", "x/y"]
        ),
        st.none(),
    ),
    st.tuples(
        st.just("kafka"),
        st.just("ioc.events"),
        st.none() | st.sampled_from([d.encode() for d in DEVICES]) | st.binary(max_size=4),
    ),
)


@PROFILE
@given(st.lists(st.tuples(near_valid_payload(), transports), min_size=1, max_size=6), st.booleans())
def test_near_valid_json_never_raises(
    items: list[tuple[bytes, tuple[str, str | None, bytes | None]]], registry: bool
) -> None:
    messages = [
        RawMessage(payload, source, topic=topic, offset=i, key=key)
        for i, (payload, (source, topic, key)) in enumerate(items)
    ]
    limits = LIMITS
    if registry:
        limits = DecodeLimits(
            limits.max_payload_bytes, limits.max_event_age_s, limits.max_future_skew_s, frozenset(DEVICES[:3])
        )
    check_invariants(messages, decode(messages, limits, now_us=NOW_US))


@PROFILE
@given(
    st.lists(
        st.tuples(near_valid_payload(), st.none() | st.sampled_from([d.encode() for d in DEVICES])),
        min_size=1,
        max_size=6,
    )
)
def test_partition_columns_decode_like_raw_messages(items: list[tuple[bytes, bytes | None]]) -> None:
    payloads = [p for p, _ in items]
    keys = [k for _, k in items]
    offsets = list(range(500, 500 + len(items)))
    columns = PartitionMessages("ioc.events", 2, payloads, keys, offsets)
    messages = [
        RawMessage(p, "kafka", "ioc.events", 2, o, k)
        for p, k, o in zip(payloads, keys, offsets, strict=True)
    ]
    assert list(columns) == messages and list(columns[1:]) == messages[1:]
    by_columns = decode(columns, LIMITS, now_us=NOW_US)
    by_messages = decode(messages, LIMITS, now_us=NOW_US)
    assert by_columns.dead == by_messages.dead
    got, want = by_columns.events, by_messages.events
    assert (got.device_id, got.event_id, got.kind, got.unit, got.attrs) == (
        want.device_id, want.event_id, want.kind, want.unit, want.attrs)
    assert got.ts.tolist() == want.ts.tolist() and got.value.tolist() == want.value.tolist()
    assert by_columns.message_index.tolist() == by_messages.message_index.tolist()


# ---- valid input is decoded exactly ----------------------------------------------------------

device_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
kinds = st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True).filter(lambda k: not k.startswith("camera."))
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@PROFILE
@given(
    st.lists(
        st.tuples(
            device_ids,
            kinds,
            st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2026, 11, 23, 1)),
            offsets,
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_valid_events_round_trip_exactly(
    specs: list[tuple[str, str, datetime, timezone, float, bool]], as_array: bool
) -> None:
    bodies, expected = [], []
    for device, kind, when, tz, value, epoch in specs:
        ts_utc = when.replace(tzinfo=UTC)
        ts_us = (ts_utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        if epoch:
            ts_us -= ts_us % 1000
            ts: Any = ts_us // 1000
        else:
            ts = ts_utc.astimezone(tz).isoformat()
        bodies.append({"device_id": device, "kind": kind, "ts": ts, "value": value})
        event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{device}|{kind}|{ts_us}"))
        expected.append((device, event_id, kind, ts_us, value))
    payloads = [msgspec.json.encode(bodies)] if as_array else [msgspec.json.encode(b) for b in bodies]
    messages = as_messages(payloads)
    result = decode(messages, LIMITS, now_us=NOW_US)
    check_invariants(messages, result)
    assert result.dead == []
    e = result.events
    got = list(zip(e.device_id, e.event_id, e.kind, e.ts.tolist(), e.value.tolist(), strict=True))
    assert got == expected


# ---- the column-wise path agrees with the message-by-message one -------------------------------


def rarely(draw: st.DrawFn, usual: Any, unusual: list[Any]) -> Any:
    """``usual`` 97 times in 100, else one of ``unusual``: batches must mostly be clean."""
    return usual if draw(st.integers(0, 99)) >= 3 else draw(st.sampled_from(unusual))


@st.composite
def rfc3339_texts(draw: st.DrawFn) -> str:
    """Timestamps in every layout the column-wise parser takes, and near misses it must not."""
    when = draw(st.datetimes(min_value=datetime(2026, 10, 25), max_value=datetime(2026, 11, 23, 2)))
    minutes = draw(st.sampled_from([0, 420, -210, 59, 23 * 60 + 59]))
    local = when + timedelta(minutes=minutes)
    date = rarely(draw, f"{local:%Y-%m-%d}",
                  ["2026-02-29", "2024-02-29", "2026-13-01", "2026-11-31", "0000-11-01"])
    clock = rarely(draw, f"{local:%H:%M:%S}",
                   ["24:00:00", "23:60:00", "23:59:60", "7:00:00", "07:00:0a"])
    digits = rarely(draw, draw(st.integers(0, 6)), [7, 8, 9])
    fraction = ("." + f"{local.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
                if digits else draw(st.sampled_from(["", ""])))
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    zone = rarely(draw, draw(st.sampled_from(["Z", offset])),
                  ["z", "-00:00", offset.replace(":", ""), "+24:00", ""])
    if zone in ("Z", "z"):
        fixed = f"{when:%Y-%m-%d}"
        date = fixed if date == f"{local:%Y-%m-%d}" else date
        clock = f"{when:%H:%M:%S}" if clock == f"{local:%H:%M:%S}" else clock
    sep = rarely(draw, "T", ["t", " ", "_"])
    return f"{date}{sep}{clock}{fraction}{zone}"


def nested(depth: int) -> dict[str, Any]:
    return {"a": nested(depth - 1)} if depth > 1 else {}


# Attrs seen for the first time (a camera's detections), checked together by the column-wise
# path: any JSON inside (NUL, lone surrogates, NaN), and bracket counts around the depth limit.
fresh_attrs = (
    st.dictionaries(st.text("ab", max_size=3), st.integers() | st.text("xỵ/\\\"", max_size=4),
                    max_size=3)
    | st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    | st.integers(15, 18).map(nested)
    | st.integers(10, 20).map(lambda n: {"boxes": [{"i": i} for i in range(n)]})
)


@st.composite
def uniform_event(draw: st.DrawFn) -> dict[str, Any]:
    """A single-reading event that is nearly always valid, with one rare flaw of any kind."""
    kind = draw(st.sampled_from(KINDS))
    body: dict[str, Any] = {
        "device_id": draw(st.sampled_from(DEVICES)),
        "kind": kind,
        "ts": draw(rfc3339_texts()) if draw(st.booleans()) else rarely(
            draw, draw(st.integers(NOW_US // 1000 - 20 * 86400_000, NOW_US // 1000 + 3000_000)),
            [2**63, -(2**70), 253_402_300_800_000, -62_135_596_800_001, 0]),
        "value": draw(st.floats(0, 1) if kind.startswith("camera.") else st.floats(-1e6, 1e6)),
    }
    for field, values in (
        ("event_id", st.from_regex(r"[ -~]{1,40}", fullmatch=True) | st.text(max_size=3)),
        ("unit", st.sampled_from(["m", "µg/m³", "mm"])),
        ("attrs", st.sampled_from([{"station": "Cầu Cái Nhúc"}, {"n": 1}, None]) | fresh_attrs),
    ):
        if draw(st.booleans()):
            body[field] = draw(values)
    flaw = rarely(draw, "none", ["field", "drop", "extra"])
    if flaw == "field":
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif flaw == "drop":
        body.pop(draw(st.sampled_from(sorted(body))))
    elif flaw == "extra":
        body[draw(st.sampled_from(["values", "units", "zzz", "unit", "event_id"]))] = draw(
            json_values)
    return body


@PROFILE
@given(
    st.lists(st.tuples(uniform_event(), st.sampled_from(["key", "none", "other"])),
             min_size=1, max_size=8),
    st.sampled_from(["kafka", "mqtt", "http"]),
    st.booleans(),
)
def test_column_wise_decode_equals_message_by_message(
    items: list[tuple[dict[str, Any], str]], source: str, registry: bool
) -> None:
    messages = []
    for i, (body, vouch) in enumerate(items):
        named = body.get("device_id")
        device = named if isinstance(named, str) and vouch == "key" else DEVICES[i % 2]
        payload = json.dumps(body, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
        if source == "kafka":
            messages.append(RawMessage(payload, source, "ioc.events", 0, i,
                                       None if vouch == "none" else device.encode()))
        elif source == "mqtt":
            messages.append(RawMessage(payload, source, f"{MQTT_TOPIC_PREFIX}{device}", offset=i))
        else:
            messages.append(RawMessage(payload, source, offset=i))
    limits = LIMITS
    if registry:
        limits = DecodeLimits(max_event_age_s=LIMITS.max_event_age_s,
                              known_devices=frozenset(DEVICES[:3]))
    got = decode(messages, limits, now_us=NOW_US)
    want = _decode_each(_Run(messages, limits, NOW_US))
    assert got.dead == want.dead and got.rejected == want.rejected
    g, w = got.events, want.events
    assert (g.device_id, g.event_id, g.kind, g.unit, g.attrs) == (
        w.device_id, w.event_id, w.kind, w.unit, w.attrs)
    assert g.ts.tolist() == w.ts.tolist() and g.value.tolist() == w.value.tolist()
    assert got.message_index.tolist() == want.message_index.tolist()
    assert got.events.ts.dtype == np.int64 and got.events.value.dtype == np.float64


@PROFILE
@given(st.lists(st.none() | st.just({"station": "Cầu Cái Nhúc"}) | fresh_attrs, min_size=1,
                max_size=12))
def test_column_wise_attrs_equal_message_by_message(attrs: list[Any]) -> None:
    """Batches valid but for their attrs, so that most reach the column-wise attrs checks."""
    messages = [
        RawMessage(json.dumps({"device_id": DEVICES[0], "kind": "water_level", "value": 1.0,
                               "ts": NOW_US // 1000 - i, "attrs": a}, ensure_ascii=False,
                              allow_nan=True).encode("utf-8", "surrogatepass"), "http", offset=i)
        for i, a in enumerate(attrs)
    ]
    got = decode(messages, LIMITS, now_us=NOW_US)
    want = _decode_each(_Run(messages, LIMITS, NOW_US))
    assert got.dead == want.dead and got.events.attrs == want.events.attrs
    assert got.message_index.tolist() == want.message_index.tolist()


def test_a_batch_of_valid_events_is_decoded_column_wise() -> None:
    bodies = [{"device_id": DEVICES[i % 3], "kind": KINDS[i % 3], "value": i * 0.5,
               "ts": f"2026-11-23T07:{i:02d}:00.{i:03d}+07:00", "unit": "m",
               "attrs": {"station": "Cầu Cái Nhúc"}} for i in range(40)]
    messages = [RawMessage(json.dumps(b).encode(), "kafka", "ioc.events", 0, i,
                           DEVICES[i % 3].encode()) for i, b in enumerate(bodies)]
    events = decode_uniform([messages[:15], messages[15:]], LIMITS, NOW_US)
    assert events is not None and len(events) == 40
    want = _decode_each(_Run(messages, LIMITS, NOW_US)).events
    assert events.event_id == want.event_id and events.ts.tolist() == want.ts.tolist()
    assert decode_uniform([[*messages, RawMessage(b"{", "kafka")]], LIMITS, NOW_US) is None


def test_the_compiled_scan_takes_the_forms_devices_send_and_refers_doubts() -> None:
    """Whitespace, any key order, unknown keys, epoch ms, escapes in attrs: column-wise and
    equal to the reference. An escape in an id or a number beyond the exact fast path: not."""
    device = DEVICES[0]
    taken = [
        b'{\n  "kind": "water_level",\n  "value": 1.5e0,\n  "ts": %d,\n  "device_id": "%s",\n'
        b'  "firmware": {"v": [1, 2.5, true, null, "x\\u00e9"]}\n}\n' % (NOW_US // 1000, device.encode()),
        b'{"device_id":"%s","kind":"rainfall","ts":"2026-11-23T00:59:00.5Z","value":-0,'
        b'"unit":null,"event_id":null,"attrs":{"label":"C\\"\\\\/\\n","n":-12.25}}' % device.encode(),
    ]
    refused = [
        b'{"device_id":"%s","kind":"w\\u0061ter","ts":1,"value":1}' % device.encode(),
        b'{"device_id":"%s","kind":"water_level","ts":"2026-11-23T07:00:00Z",'
        b'"value":0.30000000000000004}' % device.encode(),
        b'{"device_id":"%s","kind":"x","kind":"x","ts":"2026-11-23T07:00:00Z","value":1}'
        % device.encode(),
    ]
    for payloads, column_wise in ((taken, True), *(([p], False) for p in refused)):
        messages = [RawMessage(p, "kafka", "ioc.events", 0, i, device.encode())
                    for i, p in enumerate(payloads)]
        events = decode_uniform([messages], LIMITS, NOW_US)
        assert (events is not None) is column_wise, payloads
        want = _decode_each(_Run(messages, LIMITS, NOW_US)).events
        got = decode(messages, LIMITS, NOW_US).events
        assert (got.device_id, got.event_id, got.kind, got.unit, got.attrs) == (
            want.device_id, want.event_id, want.kind, want.unit, want.attrs)
        assert got.ts.tolist() == want.ts.tolist() and got.value.tolist() == want.value.tolist()
