"""Hostile payloads over HTTP, MQTT and Kafka at one running service: each is stored or
dead-lettered with its stated reason, nothing reaches the database that it would refuse, and
the stream goes on (100 normal events right after are stored within 5 s; /readyz 200)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time

import asyncpg

from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.conftest import new_database
from tests.integration.ingest.conftest import query, wait_for_count
from tests.support.payloads import as_kafka, as_mqtt, water_levels
from tests.support.publish import kafka_create_topic, kafka_produce, mqtt_publish
from tests.support.service import http

DEVICE = "hostile-vt-wl-001"


def hostile(prefix: str) -> dict[str, tuple[bytes, str | None]]:
    """name -> (payload, expected dead-letter reason or None when it is stored)."""
    ts = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).replace(microsecond=0)

    def event(name: str, *, value: str = "1.5", ts_text: str | None = None,
              attrs: str = '{"station": "Cầu Cái Nhúc"}', extra: str = "") -> bytes:
        stamp = ts_text if ts_text is not None else json.dumps(ts.isoformat())
        return (f'{{"event_id": "{prefix}-{name}", "device_id": "{DEVICE}", '
                f'"kind": "water_level", "ts": {stamp}, "value": {value}, "unit": "m", '
                f'"attrs": {attrs}{extra}}}').encode()

    deep = "1e400"
    for _ in range(17):
        deep = f'{{"a": {deep}}}'
    return {
        "nan_unknown_field": (event("nan_unknown_field", extra=', "note": NaN'), "bad_json"),
        "infinity_in_attrs": (event("infinity_in_attrs", attrs='{"a": 1, "a": Infinity}'),
                              "bad_json"),
        "minus_infinity_value": (event("minus_infinity_value", value="-Infinity"), "bad_json"),
        "nan_ts": (event("nan_ts", ts_text="NaN"), "bad_json"),
        "nan_top_level": (b"NaN", "bad_json"),
        "bad_utf8_unknown_field": (event("bad_utf8_unknown_field", extra=', "note": "VAL"')
                                   .replace(b"VAL", b"\xff\xfe"), "bad_json"),
        "bad_utf8_key": (event("bad_utf8_key", extra=', "KEY": 1').replace(b"KEY", b"\xc3\x28"),
                         "bad_json"),
        "huge_integer_value": (event("huge_integer_value", value="1" + "0" * 5000),
                               "not_finite"),
        "offset_without_colon": (event("offset_without_colon", ts_text=json.dumps(
            ts.strftime("%Y-%m-%dT%H:%M:%S+0700"))), "bad_timestamp"),
        "minus_zero": (event("minus_zero", value="-0"), None),
        "attrs_number_too_big": (event("attrs_number_too_big", attrs='{"x": 1e200000}'),
                                 "schema"),
        "attrs_number_too_small": (event("attrs_number_too_small", attrs='{"x": 1e-16384}'),
                                   "schema"),
        "attrs_nul_under_duplicate": (event("attrs_nul_under_duplicate",
                                            attrs='{"k": "a\\u0000b", "k": "ok"}'), "schema"),
        "attrs_too_deep": (event("attrs_too_deep", attrs=deep), "schema"),
        "lone_surrogate": (event("lone_surrogate", attrs='{"k": "\\ud800"}'), "bad_json"),
        "big_integer_in_attrs": (event("big_integer_in_attrs", attrs='{"n": 1' + "0" * 400 + "}"),
                                 None),
    }


async def stored(dsn: str, prefix: str) -> dict[str, float]:
    rows = await query(dsn, "SELECT event_id, value FROM events WHERE event_id LIKE $1",
                       prefix + "-%")
    return {r["event_id"].removeprefix(prefix + "-"): r["value"] for r in rows}


async def dead_letters(dsn: str, source: str) -> list[asyncpg.Record]:
    return await query(dsn, "SELECT reason, detail, raw FROM dead_letters WHERE source = $1",
                       source)


def test_hostile_payloads_over_every_transport(pg_server, mqtt_broker: EmbeddedMosquitto,
                                               kafka: EmbeddedKafka, service_factory) -> None:
    dsn = new_database(pg_server, "hostile")
    topic = f"hostile-{int(time.time() * 1000)}"
    asyncio.run(kafka_create_topic(kafka.bootstrap, topic, partitions=2))
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-hostile", IOC_KAFKA_BOOTSTRAP=kafka.bootstrap,
                          IOC_KAFKA_TOPIC=topic, IOC_KAFKA_GROUP=f"g-{topic}").start()

    def send_http(items: list[tuple[str, bytes]]) -> None:
        for _, payload in items:
            status, body = http("POST", f"{svc.url}/api/v1/ingest", payload)
            assert status in (200, 422), body

    senders = {
        "http": send_http,
        "mqtt": lambda items: mqtt_publish(mqtt_broker.url, [
            (f"ioc/v1/events/{DEVICE}", p) for _, p in items]),
        "kafka": lambda items: asyncio.run(kafka_produce(kafka.bootstrap, topic, [
            (DEVICE, p) for _, p in items])),
    }
    for source, send in senders.items():
        cases = hostile(source)
        send(list((name, payload) for name, (payload, _) in cases.items()))
        normal = water_levels(100, f"after-{source}")
        started = time.monotonic()
        if source == "http":
            status, body = http("POST", f"{svc.url}/api/v1/ingest",
                                b"[" + b",".join(p for _, _, p in normal) + b"]")
            assert status == 200 and body["accepted"] == 100, body
        elif source == "mqtt":
            mqtt_publish(mqtt_broker.url, as_mqtt(normal))
        else:
            asyncio.run(kafka_produce(kafka.bootstrap, topic, as_kafka(normal)))
        assert len(wait_for_count(dsn, f"after-{source}", 100, timeout=5)) == 100, source
        assert time.monotonic() - started < 5, source

        expected_dead = {name: reason for name, (_, reason) in cases.items() if reason}
        rows: list[asyncpg.Record] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = asyncio.run(dead_letters(dsn, source))
            if len(rows) >= len(expected_dead):
                break
            time.sleep(0.2)
        by_raw = {bytes(r["raw"]): r for r in rows}
        for name, reason in expected_dead.items():
            row = by_raw.get(cases[name][0])
            assert row is not None, (source, name)
            assert row["reason"] == reason, (source, name, row["reason"], row["detail"])
            assert row["detail"], (source, name)
        assert len(rows) == len(expected_dead), (source, [r["reason"] for r in rows])
        values = asyncio.run(stored(dsn, source))
        assert set(values) == {n for n, (_, r) in cases.items() if r is None}, source
        assert values["minus_zero"] == 0.0 and math.copysign(1, values["minus_zero"]) == 1.0

    assert "db_rejected" not in json.dumps([r["reason"] for s in senders
                                            for r in asyncio.run(dead_letters(dsn, s))])
    status, body = http("GET", f"{svc.url}/readyz")
    assert status == 200, body
    assert "Traceback" not in svc.log()
