"""Bounded pipeline from sources to the database: submit -> decode -> micro-batch -> write -> confirm.

Sources hand over transport messages with a confirmation callback (an MQTT ack, a Kafka
offset, an HTTP response). The callback runs only after the transaction that stored the
messages' events (or their dead letters) committed, so a crash anywhere loses nothing and a
replay is absorbed by the idempotent writer. The number of messages accepted but not yet
committed is bounded by ``queue_max``: when it is reached, ``submit`` waits — MQTT acks are
then withheld and Kafka partitions paused by their sources — and nothing is dropped.

Two stages overlap: while one batch is in its database transaction, the next is decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
import numpy as np

from ioc.ingest.decode import DecodeLimits, DecodeResult, decode, decode_uniform
from ioc.ingest.quarantine import POISON, POISON_AFTER, Quarantine
from ioc.metrics import Metrics
from ioc.model import DeadLetter, EventBatch, RawMessage
from ioc.storage.copy_binary import encode_events
from ioc.storage.errors import PermanentStorageError
from ioc.storage.writer import BatchWriter, WriteTransaction, describe
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

# SQLSTATE classes that blame the data (a value the database will not take), not the database.
DATA_ERROR_CLASSES = frozenset({"22", "23"})
PostCommit = Callable[[], None]
DRAIN_TIMEOUT_S = 30.0  # how long a stop waits for the database to take what is in flight
DB_REJECTED = "db_rejected"
BATCHER = "pipeline-batcher"
WRITER = "pipeline-writer"
# After a batch crashed the writer, before it is written again in halves: a crash loop of a
# bug that is not about one message stays a few log lines a second.
CRASH_PAUSE_S = 1.0
_NO_INDEX = np.zeros(0, dtype=np.int32)


class BatchProcessor(Protocol):
    """Work done inside a batch's transaction (rules, alerts); returns what to do after commit.

    ``new_mask`` marks the events stored by this batch (not replays); ``received_at`` is the
    wall-clock time its oldest message arrived. Processors also get an empty batch every
    ``tick_interval_s`` (timers such as absence checks run then). ``prepare`` runs while the
    database takes the batch's COPY, before ``process``: work done there as if every event
    were new keeps the transaction short (a replay's ``process`` must not use it).
    """

    def prepare(self, events: EventBatch) -> None: ...

    async def process(
        self, conn: asyncpg.Connection, events: EventBatch, new_mask: np.ndarray,
        received_at: float,
    ) -> PostCommit | None: ...


@dataclass(slots=True)
class SubmissionResult:
    """What became of one submission's messages once committed."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[DeadLetter] = field(default_factory=list)


@dataclass(slots=True)
class _Submission:
    messages: Sequence[RawMessage]
    on_commit: Callable[[SubmissionResult], None] | None
    received: float  # monotonic, for batching
    received_wall: float  # epoch seconds, for latency metrics
    alone: bool = False  # a suspect message (see quarantine.py): a batch of its own


class _Join:
    """The confirmation of a submission that was cut into parts: called once, with the sum,
    when every part has committed."""

    __slots__ = ("left", "on_commit", "result")

    def __init__(self, on_commit: Callable[[SubmissionResult], None], parts: int) -> None:
        self.on_commit = on_commit
        self.left = parts
        self.result = SubmissionResult()

    def part_done(self, part: SubmissionResult) -> None:
        self.result.accepted += part.accepted
        self.result.duplicates += part.duplicates
        self.result.rejected.extend(part.rejected)
        self.left -= 1
        if self.left == 0:
            self.on_commit(self.result)


def _cut(sub: _Submission, pieces: list[tuple[int, int, bool]]) -> list[_Submission]:
    """The submission as pieces ``[a, b)`` of its messages (``alone`` each), confirmed once."""
    join = _Join(sub.on_commit, len(pieces)) if sub.on_commit is not None else None
    return [_Submission(sub.messages[a:b], join.part_done if join else None, sub.received,
                        sub.received_wall, alone) for a, b, alone in pieces]


def _halves(subs: list[_Submission]) -> tuple[list[_Submission], list[_Submission]]:
    """Submissions of two or more messages in two halves by message count."""
    half = sum(len(s.messages) for s in subs) // 2
    left: list[_Submission] = []
    right: list[_Submission] = []
    seen = 0
    for sub in subs:
        n = len(sub.messages)
        if seen + n <= half:
            left.append(sub)
        elif seen >= half:
            right.append(sub)
        else:
            first, second = _cut(sub, [(0, half - seen, False), (half - seen, n, False)])
            left.append(first)
            right.append(second)
        seen += n
    return left, right


@dataclass(slots=True)
class _Batch:
    submissions: list[_Submission]
    events: EventBatch
    dead: list[DeadLetter]
    spans: list[tuple[int, int, int, int]]  # per submission: event [a, b), dead [c, d)
    messages: int
    received_at: float
    message_index: np.ndarray  # int32 per event: its message, counted over the submissions
    copy_data: memoryview | None = None  # the events' COPY data, encoded in the decode stage
    suspect: bool = False  # its messages crashed the pipeline before: forgotten once stored
    poison: bool = False  # a message quarantined as a poison dead letter

    def message(self, k: int) -> RawMessage:
        for sub in self.submissions:
            if k < len(sub.messages):
                return sub.messages[k]
            k -= len(sub.messages)
        raise IndexError(k)

    def raw_messages(self) -> list[RawMessage]:
        return [m for sub in self.submissions for m in sub.messages]


@dataclass(slots=True)
class _Refused:
    """An event the database refused, as the dead letter of its message."""

    position: int  # in the batch's events
    dead: DeadLetter


# Messages decoded column-wise per call: enough to pay for numpy's per-call overhead, few
# enough for the decoded objects to stay in the CPU caches (measured: 1,000 beats 250 and 4,000).
DECODE_GROUP_MESSAGES = 1000


def _decode_groups(subs: list[_Submission]) -> list[list[_Submission]]:
    """Consecutive submissions in groups of about DECODE_GROUP_MESSAGES messages."""
    groups: list[list[_Submission]] = []
    size = DECODE_GROUP_MESSAGES
    for sub in subs:
        if size + len(sub.messages) > DECODE_GROUP_MESSAGES:
            groups.append([])
            size = 0
        groups[-1].append(sub)
        size += len(sub.messages)
    return groups


_WARM_UP = b'{"device_id":"warm-up","kind":"warm_up","ts":"2026-01-01T00:00:00Z","value":0}'


class PipelineClosed(Exception):
    """The pipeline is shutting down and takes no more messages."""


class Pipeline:
    def __init__(
        self,
        writer: BatchWriter,
        metrics: Metrics,
        *,
        limits: DecodeLimits,
        batch_max: int = 5000,
        batch_wait_s: float = 0.05,
        queue_max: int = 200_000,
        processors: Sequence[BatchProcessor] = (),
        tick_interval_s: float = 5.0,
        supervisor: Supervisor | None = None,
        quarantine: Quarantine | None = None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.limits = limits
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.queue_max = queue_max
        self.processors = list(processors)
        self.tick_interval_s = tick_interval_s
        self.supervisor = supervisor or Supervisor()
        self.quarantine = quarantine or Quarantine()
        self._inbox: deque[_Submission] = deque()
        self._pending = 0  # messages submitted and not yet committed
        self._changed = asyncio.Condition()
        self._to_write: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=1)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.degraded: str | None = None  # why writes are failing permanently, for /readyz

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # Compile the decoder's scan, its message-by-message screen, the coding of device ids
        # a transport vouches for (MQTT topics, Kafka keys) and the COPY encoding (or load them
        # from numba's cache) now, not while the first batch waits: a fresh checkout takes
        # seconds, and the first alert of a fresh start came over a second late.
        decode([RawMessage(_WARM_UP, "http")], self.limits)
        decode([RawMessage(_WARM_UP, "http"), RawMessage(b"{}", "http")], self.limits)
        encode_events(decode([RawMessage(_WARM_UP, "mqtt", "ioc/v1/events/warm-up")],
                             self.limits).events)
        await self.quarantine.load()
        # Either stage dying would strand the batch it holds while later ones are confirmed
        # (a Kafka offset committed past unstored messages): the service stops instead.
        # Crashes caused by a message are handled inside them (see _store).
        self._tasks = [
            self.supervisor.spawn(BATCHER, self._batch_loop, fatal=True),
            self.supervisor.spawn(WRITER, self._write_loop, fatal=True),
        ]

    async def stop(self) -> None:
        """Take no more messages, write and confirm what was accepted (within the drain
        timeout: a database that is down must not hold the shutdown forever), then stop."""
        self._closed = True
        await self.flush(DRAIN_TIMEOUT_S)
        async with self._changed:
            self._changed.notify_all()
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def __aenter__(self) -> Pipeline:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- intake ----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._pending

    def full(self) -> bool:
        return self._pending >= self.queue_max

    async def wait_not_full(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self.full() or self._closed)

    async def submit(
        self,
        messages: Sequence[RawMessage],
        on_commit: Callable[[SubmissionResult], None] | None = None,
    ) -> None:
        """Queue messages; waits while the pipeline is full (that wait is the backpressure)."""
        if not messages:
            return
        if self.full():
            await self.wait_not_full()
        if self._closed:
            raise PipelineClosed("the service is shutting down")
        self._pending += len(messages)
        self.metrics.queue_depth.set(self._pending)
        self.metrics.events_received.labels(messages[0].source).inc(len(messages))
        sub = _Submission(messages, on_commit, time.monotonic(), time.time())
        if self.quarantine.active:
            self._inbox.extend(self._isolate_suspects(sub))
        else:
            self._inbox.append(sub)
        async with self._changed:
            self._changed.notify_all()

    def _isolate_suspects(self, sub: _Submission) -> list[_Submission]:
        """Messages that crashed the pipeline before go alone, the rest as they came."""
        suspect = [self.quarantine.crashes(m) > 0 for m in sub.messages]
        if not any(suspect):
            return [sub]
        pieces: list[tuple[int, int, bool]] = []
        for i, alone in enumerate(suspect):
            if alone or not pieces or pieces[-1][2]:
                pieces.append((i, i + 1, alone))
            else:
                pieces[-1] = (pieces[-1][0], i + 1, False)
        return _cut(sub, pieces)

    async def submit_and_wait(
        self, messages: Sequence[RawMessage], timeout_s: float | None = None,
    ) -> SubmissionResult:
        """Submit and return once committed (the HTTP source answers only then).

        With ``timeout_s``, raises TimeoutError when that passes first; messages that were
        already queued by then are still written (and deduplicated if sent again).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SubmissionResult] = loop.create_future()

        def resolve(result: SubmissionResult) -> None:
            if not done.done():
                done.set_result(result)

        async with asyncio.timeout(timeout_s):
            await self.submit(messages, resolve)
            return await asyncio.shield(done)

    async def flush(self, limit_s: float | None = None) -> bool:
        """Wait until every message submitted so far is committed and confirmed.

        With ``limit_s``, give up after that long and return False: what is still pending is
        then never confirmed, so the brokers deliver it again.
        """
        try:
            async with asyncio.timeout(limit_s), self._changed:
                await self._changed.wait_for(lambda: self._pending == 0)
        except TimeoutError:
            log.warning("%d message(s) not committed within %.0fs; left unconfirmed for "
                        "redelivery", self._pending, limit_s)
            return False
        return True

    # ---- stage 1: batch and decode ---------------------------------------------------------

    async def _batch_loop(self) -> None:
        next_tick = time.monotonic() + self.tick_interval_s
        while True:
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.tick_interval_s
                await self._to_write.put(_Batch([], EventBatch(), [], [], 0, time.time(),
                                                _NO_INDEX))
                continue
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                        await self._changed.wait_for(lambda: bool(self._inbox))
            if not self._inbox:
                continue
            first = self._inbox[0].received
            wait = self.batch_wait_s - (time.monotonic() - first)
            if wait > 0 and self._inbox_messages() < self.batch_max:
                await asyncio.sleep(wait)
            await self._to_write.put(await self._take_batch())

    def _inbox_messages(self) -> int:
        return sum(len(s.messages) for s in self._inbox)

    async def _take_batch(self) -> _Batch:
        if self._inbox[0].alone:
            sub = self._inbox.popleft()
            crashes = self.quarantine.crashes(sub.messages[0])
            if crashes >= POISON_AFTER:
                return self._poison_batch(sub, _poison(
                    sub.messages[0], f"quarantined: crashed the pipeline {crashes} times before"))
            return await self._decode_batch([sub], suspect=True)
        subs: list[_Submission] = []
        messages = 0
        while self._inbox and not self._inbox[0].alone and (
                not subs or messages + len(self._inbox[0].messages) <= self.batch_max):
            sub = self._inbox.popleft()
            subs.append(sub)
            messages += len(sub.messages)
        return await self._decode_batch(subs)

    async def _decode_batch(self, subs: list[_Submission], *, suspect: bool = False) -> _Batch:
        parts: list[EventBatch] = []
        index: list[np.ndarray] = []
        dead: list[DeadLetter] = []
        spans: list[tuple[int, int, int, int]] = []
        n_events = n_messages = 0
        now_us = int(time.time() * 1e6)
        for group in _decode_groups(subs):
            # Let the writer see its database replies between groups: decoding a whole batch
            # in one go kept the transaction waiting ~30 ms a batch (measured, +18% events/s).
            await asyncio.sleep(0)
            uniform = self._decode_uniform(group, now_us)
            if uniform is not None:
                parts.append(uniform)
                index.append(np.arange(n_messages, n_messages + len(uniform), dtype=np.int32))
                for sub in group:
                    spans.append((n_events, n_events + len(sub.messages), len(dead), len(dead)))
                    n_events += len(sub.messages)
                n_messages += len(uniform)
                continue
            for sub in group:
                result = self._decode(sub.messages, now_us)
                parts.append(result.events)
                index.append(result.message_index + n_messages)
                spans.append((n_events, n_events + len(result.events), len(dead),
                              len(dead) + len(result.dead)))
                n_events += len(result.events)
                n_messages += len(sub.messages)
                dead.extend(result.dead)
        for d in dead:
            self.metrics.events_rejected.labels(d.source, d.reason).inc()
        events = parts[0] if len(parts) == 1 else EventBatch.concat(parts)
        return _Batch(subs, events, dead, spans, n_messages,
                      min(s.received_wall for s in subs), np.concatenate(index),
                      self._encode(events), suspect=suspect)

    def _decode_uniform(self, group: list[_Submission], now_us: int) -> EventBatch | None:
        try:
            return decode_uniform([sub.messages for sub in group], self.limits, now_us)
        except Exception as exc:
            # The message-by-message path below finds the message and quarantines it.
            self.supervisor.failed(BATCHER, exc)
            log.error("the column-wise decoder raised on a group of %d submission(s)",
                      len(group), exc_info=exc)
            return None

    def _decode(self, messages: Sequence[RawMessage], now_us: int) -> DecodeResult:
        """decode(), which never raises for any input by design; should it raise anyway, the
        messages are decoded one at a time, and one that makes it raise twice is poison."""
        try:
            return decode(messages, self.limits, now_us)
        except Exception as exc:
            self.supervisor.failed(BATCHER, exc)
            log.error("the decoder raised on %d message(s); decoding them one at a time",
                      len(messages), exc_info=exc)
        results = []
        for message in messages:
            for _ in range(POISON_AFTER):
                try:
                    results.append(decode([message], self.limits, now_us))
                    break
                except Exception as exc:
                    last = exc
            else:
                results.append(DecodeResult(EventBatch(), [_poison(
                    message, f"the decoder raised {POISON_AFTER} times; last: {_what(last)}")],
                    _NO_INDEX, {}))
        return DecodeResult(
            EventBatch.concat([r.events for r in results]),
            [d for r in results for d in r.dead],
            np.concatenate([r.message_index + i for i, r in enumerate(results)]),
            {})

    def _encode(self, events: EventBatch) -> memoryview | None:
        try:
            return encode_events(events)
        except Exception as exc:
            # The writer encodes the batch again, and a crash there is isolated (see _store).
            log.error("encoding a batch of %d events for COPY failed", len(events), exc_info=exc)
            return None

    def _poison_batch(self, sub: _Submission, dead: DeadLetter) -> _Batch:
        self.metrics.events_rejected.labels(dead.source, POISON).inc()
        log.error("%s message quarantined as a poison dead letter: %s", dead.source, dead.detail)
        return _Batch([sub], EventBatch(), [dead], [(0, 0, 0, 1)], 1, sub.received_wall,
                      _NO_INDEX, suspect=True, poison=True)

    # ---- stage 2: write and confirm --------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            batch = await self._to_write.get()
            if batch is None:
                return
            await self._store(batch)

    async def _store(self, batch: _Batch) -> None:
        """Write and confirm a batch, isolating any message that makes our own code raise.

        Bad input and refused rows never get here as exceptions (dead letters, _write). An
        exception is a crash: every message of the batch counts one (quarantine.py), and the
        batch is written again in halves, in order, before anything after it. A message
        that crashes alone after an earlier crash becomes a ``poison`` dead letter and is
        confirmed, so neither this process nor the next one after a restart loops on it.
        """
        todo = [batch]
        while todo:
            b = todo.pop()
            try:
                new_mask, refused = await self._write(b)
            except Exception as exc:
                todo.extend(reversed(await self._after_crash(b, exc)))
                continue
            await self._confirm(b, new_mask, refused)
            if b.suspect:
                await self.quarantine.passed(b.raw_messages(), poisoned=b.poison)

    async def _after_crash(self, b: _Batch, exc: Exception) -> list[_Batch]:
        self.supervisor.failed(WRITER, exc)
        messages = b.raw_messages()
        if not messages:
            log.error("a timer tick crashed the writer; the next tick runs again", exc_info=exc)
            return []
        log.error("a batch of %d message(s) crashed the writer; writing it again in halves "
                  "after %.0f s", len(messages), CRASH_PAUSE_S, exc_info=exc)
        counts = await self.quarantine.crashed(messages)
        await asyncio.sleep(CRASH_PAUSE_S)
        if len(messages) > 1:
            return [await self._decode_batch(half, suspect=True) for half in _halves(b.submissions)]
        if counts[0] >= POISON_AFTER:  # one message, so one submission
            return [self._poison_batch(b.submissions[0], _poison(
                messages[0], f"crashed the pipeline {counts[0]} times; last: {_what(exc)}"))]
        return [await self._decode_batch(b.submissions, suspect=True)]

    async def _write(self, b: _Batch) -> tuple[np.ndarray, list[_Refused]]:
        """Write, keeping at it through outages; isolate events the database refuses."""
        started = time.perf_counter()
        refused: list[_Refused] = []
        while True:
            try:
                new_mask = await self._transact(b.events, b.dead, b.received_at, b.copy_data)
                break
            except PermanentStorageError as exc:
                if exc.sqlstate and exc.sqlstate[:2] in DATA_ERROR_CLASSES and len(b.events) > 0:
                    new_mask = await self._write_isolating(b, exc, refused)
                    break
                self.degraded = str(exc)
                log.error("batch of %d events cannot be written (%s); retrying in 5s",
                          len(b.events), exc)
                await asyncio.sleep(5)
        self.degraded = None
        if len(b.events) or b.dead:
            self.metrics.db_write_seconds.observe(time.perf_counter() - started)
        return new_mask, refused

    async def _transact(
        self, events: EventBatch, dead: list[DeadLetter], received_at: float,
        copy_data: memoryview | None = None,
    ) -> np.ndarray:
        """One batch's transaction, its effects in the order they happen; returns which
        events are new (stored now, not replays)."""

        async def transaction(tx: WriteTransaction) -> tuple[np.ndarray, list[PostCommit]]:
            # 1. Store: devices seen for the first time, the dead letters, then the events by
            #    COPY (after a replay: the dedup path). While the server takes the COPY, the
            #    processors prepare as if every event were new (the rules are evaluated).
            await tx.register_devices(events)
            await tx.store_dead_letters(dead)
            new_mask = await tx.store_events(events, copy_data,
                                             meanwhile=lambda: self._prepare(events))
            # 2. Process, in the same transaction: rules (rule state, alerts, their audit,
            #    feed and outbox rows), latest values.
            after: list[PostCommit] = []
            for processor in self.processors:
                done = await processor.process(tx.conn, events, new_mask, received_at)
                if done is not None:
                    after.append(done)
            return new_mask, after

        # BEGIN, the above, COMMIT: redone on a replay or a transient failure.
        new_mask, after = await self.writer.run(events, transaction,
                                                what=describe(events, dead))
        # 3. After the commit: what each processor keeps in memory (rule engine, latest values).
        for done in after:
            try:
                done()
            except Exception as exc:
                # Committed already: writing the batch again would not undo it.
                self.supervisor.failed(WRITER, exc)
                log.error("work after the commit of %d events failed", len(events),
                          exc_info=exc)
        return new_mask

    def _prepare(self, events: EventBatch) -> None:
        for processor in self.processors:
            processor.prepare(events)

    async def _write_isolating(
        self, b: _Batch, exc: PermanentStorageError, refused: list[_Refused],
    ) -> np.ndarray:
        """Split the batch until the refused events stand alone; each becomes a dead letter
        of the message it came in (its original bytes and transport position)."""
        log.warning("database refused a batch of %d events (%s): isolating the bad rows",
                    len(b.events), exc)
        new_mask = np.zeros(len(b.events), dtype=bool)

        async def split(pos: np.ndarray, dead: list[DeadLetter],
                        error: PermanentStorageError) -> None:
            if len(pos) == 1:
                refused.append(self._refused(b, int(pos[0]), error))
                await self._transact(EventBatch(), [*dead, refused[-1].dead], b.received_at)
                return
            half = len(pos) // 2
            for part, part_dead in ((pos[:half], dead), (pos[half:], [])):
                try:
                    new_mask[part] = await self._transact(b.events.take(part), part_dead,
                                                          b.received_at)
                except PermanentStorageError as inner:
                    if not (inner.sqlstate and inner.sqlstate[:2] in DATA_ERROR_CLASSES):
                        raise
                    await split(part, part_dead, inner)

        await split(np.arange(len(b.events)), b.dead, exc)
        return new_mask

    def _refused(self, b: _Batch, position: int, error: PermanentStorageError) -> _Refused:
        message = b.message(int(b.message_index[position]))
        self.metrics.events_rejected.labels(message.source, DB_REJECTED).inc()
        detail = f"event {b.events.event_id[position]} of device {b.events.device_id[position]}: "
        return _Refused(position, DeadLetter(
            source=message.source, reason=DB_REJECTED, raw=message.payload,
            detail=(detail + str(error))[:500], topic=message.topic,
            partition=message.partition, offset=message.offset))

    async def _confirm(self, batch: _Batch, mask: np.ndarray, refused: list[_Refused]) -> None:
        stored = int(mask.sum())
        self.metrics.events_stored.inc(stored)
        self.metrics.events_duplicate.inc(len(batch.events) - stored - len(refused))
        if batch.messages:
            self.metrics.batch_rows.observe(len(batch.events))
        if len(batch.events):
            lag = time.time() - float(batch.events.ts.max()) / 1e6
            self.metrics.event_lag.observe(max(lag, 0.0))
        for sub, (a, b, c, d) in zip(batch.submissions, batch.spans, strict=True):
            if sub.on_commit is None:
                continue
            accepted = int(mask[a:b].sum())
            rejected = [*batch.dead[c:d], *(r.dead for r in refused if a <= r.position < b)]
            duplicates = (b - a) - accepted - (len(rejected) - (d - c))
            try:
                sub.on_commit(SubmissionResult(accepted, duplicates, rejected))
            except Exception:
                log.exception("confirming %d %s message(s) failed", len(sub.messages),
                              sub.messages[0].source)
        self._pending -= batch.messages
        self.metrics.queue_depth.set(self._pending)
        if len(batch.events) >= 1000 or batch.dead:
            log.debug("batch committed: %d events (%d new), %d dead letters, %d messages",
                      len(batch.events), stored, len(batch.dead), batch.messages)
        async with self._changed:
            self._changed.notify_all()


def _poison(message: RawMessage, detail: str) -> DeadLetter:
    return DeadLetter(source=message.source, reason=POISON, raw=message.payload,
                      detail=detail[:500], topic=message.topic, partition=message.partition,
                      offset=message.offset)


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
