"""Bad input through the real broker and HTTP: every reason code, nothing else lost or blocked."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys

import asyncpg

from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.conftest import new_database
from tests.integration.ingest.conftest import wait_for_count
from tests.support.publish import mqtt_publish
from tests.support.service import http

VN = dt.timezone(dt.timedelta(hours=7))
KNOWN = "hg-vt-wl-001"


def reading(event_id: str, device: str = KNOWN, **override: object) -> dict:
    body = {"event_id": event_id, "device_id": device, "kind": "water_level",
            "ts": dt.datetime.now(VN).isoformat(timespec="seconds"), "value": 1.31, "unit": "m"}
    body.update(override)
    return body


def enc(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


async def dead_letters(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT source, topic, reason, detail, raw FROM dead_letters "
                                "ORDER BY id")
    finally:
        await conn.close()


def test_every_reason_code_through_mqtt(pg_server, mqtt_broker: EmbeddedMosquitto,
                                        service_factory) -> None:
    dsn = new_database(pg_server, "reasons")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-reasons", IOC_REQUIRE_KNOWN_DEVICES="true",
                          IOC_MAX_PAYLOAD_BYTES="4096").start()
    topic = f"ioc/v1/events/{KNOWN}"
    now = dt.datetime.now(VN)
    bad = {
        "bad_json": (topic, b'{"device_id": "hg-vt-wl-001", "value": '),
        "schema": (topic, enc({k: v for k, v in reading("x").items() if k != "value"})),
        "bad_timestamp": (topic, enc(reading("x", ts="hôm qua"))),
        "too_old": (topic, enc(reading("x", ts=(now - dt.timedelta(days=800)).isoformat()))),
        "too_far_future": (topic, enc(reading("x", ts=(now + dt.timedelta(days=2)).isoformat()))),
        "not_finite": (topic, enc(reading("x")).replace(b'"value": 1.31', b'"value": 1e999')),
        "too_large": (topic, enc(reading("x", attrs={"blob": "x" * 5000}))),
        "topic_mismatch": ("ioc/v1/events/hg-nb-wl-001", enc(reading("x"))),
        "unknown_device": ("ioc/v1/events/hg-xx-zz-999", enc(reading("x", device="hg-xx-zz-999"))),
    }
    good = [(topic, enc(reading(f"good-{i:03d}"))) for i in range(len(bad) + 1)]
    messages = [good[0]]
    for i, item in enumerate(bad.values()):
        messages += [item, good[i + 1]]
    mqtt_publish(mqtt_broker.url, messages)

    ids = wait_for_count(dsn, "good", len(good))
    assert sorted(ids) == sorted(f"good-{i:03d}" for i in range(len(good)))
    rows = []
    for _ in range(40):
        rows = asyncio.run(dead_letters(dsn))
        if len(rows) >= len(bad):
            break
    assert sorted(r["reason"] for r in rows) == sorted(bad)
    by_reason = {r["reason"]: r for r in rows}
    for reason, (sent_topic, payload) in bad.items():
        row = by_reason[reason]
        assert row["source"] == "mqtt" and row["topic"] == sent_topic
        assert bytes(row["raw"]) == payload, reason
        assert row["detail"], reason
    status, metrics = http("GET", f"{svc.url}/metrics")
    assert status == 200
    for reason in bad:
        assert f'ioc_events_rejected_total{{reason="{reason}",source="mqtt"}} 1.0' in metrics
    assert f"ioc_events_stored_total {float(len(good))}" in metrics
    for name in ("ioc_events_received_total", "ioc_ingest_batch_rows", "ioc_db_write_seconds",
                 "ioc_ingest_queue_depth", "ioc_event_lag_seconds", "ioc_rule_eval_seconds",
                 "ioc_alerts_open", "ioc_source_connected"):
        assert name in metrics, name


def test_http_ingest_answers_after_commit(pg_server, service_factory, tmp_path) -> None:
    dsn = new_database(pg_server, "http_ingest")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_AUTH="on", IOC_MAX_PAYLOAD_BYTES="65536")
    key = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "keys", "create", "--role", "ingest", "--name", "lgsp"],
        env={**svc.env, "IOC_DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True).stdout.strip()
    assert key.startswith("ioc_") and "\n" not in key
    svc.start()
    url = f"{svc.url}/api/v1/ingest"
    batch = [reading(f"http-{i}") for i in range(3)]
    multi = {"device_id": "hg-vt-rf-001", "ts": "2026-11-23T07:00:00+07:00",
             "values": {"rainfall": 12.5, "water_level": 1.8}}

    status, body = http("POST", url, enc({"x": 1}))
    assert status == 401 and body["error"] == "unauthorized"
    status, body = http("POST", url, json.dumps(batch).encode(), key=key)
    assert status == 200 and body == {"accepted": 3, "duplicates": 0, "rejected": []}
    conn_rows = wait_for_count(dsn, "http", 3, timeout=1)  # committed before the answer
    assert len(conn_rows) == 3
    status, body = http("POST", url, json.dumps(batch).encode(), key=key)
    assert status == 200 and body == {"accepted": 0, "duplicates": 3, "rejected": []}
    status, body = http("POST", url, enc(multi), key=key)
    assert status == 200 and body["accepted"] == 2
    mixed = [reading("http-ok"), reading("http-bad", value="cao")]
    status, body = http("POST", url, json.dumps(mixed).encode(), key=key)
    assert status == 200 and body["accepted"] == 1
    assert [r["reason"] for r in body["rejected"]] == ["schema"]
    status, body = http("POST", url, b"not json", key=key)
    assert status == 422 and body["error"] == "invalid"
    assert body["detail"]["rejected"][0]["reason"] == "bad_json"
    status, body = http("POST", url, b"[" + b" " * 70000 + b"]", key=key)
    assert status == 413 and body["error"] == "payload_too_large"
