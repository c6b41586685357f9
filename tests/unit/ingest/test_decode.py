"""Decoder behaviour per payload form, reason code and transport, with Hậu Giang fixtures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from ioc.ingest.decode import (
    _CACHE_MAX,
    _OK_ATTRS,
    _OK_DEVICES,
    EVENT_ID_NAMESPACE,
    REASONS,
    DecodeLimits,
    DecodeResult,
    decode,
    derive_event_id,
)
from ioc.model import RawMessage

ICT = timezone(timedelta(hours=7))  # Indochina time, what the Hậu Giang gateways send
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=ICT)
NOW_US = int(NOW.timestamp()) * 1_000_000
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=ICT)  # an hour before NOW
T0_US = int(T0.timestamp()) * 1_000_000
T0_MS = T0_US // 1000

VI_THANH_WL = "hg-vt-wl-001"  # Trạm Cầu Cái Nhúc, Vị Thanh
NGA_BAY_RAIN = "hg-nb-rain-002"  # Chợ Ngã Bảy
LONG_MY_SAL = "hg-lm-sal-003"  # Long Mỹ
PHUNG_HIEP_CAM = "hg-ph-cam-004"  # camera at Ngã bảy Phụng Hiệp


def reading(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_id": VI_THANH_WL,
        "kind": "water_level",
        "ts": "2026-11-23T07:00:00+07:00",
        "value": 1.82,
        "unit": "m",
        "attrs": {"station": "Cầu Cái Nhúc", "district": "Vị Thanh"},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()


def raw(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def run(
    *payloads: bytes | Any, source: str = "http", limits: DecodeLimits | None = None, **meta: Any
) -> DecodeResult:
    messages = [RawMessage(p if isinstance(p, bytes) else raw(p), source, **meta) for p in payloads]
    return decode(messages, limits or DecodeLimits(), now_us=NOW_US)


def only_dead(result: DecodeResult) -> tuple[str, str]:
    assert len(result.events) == 0
    assert len(result.dead) == 1, result.dead
    dead = result.dead[0]
    assert dead.detail is not None
    return dead.reason, dead.detail


def rows(result: DecodeResult) -> list[tuple[Any, ...]]:
    e = result.events
    return list(
        zip(e.device_id, e.event_id, e.kind, e.ts.tolist(), e.value.tolist(), e.unit, e.attrs, strict=True)
    )


# ---- payload forms ---------------------------------------------------------------------------


def test_single_event_becomes_one_row_with_every_column() -> None:
    result = run(reading(event_id="vt-wl-001-000042"))
    assert rows(result) == [
        (
            VI_THANH_WL,
            "vt-wl-001-000042",
            "water_level",
            T0_US,
            1.82,
            "m",
            '{"station":"Cầu Cái Nhúc","district":"Vị Thanh"}'.replace('":"', '": "').replace('","', '", "'),
        ),
    ]
    assert result.events.ts.dtype == np.int64
    assert result.events.value.dtype == np.float64
    assert result.message_index.dtype == np.int32
    assert result.message_index.tolist() == [0]
    assert result.dead == [] and result.rejected == {}


def test_attrs_are_kept_as_the_exact_json_text() -> None:
    payload = (
        b'{"device_id":"hg-vt-wl-001","kind":"water_level","ts":1795392000000,"value":1.5,'
        b'"attrs": {"station" : "C\xe1\xba\xa7u C\xc3\xa1i Nh\xc3\xbac", "tide": [1, 2.5]}}'
    )
    result = run(payload)
    assert result.events.attrs == ['{"station" : "Cầu Cái Nhúc", "tide": [1, 2.5]}']
    assert json.loads(result.events.attrs[0])["station"] == "Cầu Cái Nhúc"


def test_optional_fields_absent_or_null_give_none() -> None:
    result = run(reading(unit=DROP, attrs=DROP), reading(unit=None, attrs=None))
    assert result.events.unit == [None, None]
    assert result.events.attrs == [None, None]


def test_array_payload_yields_one_event_per_element() -> None:
    batch = [
        reading(device_id=VI_THANH_WL, value=1.7),
        reading(device_id=NGA_BAY_RAIN, kind="rainfall", value=12.5, unit="mm"),
        reading(device_id=LONG_MY_SAL, kind="salinity", value=3.2, unit="g/l"),
    ]
    result = run(batch, reading())
    assert result.events.device_id == [VI_THANH_WL, NGA_BAY_RAIN, LONG_MY_SAL, VI_THANH_WL]
    assert result.events.value.tolist() == [1.7, 12.5, 3.2, 1.82]
    assert result.message_index.tolist() == [0, 0, 0, 1]


def test_multi_reading_form_yields_one_event_per_value() -> None:
    body = {
        "device_id": NGA_BAY_RAIN,
        "ts": "2026-11-23T07:00:00+07:00",
        "values": {"water_level": 1.8, "rainfall": 12.5},
        "units": {"water_level": "m", "rainfall": "mm"},
        "attrs": {"station": "Chợ Ngã Bảy"},
    }
    result = run(body)
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows(result)] == [
        (NGA_BAY_RAIN, "water_level", T0_US, 1.8, "m"),
        (NGA_BAY_RAIN, "rainfall", T0_US, 12.5, "mm"),
    ]
    assert result.events.attrs == ['{"station": "Chợ Ngã Bảy"}'] * 2
    ids = result.events.event_id
    assert ids == [
        derive_event_id(NGA_BAY_RAIN, "water_level", T0_US),
        derive_event_id(NGA_BAY_RAIN, "rainfall", T0_US),
    ]
    assert ids[0] != ids[1]
    assert result.message_index.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("unit_fields", "expected"),
    [
        ({"unit": {"water_level": "m"}}, ["m", None]),
        ({"unit": "mm"}, ["mm", "mm"]),
        ({"unit": "mm", "units": {"water_level": "m"}}, ["m", "mm"]),
        ({}, [None, None]),
    ],
)
def test_multi_reading_units(unit_fields: dict[str, Any], expected: list[str | None]) -> None:
    body = {"device_id": LONG_MY_SAL, "ts": T0_MS, "values": {"water_level": 1.1, "rainfall": 0}}
    result = run({**body, **unit_fields})
    assert result.events.unit == expected


def test_multi_reading_bad_entry_rejects_only_that_reading() -> None:
    body = {
        "device_id": LONG_MY_SAL,
        "ts": T0_MS,
        "values": {"salinity": 4.1, "rainfall": "nhiều", "water_level": 1.3},
    }
    result = run(body)
    assert result.events.kind == ["salinity", "water_level"]
    assert only_dead_of(result) == ("schema", "values.rainfall: expected a number, got string")


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"kind": "rainfall"}, "values: cannot be combined with kind or value"),
        ({"event_id": "lm-1"}, "event_id: not allowed with values (ids derive per kind)"),
        ({"values": {}}, "values: empty"),
        ({"values": [1.2]}, "values: expected an object, got array"),
        ({"units": {"rain": "mm"}}, "units: 'rain' has no reading in values"),
        ({"values": {"Mực Nước": 1.2}}, "values: 'Mực Nước' must be 1-64 characters of a-z 0-9 . _ -"),
    ],
)
def test_multi_reading_schema_errors(extra: dict[str, Any], detail: str) -> None:
    body = {"device_id": LONG_MY_SAL, "ts": T0_MS, "values": {"salinity": 4.1}, **extra}
    assert only_dead(run(body)) == ("schema", detail)


def test_camera_detection_is_an_event_with_confidence() -> None:
    detection = reading(
        device_id=PHUNG_HIEP_CAM,
        kind="camera.fire",
        value=0.93,
        unit=DROP,
        attrs={
            "label": "fire",
            "bbox": [120, 40, 64, 80],
            "snapshot_url": "https://ioc.haugiang.gov.vn/snap/ph-004/1.jpg",
        },
    )
    result = run(detection)
    assert result.events.kind == ["camera.fire"]
    assert result.events.value.tolist() == [0.93]
    assert json.loads(result.events.attrs[0])["bbox"] == [120, 40, 64, 80]


@pytest.mark.parametrize("confidence", [1.01, -0.1, 93])
def test_camera_confidence_outside_unit_interval_is_schema(confidence: float) -> None:
    reason, detail = only_dead(run(reading(device_id=PHUNG_HIEP_CAM, kind="camera.smoke", value=confidence)))
    assert reason == "schema"
    assert detail.startswith("value: camera confidence")


def only_dead_of(result: DecodeResult) -> tuple[str, str | None]:
    assert len(result.dead) == 1, result.dead
    return result.dead[0].reason, result.dead[0].detail


# ---- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-23T07:00:00+07:00",
        "2026-11-23T00:00:00Z",
        "2026-11-23T00:00:00z",
        "2026-11-23T00:00:00+00:00",
        "2026-11-22T19:00:00-05:00",
        "2026-11-23T00:00:00.000Z",
        T0_MS,
        float(T0_MS),
    ],
)
def test_every_timestamp_form_gives_the_same_utc_microseconds(ts: Any) -> None:
    result = run(reading(ts=ts))
    assert result.events.ts.tolist() == [T0_US]
    assert int(datetime(2026, 11, 23, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000 == T0_US


def test_offset_timestamp_with_fraction_converts_to_utc() -> None:
    result = run(reading(ts="2026-11-23T07:30:15.123456+07:00"))
    expected = datetime(2026, 11, 23, 0, 30, 15, 123456, tzinfo=UTC)
    assert result.events.ts.tolist() == [T0_US + 30 * 60_000_000 + 15_123_456]
    assert result.events.ts.astype("datetime64[us]")[0] == np.datetime64(expected.replace(tzinfo=None))


def test_offset_across_midnight_and_fractional_epoch_ms() -> None:
    result = run(reading(ts="2026-11-23T02:15:00+07:00"), reading(ts=T0_MS + 0.5))
    assert result.events.ts.tolist() == [T0_US - 4 * 3600_000_000 - 45 * 60_000_000, T0_US + 500]


@pytest.mark.parametrize(
    ("ts", "detail"),
    [
        ("2026-11-23T07:00:00", "[0].ts: '2026-11-23T07:00:00' has no UTC offset (add Z or +07:00)"),
        ("23/11/2026 07:00", "[0].ts: '23/11/2026 07:00' is not an RFC 3339 timestamp"),
        ("2026-11-23T23:59:60Z", "[0].ts: '2026-11-23T23:59:60Z' is not an RFC 3339 timestamp"),
        (str(T0_MS), "[0].ts: epoch milliseconds must be a JSON number, not a string"),
        (True, "[0].ts: expected RFC 3339 text or epoch milliseconds, got boolean"),
        (None, "[0].ts: expected RFC 3339 text or epoch milliseconds, got null"),
        (10**20, "[0].ts: 100000000000000000000 ms is outside years 1-9999"),
    ],
)
def test_bad_timestamps_name_the_element_and_the_problem(ts: Any, detail: str) -> None:
    assert only_dead(run([reading(ts=ts)])) == ("bad_timestamp", detail)


def test_missing_timestamp_is_schema() -> None:
    assert only_dead(run(reading(ts=DROP))) == ("schema", "ts: missing")


def test_too_old_and_too_far_future_follow_the_limits() -> None:
    limits = DecodeLimits(max_event_age_s=86400, max_future_skew_s=600)
    day_us = 86400 * 1_000_000
    result = run(
        reading(ts=(NOW_US - day_us) // 1000),  # exactly at the age limit: kept
        reading(ts=(NOW_US - day_us) // 1000 - 1),
        reading(ts=(NOW_US + 600_000_000) // 1000),  # exactly at the skew limit: kept
        reading(ts="2026-11-23T08:10:01+07:00"),
        limits=limits,
    )
    assert result.message_index.tolist() == [0, 2]
    assert [(d.reason, d.detail) for d in result.dead] == [
        ("too_old", "ts: 2026-11-22T00:59:59.999000Z is older than 1d"),
        ("too_far_future", "ts: 2026-11-23T01:10:01Z is more than 10m ahead"),
    ]


def test_epoch_seconds_by_mistake_are_too_old_with_a_hint() -> None:
    reason, detail = only_dead(run(reading(ts=T0_MS // 1000)))
    assert reason == "too_old"
    assert detail.endswith("(epoch seconds? ts must be in milliseconds)")


def test_default_now_is_the_wall_clock() -> None:
    result = decode(
        [RawMessage(raw(reading(ts=DROP) | {"ts": "2000-01-01T00:00:00Z"}), "http")], DecodeLimits()
    )
    assert result.dead[0].reason == "too_old"


# ---- event ids ----------------------------------------------------------------------------------


def test_derived_event_id_is_uuid5_of_device_kind_and_microseconds() -> None:
    result = run(reading())
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{VI_THANH_WL}|water_level|{T0_US}")
    assert result.events.event_id == [str(expected)]
    assert uuid.uuid5(uuid.NAMESPACE_URL, "https://ioc-ingest/event-id") == EVENT_ID_NAMESPACE


def test_resent_reading_gets_the_same_id_in_any_timestamp_form() -> None:
    result = run(reading(), reading(ts="2026-11-23T00:00:00Z", value=1.83), reading(ts=T0_MS))
    assert len(set(result.events.event_id)) == 1


@pytest.mark.parametrize(
    "change",
    [{"kind": "rainfall"}, {"device_id": NGA_BAY_RAIN}, {"ts": T0_MS + 1}],
)
def test_a_different_reading_gets_a_different_id(change: dict[str, Any]) -> None:
    result = run(reading(), reading(**change))
    assert result.events.event_id[0] != result.events.event_id[1]


def test_derived_ids_match_uuid5_for_many_inputs() -> None:
    for i in range(200):
        device, kind, ts_us = f"hg-vt-{i}", f"kind.{i % 7}", T0_US + i * 999_983
        assert derive_event_id(device, kind, ts_us) == str(
            uuid.uuid5(EVENT_ID_NAMESPACE, f"{device}|{kind}|{ts_us}")
        )


@pytest.mark.parametrize(
    ("event_id", "ok"),
    [("a", True), ("x" * 128, True), ("", False), ("x" * 129, False), ("vt\n1", False), (42, False)],
)
def test_given_event_id_bounds(event_id: Any, ok: bool) -> None:
    result = run(reading(event_id=event_id))
    if ok:
        assert result.events.event_id == [event_id]
    else:
        assert only_dead(result)[0] == "schema"
        assert only_dead(result)[1].startswith("event_id: ")


# ---- reason codes from realistic payloads -----------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason", "detail_start"),
    [
        (
            b'{"device_id": "hg-vt-wl-001", "kind": "water_level", "ts": ',
            "bad_json",
            "payload: Expecting value at byte 59",
        ),
        (
            b'{"device_id": "hg-vt-wl-001", "kind": "water_level", "ts": x}',
            "bad_json",
            "payload: Expecting value at byte 59",
        ),
        (b"\xff\xfe{}", "bad_json", "payload: not valid UTF-8"),
        (b"", "bad_json", "payload: "),
        ("Mực nước 1.82 m".encode(), "bad_json", "payload: "),
        (b"[1.82]", "schema", "[0]: expected an event object, got number"),
        (b'"water_level"', "schema", "payload: expected an object or array, got string"),
        (b"[]", "schema", "payload: empty array"),
        (raw(reading(value="1.82")), "schema", "value: expected a number, got string"),
        (raw(reading(value=True)), "schema", "value: expected a number, got boolean"),
        (raw(reading(value=None)), "schema", "value: expected a number, got null"),
        (raw(reading(value=DROP)), "schema", "value: missing"),
        (raw(reading(kind=DROP)), "schema", "kind: missing"),
        (raw(reading(kind="Water Level")), "schema", "kind: 'Water Level' must be"),
        (raw(reading(kind=7)), "schema", "kind: expected a string, got number"),
        (raw(reading(device_id="trạm vị thanh")), "schema", "device_id: 'trạm vị thanh' must be"),
        (raw(reading(device_id="x" * 129)), "schema", "device_id: 'xxxx"),
        (raw(reading(device_id=1)), "schema", "device_id: expected a string, got number"),
        (raw(reading(device_id=DROP)), "schema", "device_id: missing"),
        (raw(reading(unit="m" * 33)), "schema", "unit: must be 0-32 characters"),
        (raw(reading(unit={"water_level": "m"})), "schema", "unit: expected a string, got object"),
        (raw(reading(units={"water_level": "m"})), "schema", "units: only allowed with values"),
        (raw(reading(attrs=["Vị Thanh"])), "schema", "attrs: expected an object, got array"),
        (raw(reading(attrs="Vị Thanh")), "schema", "attrs: expected an object, got string"),
        (raw(reading(attrs={"note": "a\u0000b"})), "schema", "attrs: contains \\u0000"),
        (
            raw(reading(attrs={"note": {"a": {"b": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}})),
            "schema",
            "attrs: nested deeper than 16 levels",
        ),
        (
            raw(reading(attrs={"blob": "x" * 70_000})),
            "schema",
            "attrs: 70012 bytes, more than the 65536 allowed",
        ),
        (raw(reading(value=float("nan"))), "bad_json", "payload: NaN is not valid JSON"),
        (raw(reading(value=float("inf"))), "bad_json", "payload: Infinity is not valid JSON"),
        (raw(reading(value=float("-inf"))), "bad_json", "payload: -Infinity is not valid JSON"),
        (raw(reading(value=DROP))[:-1] + b', "value": 1e999}', "not_finite",
         "value: 1e999 overflows a double"),
        (raw(reading(value=10**400)), "not_finite", "value: 1000000000000"),
        (raw(reading(ts=float("nan"))), "bad_json", "payload: NaN is not valid JSON"),
        (raw(reading(attrs={"depth": float("nan")})), "bad_json", "payload: NaN is not valid JSON"),
    ],
)
def test_reason_codes(payload: bytes, reason: str, detail_start: str) -> None:
    got_reason, detail = only_dead(run(payload))
    assert got_reason == reason
    assert detail.startswith(detail_start), detail
    assert reason in REASONS


def test_too_large_payload() -> None:
    big = raw(reading(attrs={"note": "Vị Thanh " * 200}))
    result = run(big, limits=DecodeLimits(max_payload_bytes=len(big) - 1))
    assert only_dead(result) == (
        "too_large",
        f"payload: {len(big)} bytes, more than the {len(big) - 1} allowed",
    )
    assert len(run(big, limits=DecodeLimits(max_payload_bytes=len(big))).events) == 1


def test_unknown_device_when_a_registry_is_given() -> None:
    limits = DecodeLimits(known_devices=frozenset({VI_THANH_WL, NGA_BAY_RAIN}))
    result = run(reading(), reading(device_id="hg-vt-wl-999"), limits=limits)
    assert result.events.device_id == [VI_THANH_WL]
    assert only_dead_of(result) == ("unknown_device", "device_id: 'hg-vt-wl-999' is not registered")


def test_dead_letter_keeps_transport_metadata_and_whole_raw_bytes() -> None:
    payload = raw([reading(), reading(value="cao")])
    message = RawMessage(
        payload, "kafka", topic="ioc.events", partition=3, offset=1207, key=VI_THANH_WL.encode()
    )
    result = decode([message], DecodeLimits(), now_us=NOW_US)
    assert len(result.events) == 1
    (dead,) = result.dead
    assert (dead.source, dead.topic, dead.partition, dead.offset) == ("kafka", "ioc.events", 3, 1207)
    assert dead.raw == payload
    assert (dead.reason, dead.detail) == ("schema", "[1].value: expected a number, got string")
    assert result.rejected == {"schema": 1}


def test_mixed_array_keeps_good_elements_and_names_bad_indexes() -> None:
    batch = [
        reading(value=1.71),
        reading(value=10**400),
        reading(ts="2026-11-23 07:05:00"),
        reading(device_id=NGA_BAY_RAIN, kind="rainfall", value=30.5, unit="mm"),
        "not an event",
        reading(kind="camera.crowd", value=2.0),
        reading(value=1.75, ts="2026-11-23T07:10:00+07:00"),
    ]
    good_raw = b'{"device_id":"hg-lm-sal-003","kind":"salinity","ts":1795392000000,"value":4}'
    result = run(raw(batch), good_raw)
    assert result.events.value.tolist() == [1.71, 30.5, 1.75, 4.0]
    assert result.message_index.tolist() == [0, 0, 0, 1]
    assert [(d.reason, d.detail) for d in result.dead] == [
        ("not_finite", f"[1].value: 1{'0' * 38}… overflows a double"),
        ("bad_timestamp", "[2].ts: '2026-11-23 07:05:00' has no UTC offset (add Z or +07:00)"),
        ("schema", "[4]: expected an event object, got string"),
        ("schema", "[5].value: camera confidence 2 is outside 0..1"),
    ]
    assert result.rejected == {"not_finite": 1, "bad_timestamp": 1, "schema": 2}
    # the good elements of the slow-path message are exactly what the fast path produces,
    # attrs as sent included
    fast = run(raw([batch[0], batch[3], batch[6]]))
    assert rows(result)[:3] == rows(fast)


# ---- transports -------------------------------------------------------------------------------


def test_mqtt_device_from_topic_when_payload_omits_it() -> None:
    result = run(reading(device_id=DROP), source="mqtt", topic=f"ioc/v1/events/{LONG_MY_SAL}")
    assert result.events.device_id == [LONG_MY_SAL]


def test_mqtt_topic_mismatch() -> None:
    result = run(reading(), source="mqtt", topic=f"ioc/v1/events/{NGA_BAY_RAIN}")
    assert only_dead(result) == (
        "topic_mismatch",
        f"device_id: '{VI_THANH_WL}' does not match the topic ('{NGA_BAY_RAIN}')",
    )
    assert result.dead[0].topic == f"ioc/v1/events/{NGA_BAY_RAIN}"


def test_mqtt_matching_topic_is_accepted() -> None:
    result = run(reading(), source="mqtt", topic=f"ioc/v1/events/{VI_THANH_WL}")
    assert result.events.device_id == [VI_THANH_WL]


def test_mqtt_topic_with_extra_levels_cannot_name_a_device() -> None:
    topic = f"ioc/v1/events/{VI_THANH_WL}/extra"
    assert only_dead(run(reading(), source="mqtt", topic=topic))[0] == "topic_mismatch"
    reason, detail = only_dead(run(reading(device_id=DROP), source="mqtt", topic=topic))
    assert reason == "schema"
    assert detail.endswith("(taken from the topic)")


def test_mqtt_array_checks_every_element_against_the_topic() -> None:
    batch = [reading(device_id=DROP), reading(device_id=VI_THANH_WL), reading(device_id="hg-x")]
    result = run(batch, source="mqtt", topic=f"ioc/v1/events/{VI_THANH_WL}")
    assert result.events.device_id == [VI_THANH_WL, VI_THANH_WL]
    assert only_dead_of(result)[0] == "topic_mismatch"
    assert result.dead[0].detail.startswith("[2].device_id: 'hg-x' does not match the topic")


def test_kafka_key_supplies_or_checks_the_device() -> None:
    key = NGA_BAY_RAIN.encode()
    assert run(reading(device_id=DROP), source="kafka", key=key).events.device_id == [NGA_BAY_RAIN]
    assert run(reading(device_id=NGA_BAY_RAIN), source="kafka", key=key).events.device_id == [NGA_BAY_RAIN]
    assert only_dead(run(reading(), source="kafka", key=key)) == (
        "topic_mismatch",
        f"device_id: '{VI_THANH_WL}' does not match the key ('{NGA_BAY_RAIN}')",
    )


def test_kafka_without_key_and_http_use_the_payload_device() -> None:
    assert run(reading(), source="kafka", key=None).events.device_id == [VI_THANH_WL]
    assert run(reading(), source="http").events.device_id == [VI_THANH_WL]
    assert only_dead(run(reading(device_id=DROP), source="http")) == ("schema", "device_id: missing")


# ---- robustness ------------------------------------------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    result = run(reading(firmware="2.4.1", location=[9.7842, 105.4701]))
    assert result.events.device_id == [VI_THANH_WL]


def test_deeply_nested_payload_is_one_dead_letter() -> None:
    payload = b'{"attrs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert only_dead(run(payload))[0] == "bad_json"


def test_empty_call() -> None:
    result = decode([], DecodeLimits(), now_us=NOW_US)
    assert len(result.events) == 0 and result.dead == [] and result.rejected == {}
    assert result.message_index.dtype == np.int32 and result.events.ts.dtype == np.int64


def test_validation_caches_shared_by_calls_stay_bounded() -> None:
    unique = [reading(device_id=f"hg-vt-wl-{i}", attrs={"n": i}) for i in range(_CACHE_MAX + 10)]
    # One bad message sends the call message by message, the path that caches attrs too.
    assert len(run(*unique, b"{").events) == len(unique)
    assert len(run(reading()).events) == 1  # the next call starts from emptied caches
    assert len(_OK_DEVICES) == 1 and len(_OK_ATTRS) == 1  # null alone: the scan caches no attrs
