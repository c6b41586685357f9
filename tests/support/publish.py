"""Publishers for tests: every message confirmed by the broker before they return."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion


def mqtt_publish(url: str, messages: Sequence[tuple[str, bytes]], *, client_id: str = "test-pub",
                 timeout: float = 120, rate: float | None = None) -> None:
    """QoS 1 with a persistent session: unacked messages are re-sent after a broker restart."""
    parts = urlsplit(url)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=False, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.2, 2)
    acked = threading.Semaphore(0)
    client.on_publish = lambda c, u, mid, rc, props: acked.release()
    client.connect(parts.hostname, parts.port or 1883)
    client.loop_start()
    try:
        start = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            client.publish(topic, payload, qos=1)
            if rate:
                ahead = i / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        deadline = time.monotonic() + timeout
        for _ in messages:
            if not acked.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError("broker did not ack every message in time")
    finally:
        client.disconnect()
        client.loop_stop()


async def kafka_create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                                replication_factor=1)])
    finally:
        await admin.close()


async def kafka_produce(bootstrap: str, topic: str, messages: Sequence[tuple[str, bytes]],
                        *, rate: float | None = None, compression: str | None = None) -> None:
    """Keyed by device id, acks=all; returns once every message is acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=False, compression_type=compression)
    await producer.start()
    try:
        start = time.monotonic()
        futures = []
        for i, (device_id, payload) in enumerate(messages):
            futures.append(await producer.send(topic, payload, key=device_id.encode()))
            if rate:
                ahead = i / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
