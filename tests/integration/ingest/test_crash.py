"""`ioc run` when its own code raises on a message, and when the database stalls.

A message that makes the writer raise (injected with IOC_TEST_CRASH_DEVICE) is quarantined as
one ``poison`` dead letter, also when the process is killed -9 between its two crashes and the
broker delivers it again; /readyz says which task is failing meanwhile; an HTTP caller whose
events are not committed in time gets 503 with Retry-After, and a replay holds no lock.
"""

from __future__ import annotations

import asyncio
import threading
import time

import asyncpg
import pytest

from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.conftest import new_database
from tests.integration.ingest.conftest import query, wait_for_count, wait_rows
from tests.support.payloads import as_kafka, as_mqtt, water_levels
from tests.support.publish import kafka_create_topic, kafka_produce, mqtt_publish
from tests.support.service import http

POISON_DEVICE = "poison-vt-wl-000"


def poison_item() -> tuple[str, str, bytes]:
    return water_levels(1, "poison", devices=1)[0]


def test_http_poison_is_quarantined_and_readyz_names_the_writer(pg_server,
                                                                service_factory) -> None:
    dsn = new_database(pg_server, "crash_http")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_TEST_CRASH_DEVICE=POISON_DEVICE).start()
    poison = poison_item()[2]
    answer: list[tuple[int, object]] = []
    post = threading.Thread(target=lambda: answer.append(
        http("POST", f"{svc.url}/api/v1/ingest", poison)))
    post.start()
    readiness: list[tuple[int, object]] = []
    deadline = time.monotonic() + 10
    while post.is_alive() and time.monotonic() < deadline:
        readiness.append(http("GET", f"{svc.url}/readyz"))
        time.sleep(0.1)
    post.join(30)
    status, body = answer[0]
    assert status == 422, body
    assert [r["reason"] for r in body["detail"]["rejected"]] == ["poison"]
    failing = [b for s, b in readiness if s == 503]
    assert failing and "InjectedCrash" in failing[-1]["checks"]["pipeline-writer"]

    items = water_levels(100, "calm")
    started = time.monotonic()
    status, body = http("POST", f"{svc.url}/api/v1/ingest",
                        b"[" + b",".join(p for _, _, p in items) + b"]")
    assert status == 200 and body["accepted"] == 100
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while http("GET", f"{svc.url}/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http("GET", f"{svc.url}/readyz")[0] == 200
    _, metrics = http("GET", f"{svc.url}/metrics")
    assert 'ioc_task_failures_total{task="pipeline-writer"} 2.0' in metrics
    assert 'ioc_events_rejected_total{reason="poison",source="http"} 1.0' in metrics
    rows = asyncio.run(query(dsn, "SELECT reason, raw FROM dead_letters"))
    assert [(r["reason"], bytes(r["raw"])) for r in rows] == [("poison", poison)]
    assert "Traceback" in svc.log() and svc.log().count("InjectedCrash: injected crash") >= 2


@pytest.mark.parametrize("transport", ["mqtt", "kafka"])
def test_poison_redelivered_across_kill_9(transport: str, pg_server, mqtt_broker: EmbeddedMosquitto,
                                          kafka: EmbeddedKafka, service_factory) -> None:
    dsn = new_database(pg_server, f"crash_{transport}")
    if transport == "mqtt":
        env = {"IOC_MQTT_URL": mqtt_broker.url, "IOC_MQTT_CLIENT_ID": "ioc-crash"}
        send = lambda items: mqtt_publish(mqtt_broker.url, as_mqtt(items))  # noqa: E731
    else:
        topic = f"crash-{int(time.time() * 1000)}"
        asyncio.run(kafka_create_topic(kafka.bootstrap, topic, partitions=2))
        env = {"IOC_KAFKA_BOOTSTRAP": kafka.bootstrap, "IOC_KAFKA_TOPIC": topic,
               "IOC_KAFKA_GROUP": f"g-{topic}"}
        send = lambda items: asyncio.run(  # noqa: E731
            kafka_produce(kafka.bootstrap, topic, as_kafka(items)))
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_TEST_CRASH_DEVICE=POISON_DEVICE, **env)
    svc.start()
    before = water_levels(50, "before")
    poison = poison_item()
    send([*before[:25], poison, *before[25:]])
    # The first crash is recorded before the writer tries again: kill -9 right then.
    rows = wait_rows(dsn, "SELECT crashes FROM ingest_suspects", 1)
    svc.kill()
    assert rows and max(r["crashes"] for r in rows) == 1, svc.log()[-3000:]
    assert asyncio.run(query(dsn, "SELECT * FROM dead_letters")) == []

    svc.start()
    after = water_levels(100, "after")
    send(after)
    assert len(wait_for_count(dsn, "after", 100, timeout=30)) == 100
    assert len(wait_for_count(dsn, "before", 50, timeout=30)) == 50
    wait_rows(dsn, "SELECT reason FROM dead_letters", 1)
    time.sleep(1)
    dead = asyncio.run(query(dsn, "SELECT reason, raw, source FROM dead_letters"))
    assert [(r["reason"], bytes(r["raw"]), r["source"]) for r in dead] == \
        [("poison", poison[2], transport)]
    deadline = time.monotonic() + 15
    while http("GET", f"{svc.url}/readyz")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http("GET", f"{svc.url}/readyz")[0] == 200

    # Once quarantined, the next restart and redelivery crash nothing.
    svc.stop()
    assert svc.returncode == 0
    svc.start()
    more = water_levels(20, "more")
    send(more)
    assert len(wait_for_count(dsn, "more", 20, timeout=30)) == 20
    assert "InjectedCrash" not in svc.log().split("service started")[-1]
    assert len(asyncio.run(query(dsn, "SELECT * FROM dead_letters"))) == 1


def test_ingest_and_replay_answer_in_time_and_hold_no_lock(pg_server, service_factory) -> None:
    dsn = new_database(pg_server, "timeout")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_INGEST_TIMEOUT="2s").start()
    item = water_levels(1, "slow")[0]
    replayable = water_levels(1, "replayed")[0]
    dead_id = asyncio.run(query(
        dsn, "INSERT INTO dead_letters (source, reason, detail, raw) "
             "VALUES ('http', 'db_rejected', 'refused once', $1) RETURNING id",
        replayable[2]))[0]["id"]

    async def stalled() -> None:
        locker = await asyncpg.connect(dsn)
        other = await asyncpg.connect(dsn)
        try:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            status, body = await asyncio.to_thread(http, "POST", f"{svc.url}/api/v1/ingest",
                                                   item[2])
            assert status == 503 and body["error"] == "timeout", body
            assert "may still be stored" in body["detail"]
            assert time.monotonic() - started < 4

            replay = asyncio.create_task(asyncio.to_thread(
                http, "POST", f"{svc.url}/api/v1/dead-letters/{dead_id}/replay"))
            await asyncio.sleep(1)
            async with other.transaction():  # the dead letter is not locked meanwhile
                row = await other.fetchrow("SELECT id FROM dead_letters WHERE id = $1 "
                                           "FOR UPDATE NOWAIT", dead_id)
                assert row is not None
            status, body = await replay
            assert status == 503 and body["error"] == "timeout", body
            await tx.rollback()
        finally:
            await locker.close()
            await other.close()

    asyncio.run(stalled())
    assert wait_for_count(dsn, "slow", 1, timeout=10) == [item[1]]  # it was stored after all
    assert wait_for_count(dsn, "replayed", 1, timeout=10) == [replayable[1]]
    status, body = http("POST", f"{svc.url}/api/v1/dead-letters/{dead_id}/replay")
    assert status == 200 and (body["accepted"], body["duplicates"]) == (0, 1), body
    status, body = http("POST", f"{svc.url}/api/v1/dead-letters/{dead_id}/replay")
    assert status == 409
    status, body = http("POST", f"{svc.url}/api/v1/ingest", item[2])
    assert status == 200 and body == {"accepted": 0, "duplicates": 1, "rejected": []}
