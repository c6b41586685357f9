"""The decoder with the accelerators on and off: the same events and dead letters.

On, a group of valid single-event messages is decoded column-wise by the compiled scan
(ioc/fast/scan.py) and the rest message by message after the compiled screen; off, every
message goes message by message after the plain screen, and the slow path counts nesting in
Python. Groups are test_decode_fuzz's events (nearly all valid, so that whole groups go
column-wise) with test_decode_strict's hostile payloads among them. Then the helpers alone:
the nesting count exactly, and the screens: whatever the plain screen lets through that the
compiled one refuses, msgspec's typed decode refuses by itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from ioc.fast import scan
from ioc.ingest.decode import (
    MAX_JSON_DEPTH,
    MQTT_TOPIC_PREFIX,
    DecodeLimits,
    _plain_nesting,
    _plain_screen,
    decode,
    decode_uniform,
)
from ioc.model import RawMessage
from tests.unit.fast import accelerated
from tests.unit.ingest.test_decode_fuzz import DEVICES, KINDS, LIMITS, NOW_US, uniform_event
from tests.unit.ingest.test_decode_strict import _typed as typed_decode_takes
from tests.unit.ingest.test_decode_strict import payloads as hostile_payloads

ICT = timezone(timedelta(hours=7))
PROFILE = settings(max_examples=400, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    """A single-reading event as devices send them, which the compiled scan takes."""
    kind = draw(st.sampled_from(KINDS))
    ms = draw(st.integers(NOW_US // 1000 - 20 * 86400_000, NOW_US // 1000 + 3000_000))
    body: dict[str, Any] = {
        "device_id": draw(st.sampled_from(DEVICES)),
        "kind": kind,
        "ts": ms if draw(st.booleans()) else
        (datetime.fromtimestamp(ms / 1000, ICT).isoformat(timespec="milliseconds")),
        "value": draw(st.integers(0, 100) if kind.startswith("camera.")
                      else st.integers(-10**6, 10**6)) / 100,
    }
    for field, values in (("event_id", st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True)),
                          ("unit", st.sampled_from(["m", "µg/m³", "mm"])),
                          ("attrs", st.sampled_from([{"station": "Cầu Cái Nhúc"}, {"n": [1, 2.5]}]))):
        if draw(st.booleans()):
            body[field] = draw(values)
    return body


@st.composite
def groups(draw: st.DrawFn) -> list[bytes]:
    """Single-event messages: valid ones, or with test_decode_fuzz's among them (each with a
    rare flaw of any kind), or test_decode_strict's hostile payloads too."""
    group = draw(st.sampled_from(["valid", "flawed", "hostile"]))
    events = valid_event() if group == "valid" else valid_event() | uniform_event()
    items = [encoded(b) for b in draw(st.lists(events, min_size=1, max_size=10))]
    if group == "hostile":
        for payload in draw(st.lists(hostile_payloads(), min_size=1, max_size=3)):
            items.insert(draw(st.integers(0, len(items))), payload)
    return items


def messages(payloads: list[bytes], source: str) -> list[RawMessage]:
    """As the transport would hand them over, vouching for the device the payload names."""
    out = []
    for i, payload in enumerate(payloads):
        try:
            named = json.loads(payload).get("device_id")
        except (ValueError, AttributeError, RecursionError):
            named = None
        device = named if isinstance(named, str) and named in DEVICES else DEVICES[i % 2]
        if source == "kafka":
            out.append(RawMessage(payload, source, "ioc.events", 0, i, device.encode()))
        elif source == "mqtt":
            out.append(RawMessage(payload, source, f"{MQTT_TOPIC_PREFIX}{device}", offset=i))
        else:
            out.append(RawMessage(payload, source, offset=i))
    return out


def decoded(batch: list[RawMessage], limits: DecodeLimits, on: bool) -> tuple[Any, ...]:
    """Everything decode() answers, compared as plain values (the value as float.hex)."""
    with accelerated(on):
        result = decode(batch, limits, NOW_US)
    e = result.events
    return ([list(c) for c in (e.device_id, e.event_id, e.kind, e.unit, e.attrs)],
            e.ts.tolist(), [v.hex() for v in e.value.tolist()], e.ts.dtype, e.value.dtype,
            result.message_index.tolist(), result.dead, result.rejected)


@PROFILE
@given(groups(), st.sampled_from(["kafka", "mqtt", "http"]), st.booleans())
def test_decoding_with_the_accelerators_off_gives_the_same_answer(
        payloads: list[bytes], source: str, registry: bool) -> None:
    batch = messages(payloads, source)
    limits = LIMITS
    if registry:
        limits = DecodeLimits(max_event_age_s=LIMITS.max_event_age_s,
                              known_devices=frozenset(DEVICES[:3]))
    with accelerated(True):
        note("column-wise" if decode_uniform([batch], limits, NOW_US) is not None
             else "message by message")
    assert decoded(batch, limits, True) == decoded(batch, limits, False)


def test_a_valid_group_goes_column_wise_only_with_the_accelerators_on() -> None:
    bodies = [{"device_id": DEVICES[i % 3], "kind": "water_level", "value": i * 0.5,
               "ts": f"2026-11-23T07:{i:02d}:00+07:00", "unit": "m",
               "attrs": {"station": "Cầu Cái Nhúc"}} for i in range(20)]
    batch = messages([encoded(b) for b in bodies], "kafka")
    with accelerated(True):
        assert decode_uniform([batch], LIMITS, NOW_US) is not None
    with accelerated(False):
        assert decode_uniform([batch], LIMITS, NOW_US) is None
    assert decoded(batch, LIMITS, True) == decoded(batch, LIMITS, False)


def compiled_nesting(data: bytes) -> int:
    return int(scan.nesting(np.frombuffer(data, np.uint8), 0, len(data)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80) | st.text('[]{}"\\ab', max_size=80).map(str.encode))
def test_the_nesting_count_is_the_compiled_one(data: bytes) -> None:
    assert _plain_nesting(data) == compiled_nesting(data)


def test_the_nesting_count_at_depth() -> None:
    for depth in (0, 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 5000):
        data = b'{"a":' * depth + b'"]}\\\\"' + b"}" * depth
        assert _plain_nesting(data) == compiled_nesting(data) == depth


def compiled_screen(payload: bytes) -> bool:
    clean = np.empty(1, np.bool_)
    scan.screen(np.frombuffer(payload, np.uint8), np.zeros(1, np.int64),
                np.array([len(payload)], np.int64), MAX_JSON_DEPTH, clean)
    return bool(clean[0])


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_payloads() | uniform_event().map(encoded))
def test_the_plain_screen_lets_through_nothing_msgspec_would_get_wrong(payload: bytes) -> None:
    plain, compiled = _plain_screen(payload), compiled_screen(payload)
    note(f"plain {plain}, compiled {compiled}")
    if plain and not compiled:
        assert not typed_decode_takes(payload), payload[:300]
