"""The lean record hand-over (ioc/ingest/kafka_records.py) against a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from ioc.embedded.kafka import EmbeddedKafka
from ioc.ingest.kafka_records import installed, lean_records
from tests.support.publish import kafka_create_topic, kafka_produce

N = 3000


async def _consume(bootstrap: str, topic: str, **options: object) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **options)
    await consumer.start()
    got: list = []
    try:
        for _ in range(200):
            batch = await consumer.getmany(timeout_ms=200, max_records=250)
            got.extend(r for records in batch.values() for r in records)
            if len(got) >= N:
                break
    finally:
        await consumer.stop()
    return got


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_lean_consumer_gets_every_record_once_and_others_keep_consumer_records(
    kafka: EmbeddedKafka, compression: str | None
) -> None:
    assert installed()
    topic = f"lean.records.{compression}"
    items = [(f"dev-{i % 7}", f'{{"n":{i}}}'.encode()) for i in range(N)]

    async def scenario() -> tuple[list, list]:
        await kafka_create_topic(kafka.bootstrap, topic, partitions=2)
        await kafka_produce(kafka.bootstrap, topic, items, compression=compression)
        lean = await _consume(kafka.bootstrap, topic, value_deserializer=lean_records)
        plain = await _consume(kafka.bootstrap, topic)
        return lean, plain

    lean, plain = asyncio.run(scenario())
    assert not any(isinstance(r, ConsumerRecord) for r in lean)
    assert all(isinstance(r, ConsumerRecord) for r in plain)
    assert sorted((r.key, r.value) for r in lean) == sorted((d.encode(), p) for d, p in items)
    assert sorted((r.key, r.value, r.offset) for r in lean) == sorted(
        (r.key, r.value, r.offset) for r in plain)
