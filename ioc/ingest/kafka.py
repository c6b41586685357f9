"""Kafka source: aiokafka consumer group, offsets committed only after the batch's transaction.

Messages are handed to the pipeline per partition in offset order; when the pipeline
confirms a submission, its highest offset per partition becomes committable, and a committer
task sends the newest committable offsets to the group coordinator. While the pipeline is
full every assigned partition is paused, so the fetcher stops too. On revocation and on
shutdown the pipeline is flushed and the offsets committed before the partitions go.
"""

from __future__ import annotations

import asyncio
import logging
from operator import attrgetter

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from ioc.ingest.pipeline import DRAIN_TIMEOUT_S, Pipeline
from ioc.metrics import Metrics
from ioc.model import PartitionMessages
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

# Records per poll, also the size of a submission to the pipeline (which writes batches of up
# to batch_max): enough to pay for the per-poll work, few enough that a poll's records die young
# (polls of tens of thousands made the garbage collector's full collections expensive).
POLL_RECORDS = 1000
FETCH_MAX_WAIT_MS = 100
_VALUE, _KEY, _OFFSET = attrgetter("value"), attrgetter("key"), attrgetter("offset")


class KafkaSource:
    name = "kafka"

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        session_timeout_ms: int = 10000,
        max_records: int = 5000,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.supervisor = supervisor or Supervisor()
        self.metrics = metrics
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._committable: dict[TopicPartition, int] = {}
        self._commit_wanted = asyncio.Event()
        self._assigned_once = False
        self._stopping = False

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=f"ioc-ingest-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
            rebalance_timeout_ms=max(self.session_timeout_ms, 30000),
            max_poll_interval_ms=600_000,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # How long a fetch may wait for records. Some brokers (tansu here) wait part of it
            # even when records are ready, and the default 500 ms then delivers a live stream
            # in bursts: during a storm an alert waited behind a quarter second of events.
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        await consumer.start()
        self._consumer = consumer
        # The consumer's position is past what it fetched: a restarted consume loop would skip
        # records while later offsets get committed, so its failure stops the service.
        self._task = self.supervisor.spawn("kafka-consume", self._consume_loop, fatal=True)
        self._committer = self.supervisor.spawn("kafka-commit", self._commit_loop)
        log.info("Kafka source started: %s topic %s group %s (session timeout %d ms)",
                 self.bootstrap, self.topic, self.group, self.session_timeout_ms)

    async def stop(self) -> None:
        """Stop fetching, let the pipeline commit what it holds, commit offsets, leave the group."""
        self._stopping = True
        await cancel_and_wait(self._task)
        await self.pipeline.flush(DRAIN_TIMEOUT_S)
        await self._commit_now()
        await cancel_and_wait(self._committer)
        if self._consumer:
            await self._consumer.stop()
        self.metrics.source_connected.labels(self.name).set(0)

    def ready(self) -> bool:
        return self._assigned_once and not self._stopping

    # ---- consuming ---------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            if self.pipeline.full():
                paused = list(consumer.assignment())
                consumer.pause(*paused)
                log.info("pipeline full: paused %d Kafka partition(s)", len(paused))
                await self.pipeline.wait_not_full()
                consumer.resume(*[tp for tp in paused if tp in consumer.assignment()])
            try:
                data = await consumer.getmany(timeout_ms=200,
                                                max_records=min(self.max_records, POLL_RECORDS))
            except KafkaError as exc:
                log.warning("Kafka fetch failed (%s); retrying", exc)
                await asyncio.sleep(1)
                continue
            for tp, records in data.items():
                if not records:
                    continue
                payloads = list(map(_VALUE, records))
                if None in payloads:  # tombstones: empty payloads, dead-lettered as bad_json
                    payloads = [p or b"" for p in payloads]
                messages = PartitionMessages(tp.topic, tp.partition, payloads,
                                             list(map(_KEY, records)), list(map(_OFFSET, records)))
                last = records[-1].offset + 1
                await self.pipeline.submit(
                    messages, lambda _r, tp=tp, last=last: self._mark_committable(tp, last))

    def _mark_committable(self, tp: TopicPartition, offset: int) -> None:
        if offset > self._committable.get(tp, -1):
            self._committable[tp] = offset
        self._commit_wanted.set()

    # ---- committing ----------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit_now()

    async def _commit_now(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None or not self._committable:
            return
        offsets = {tp: off for tp, off in self._committable.items()
                   if (only is None or tp in only) and tp in consumer.assignment()}
        if not offsets:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on: the new owner re-reads from the last commit and the
            # idempotent writer absorbs the overlap.
            log.warning("Kafka offset commit failed (%s); partitions will be re-read", exc)
            return
        for tp, off in offsets.items():
            if self._committable.get(tp) == off:
                del self._committable[tp]

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        await self.pipeline.flush(self.session_timeout_ms / 1000)
        await self._commit_now(only=set(revoked))
        for tp in revoked:
            self._committable.pop(tp, None)
        log.info("Kafka partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned_once = True
        self.metrics.source_connected.labels(self.name).set(1)
        log.info("Kafka partitions assigned: %s", sorted(tp.partition for tp in assigned))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.source.on_assigned(set(assigned))
