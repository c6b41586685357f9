"""The idempotent batch writer: a micro-batch of events and dead letters in one transaction.

Fast path: one binary COPY straight into ``events``, encoded a column at a time by
copy_binary (not a tuple per row). The unique key (ts, device_id, event_id) leads with ts,
so a live stream appends at the right edge of the index and the COPY runs at close to the
speed of a table without constraints. A replayed batch (after a crash, a Kafka rebalance,
an MQTT redelivery) or a batch that repeats an event within itself fails that COPY with a
unique violation; the whole transaction is then redone through a staging table with
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` so that exactly the new rows are stored and
reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import numpy as np

from ioc.model import DeadLetter, EventBatch
from ioc.storage.copy_binary import COLUMNS, encode_events
from ioc.storage.errors import retry_transient
from ioc.storage.partitions import PartitionManager

log = logging.getLogger(__name__)

DEAD_COLUMNS = ["source", "topic", "partition", "offset", "reason", "detail", "raw"]

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ioc_stage (
    ord integer, ts timestamptz, device_id text COLLATE "C", event_id text COLLATE "C",
    kind text COLLATE "C", value double precision, unit text, attrs jsonb
) ON COMMIT DELETE ROWS
"""
_STAGE_INSERT = """
INSERT INTO events (ts, device_id, event_id, kind, value, unit, attrs)
SELECT ts, device_id, event_id, kind, value, unit, attrs FROM ioc_stage ORDER BY ord
ON CONFLICT DO NOTHING
RETURNING ts, device_id, event_id
"""

T = TypeVar("T")


@dataclass(slots=True)
class WriteResult:
    new_mask: np.ndarray  # bool per event: stored by this call (not a replay or a repeat)
    dead_letters: int
    new_devices: list[str]  # auto-registered by this call

    @property
    def new(self) -> int:
        return int(self.new_mask.sum())


class _Replay(Exception):
    """The fast COPY hit an existing key: redo the transaction on the dedup path."""


class _MissingPartition(Exception):
    """A cached partition is gone (dropped elsewhere): reload the cache and redo."""


class WriteTransaction:
    """One attempt at a batch's transaction: its steps, called in order by its owner.

    ``fast`` is true on the first attempt of a batch with events: they go in by one COPY. A
    replayed batch (after a crash, a rebalance, a redelivery) or one that repeats an event
    within itself fails that COPY; the attempt is then redone with ``fast`` false, through the
    staging table that says exactly which events are new.
    """

    __slots__ = ("_writer", "conn", "fast", "new_devices")

    def __init__(self, writer: BatchWriter, conn: asyncpg.Connection, fast: bool) -> None:
        self._writer = writer
        self.conn = conn
        self.fast = fast
        self.new_devices: list[str] = []

    async def register_devices(self, events: EventBatch) -> None:
        """Devices seen for the first time are auto-registered (no area until the registry
        says)."""
        self.new_devices = await self._writer._register_devices(self.conn, events)

    async def store_dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        if dead:
            await self.conn.copy_records_to_table(
                "dead_letters",
                records=[(d.source, _text(d.topic), d.partition, d.offset, d.reason,
                          _text(d.detail), d.raw) for d in dead],
                columns=DEAD_COLUMNS,
            )

    async def store_events(
        self, events: EventBatch, copy_data: memoryview | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> np.ndarray:
        """Which of the events are new (stored now). ``copy_data`` is the batch's
        :func:`encode_events` output if encoded ahead; ``meanwhile`` is work for the service's
        CPU while the server takes the COPY (the fast path only)."""
        if not len(events):
            return np.zeros(0, dtype=bool)
        if self.fast:
            return await self._writer._copy_events(self.conn, events, copy_data, meanwhile)
        return await self._writer._insert_new_events(self.conn, events)


class BatchWriter:
    """Writes batches through a pool whose connections use the writer codecs (see pool.py)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        partitions: PartitionManager,
        *,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._pool = pool
        self._partitions = partitions
        self._on_retry = on_retry
        self._known_devices: set[str] = set()

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            await self._partitions.load(conn)
            await self._partitions.ensure_ahead(conn)
            self._known_devices = {r["id"] for r in await conn.fetch("SELECT id FROM devices")}

    def forget_device(self, device_id: str) -> None:
        self._known_devices.discard(device_id)

    async def run(
        self, events: EventBatch, transaction: Callable[[WriteTransaction], Awaitable[T]], *,
        what: str,
    ) -> T:
        """BEGIN, ``transaction(tx)``, COMMIT, exactly once for the batch ``events``.

        Redone on the dedup path after a replay, after reloading the partitions when one was
        dropped meanwhile, and with backoff after a transient failure (connection lost, server
        restarting, deadlock) for as long as it takes; permanent failures raise
        PermanentStorageError. The day partitions the events need exist before it begins.
        """
        # A repeat within the batch fails the fast COPY like a replay does, and takes the
        # same dedup path: rarer than it is worth checking every batch for.
        fast = len(events) > 0

        async def attempt() -> T:
            # A loop, not a recursive call: a closure that refers to itself is a reference
            # cycle, which kept every batch's columns alive until the next full collection.
            nonlocal fast
            while True:
                missing = self._partitions.missing_days(events.ts)
                if missing:
                    async with self._pool.acquire() as conn:
                        await self._partitions.ensure(conn, missing)
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        tx = WriteTransaction(self, conn, fast)
                        result = await transaction(tx)
                    self._known_devices.update(tx.new_devices)
                    return result
                except _Replay:
                    fast = False
                except _MissingPartition:
                    async with self._pool.acquire() as conn:
                        await self._partitions.load(conn)

        return await retry_transient(attempt, what=what, on_retry=self._on_retry)

    async def write(self, events: EventBatch, dead: Sequence[DeadLetter] = ()) -> WriteResult:
        """Store a batch and its dead letters exactly once (no other work in the transaction)."""

        async def store(tx: WriteTransaction) -> WriteResult:
            await tx.register_devices(events)
            await tx.store_dead_letters(dead)
            return WriteResult(await tx.store_events(events), len(dead), tx.new_devices)

        return await self.run(events, store, what=describe(events, dead))

    async def _register_devices(self, conn: asyncpg.Connection, events: EventBatch) -> list[str]:
        """Auto-register devices seen for the first time (no district until the registry says)."""
        unseen = set(events.device_id) - self._known_devices
        if not unseen:
            return []
        rows = await conn.fetch(
            "INSERT INTO devices (id, kind, registered_by) "
            "SELECT d.id, d.kind, 'auto' FROM unnest($1::text[], $2::text[]) AS d(id, kind) "
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            *_first_kind(events, unseen),
        )
        if rows:
            log.info("auto-registered %d new device(s)", len(rows))
        return sorted(unseen)

    async def _copy_events(
        self, conn: asyncpg.Connection, events: EventBatch, copy_data: memoryview | None,
        meanwhile: Callable[[], None] | None,
    ) -> np.ndarray:
        copy = asyncio.ensure_future(conn.copy_to_table(
            self._partitions.copy_target(events.ts),
            source=encode_events(events) if copy_data is None else copy_data,
            columns=COLUMNS, format="binary"))
        if meanwhile is not None:
            try:
                # One turn of the loop lets the COPY task send the statement and all its data
                # (asyncpg writes a buffer in one go); the server works through it meanwhile.
                await asyncio.sleep(0)
                meanwhile()
            except BaseException:
                copy.cancel()  # the connection must be idle again before it is given back
                await asyncio.gather(copy, return_exceptions=True)
                raise
        try:
            await copy
        except asyncpg.UniqueViolationError as exc:
            raise _Replay from exc
        except asyncpg.UndefinedTableError as exc:  # the day's partition was just dropped
            raise _MissingPartition from exc
        except asyncpg.CheckViolationError as exc:
            if "no partition" in str(exc):
                raise _MissingPartition from exc
            raise
        return np.ones(len(events), dtype=bool)

    async def _insert_new_events(self, conn: asyncpg.Connection, events: EventBatch) -> np.ndarray:
        await conn.execute(_STAGE_DDL)
        await conn.copy_to_table("ioc_stage", source=encode_events(events, ordinal=True),
                                 columns=["ord", *COLUMNS], format="binary")
        try:
            rows = await conn.fetch(_STAGE_INSERT)
        except asyncpg.CheckViolationError as exc:
            if "no partition" in str(exc):
                raise _MissingPartition from exc
            raise
        stored = {(r["device_id"], r["event_id"], r["ts"]) for r in rows}
        new_mask = np.zeros(len(events), dtype=bool)
        if not stored:
            return new_mask
        for i, key in enumerate(zip(events.device_id, events.event_id, events.ts.tolist(),
                                    strict=True)):
            if key in stored:
                new_mask[i] = True
                stored.discard(key)  # a repeat within the batch is not new
        return new_mask


def describe(events: EventBatch, dead: Sequence[DeadLetter]) -> str:
    """How a batch is named in retry and error messages."""
    return f"write batch ({len(events)} events, {len(dead)} dead letters)"


def _text(value: str | None) -> str | None:
    """A dead letter's topic or detail as text PostgreSQL takes: a detail may quote the input,
    and input may hold NUL characters or lone surrogates (the raw bytes keep it all)."""
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _first_kind(events: EventBatch, ids: set[str]) -> tuple[list[str], list[str]]:
    first: dict[str, str] = {}
    for device, kind in zip(events.device_id, events.kind, strict=True):
        if device in ids and device not in first:
            first[device] = kind
    return list(first), list(first.values())
