"""End-to-end delivery through real brokers into real PostgreSQL: exactly once, through crashes."""

from __future__ import annotations

import asyncio
import threading
import time

import psutil
import pytest

from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.settings import Settings
from tests.conftest import new_database
from tests.integration.ingest.conftest import event_ids, wait_for_count
from tests.support.payloads import as_kafka, as_mqtt, water_levels
from tests.support.publish import kafka_create_topic, kafka_produce, mqtt_publish
from tests.support.service import http


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args, **kwargs)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def produce(bootstrap: str, topic: str, messages, rate: float | None = None) -> None:
    asyncio.run(kafka_produce(bootstrap, topic, messages, rate=rate))


def assert_exactly(ids: list[str], items) -> None:
    expected = {event_id for _, event_id, _ in items}
    assert len(ids) == len(set(ids)), "an event was stored twice"
    missing = expected - set(ids)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    assert set(ids) == expected


def test_mqtt_n_events_n_rows(pg_server, mqtt_broker: EmbeddedMosquitto, service_factory) -> None:
    dsn = new_database(pg_server, "mqtt_n")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-mqtt-n").start()
    items = water_levels(5000, "mqttn")
    mqtt_publish(mqtt_broker.url, as_mqtt(items))
    assert_exactly(wait_for_count(dsn, "mqttn", len(items)), items)
    assert svc.running()
    # `make test` runs this module again with IOC_ACCELERATE=false: the service took it.
    assert ("IOC_ACCELERATE=false" in svc.log()) is not Settings(_env_file=None).accelerate


def test_kafka_n_events_n_rows(pg_server, kafka: EmbeddedKafka, service_factory) -> None:
    dsn = new_database(pg_server, "kafka_n")
    topic = "ioc.events.n"
    asyncio.run(kafka_create_topic(kafka.bootstrap, topic))
    service_factory(IOC_DATABASE_URL=dsn, IOC_KAFKA_BOOTSTRAP=kafka.bootstrap,
                    IOC_KAFKA_TOPIC=topic, IOC_KAFKA_GROUP="g-n").start()
    items = water_levels(5000, "kafkan")
    produce(kafka.bootstrap, topic, as_kafka(items))
    assert_exactly(wait_for_count(dsn, "kafkan", len(items)), items)


def test_mqtt_kill9_mid_stream(pg_server, mqtt_broker: EmbeddedMosquitto, service_factory) -> None:
    dsn = new_database(pg_server, "mqtt_kill")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-mqtt-kill").start()
    items = water_levels(20000, "mqttkill")
    pub, errors = in_thread(mqtt_publish, mqtt_broker.url, as_mqtt(items), rate=5000)
    time.sleep(1.5)
    svc.kill()
    stored_at_kill = len(asyncio.run(event_ids(dsn, "mqttkill")))
    assert 0 < stored_at_kill < len(items), "the kill should land mid-stream"
    time.sleep(1.0)
    svc.start()
    pub.join(120)
    assert not errors, errors
    assert_exactly(wait_for_count(dsn, "mqttkill", len(items)), items)


def test_kafka_kill9_mid_stream(pg_server, kafka: EmbeddedKafka, service_factory) -> None:
    dsn = new_database(pg_server, "kafka_kill")
    topic = "ioc.events.kill"
    asyncio.run(kafka_create_topic(kafka.bootstrap, topic))
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_KAFKA_BOOTSTRAP=kafka.bootstrap,
                          IOC_KAFKA_TOPIC=topic, IOC_KAFKA_GROUP="g-kill").start()
    items = water_levels(30000, "kafkakill")
    pub, errors = in_thread(produce, kafka.bootstrap, topic, as_kafka(items), 10000)
    time.sleep(1.5)
    svc.kill()
    stored_at_kill = len(asyncio.run(event_ids(dsn, "kafkakill")))
    assert 0 < stored_at_kill < len(items), "the kill should land mid-stream"
    time.sleep(1.0)
    svc.start()
    pub.join(120)
    assert not errors, errors
    assert_exactly(wait_for_count(dsn, "kafkakill", len(items)), items)


@pytest.mark.slow
def test_database_down_15s_under_load(mqtt_broker: EmbeddedMosquitto, service_factory) -> None:
    with EmbeddedPostgres() as pg:
        dsn = new_database(pg, "db_down")
        svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                              IOC_MQTT_CLIENT_ID="ioc-db-down").start()
        proc = psutil.Process(svc.pid)
        items = water_levels(40000, "dbdown")
        pub, errors = in_thread(mqtt_publish, mqtt_broker.url, as_mqtt(items), rate=2000,
                                timeout=180)
        time.sleep(3)
        rss_before = proc.memory_info().rss
        pg.stop_server()
        peak = rss_before
        outage_end = time.monotonic() + 15
        while time.monotonic() < outage_end:
            peak = max(peak, proc.memory_info().rss)
            assert svc.running(), "the service died while the database was down"
            time.sleep(0.5)
        status, ready = http("GET", f"{svc.url}/readyz", timeout=10)
        assert status == 503 and ready["checks"]["database"].startswith("unavailable"), ready
        pg.start()
        pub.join(180)
        assert not errors, errors
        ids = wait_for_count(dsn, "dbdown", len(items), timeout=120)
        assert svc.running()
        assert_exactly(ids, items)
        # Bounded by the MQTT receive maximum, not by the 30k messages published meanwhile.
        assert peak - rss_before < 150 * 2**20, (rss_before, peak)


def test_broker_restart_under_load(pg_server, mqtt_broker: EmbeddedMosquitto,
                                   service_factory) -> None:
    dsn = new_database(pg_server, "broker_restart")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-broker-restart").start()
    items = water_levels(20000, "brokerrs")
    pub, errors = in_thread(mqtt_publish, mqtt_broker.url, as_mqtt(items), rate=4000,
                            timeout=180)
    time.sleep(2)
    mqtt_broker.restart()
    pub.join(180)
    assert not errors, errors
    assert_exactly(wait_for_count(dsn, "brokerrs", len(items)), items)
    assert svc.running()


def test_broker_down_for_a_while_then_back(pg_server, mqtt_broker: EmbeddedMosquitto,
                                           service_factory) -> None:
    """Refused connects are retried with backoff; meanwhile the service lives and is not ready."""
    dsn = new_database(pg_server, "broker_down")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-broker-down").start()
    mqtt_broker.stop_server()
    time.sleep(4)  # the reconnects at about 1 s and 3 s are refused
    assert svc.running()
    assert http("GET", f"{svc.url}/readyz")[0] == 503
    mqtt_broker.start()
    items = water_levels(3000, "brokerdn")
    mqtt_publish(mqtt_broker.url, as_mqtt(items))
    assert_exactly(wait_for_count(dsn, "brokerdn", len(items)), items)
    assert http("GET", f"{svc.url}/readyz")[0] == 200
    assert "failed (" in svc.log()
