"""Graceful stop and consumer-group hand-over: drain, confirm, and lose or double nothing."""

from __future__ import annotations

import asyncio
import time

from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.conftest import new_database
from tests.integration.ingest.conftest import event_ids, wait_for_count
from tests.integration.ingest.test_delivery import assert_exactly, in_thread, produce
from tests.support.payloads import as_kafka, as_mqtt, water_levels
from tests.support.publish import kafka_create_topic, mqtt_publish


def test_sigterm_drains_and_exits_cleanly(pg_server, mqtt_broker: EmbeddedMosquitto,
                                          service_factory) -> None:
    dsn = new_database(pg_server, "sigterm")
    svc = service_factory(IOC_DATABASE_URL=dsn, IOC_MQTT_URL=mqtt_broker.url,
                          IOC_MQTT_CLIENT_ID="ioc-sigterm").start()
    items = water_levels(15000, "sigterm")
    pub, errors = in_thread(mqtt_publish, mqtt_broker.url, as_mqtt(items), rate=5000)
    time.sleep(1.5)
    started = time.monotonic()
    svc.stop()
    assert svc.returncode == 0, svc.log()[-2000:]
    assert time.monotonic() - started < 30
    assert "service stopped" in svc.log()
    stored_at_stop = len(asyncio.run(event_ids(dsn, "sigterm")))
    assert 0 < stored_at_stop < len(items)
    svc.start()
    pub.join(120)
    assert not errors, errors
    assert_exactly(wait_for_count(dsn, "sigterm", len(items)), items)


def test_kafka_group_hand_over_between_instances(pg_server, kafka: EmbeddedKafka,
                                                 service_factory) -> None:
    """A second instance joins mid-stream and the first leaves: partitions move twice."""
    dsn = new_database(pg_server, "handover")
    topic = "ioc.events.handover"
    asyncio.run(kafka_create_topic(kafka.bootstrap, topic, partitions=4))
    env = {"IOC_DATABASE_URL": dsn, "IOC_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "IOC_KAFKA_TOPIC": topic, "IOC_KAFKA_GROUP": "g-handover"}
    first = service_factory(**env).start()
    items = water_levels(30000, "handover")
    pub, errors = in_thread(produce, kafka.bootstrap, topic, as_kafka(items), 6000)
    time.sleep(1.5)
    second = service_factory(**env).start()
    time.sleep(1.5)
    first.stop()
    assert first.returncode == 0
    pub.join(120)
    assert not errors, errors
    assert_exactly(wait_for_count(dsn, "handover", len(items)), items)
    assert second.running()
