"""The idempotent batch writer against a real PostgreSQL (and TimescaleDB when installed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import asyncpg
import numpy as np
import pytest

from ioc.embedded.postgres import EmbeddedPostgres
from ioc.model import DeadLetter, EventBatch
from ioc.storage.errors import PermanentStorageError
from ioc.storage.migrations import flavour_of
from ioc.storage.partitions import PartitionManager
from ioc.storage.pool import create_pool
from ioc.storage.writer import BatchWriter, WriteTransaction
from tests.conftest import new_database
from tests.support.events import make_batch

DAY_US = 86_400_000_000


async def open_writer(dsn: str) -> tuple[asyncpg.Pool, BatchWriter]:
    pool = await create_pool(dsn, size=2, writer=True)
    async with pool.acquire() as conn:
        flavour = await flavour_of(conn)
    writer = BatchWriter(pool, PartitionManager(flavour))
    await writer.start()
    return pool, writer


@pytest.fixture(params=["postgres", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
def flavour_dsn(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("database")
    return request.getfixturevalue("tsdb_database")


async def count(pool: asyncpg.Pool, table: str = "events") -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_same_batch_twice_stores_once(flavour_dsn: str) -> None:
    pool, writer = await open_writer(flavour_dsn)
    try:
        before = await count(pool)
        batch = make_batch(5000, seed=1)
        dead = [DeadLetter("mqtt", "bad_json", b"\xff{", "not JSON", "ioc/v1/events/x")]
        first = await writer.write(batch, dead)
        second = await writer.write(batch)
        assert first.new == 5000 and first.dead_letters == 1
        assert second.new == 0 and not second.new_mask.any()
        assert await count(pool) == before + 5000
        stored = await pool.fetch(
            "SELECT event_id, value, attrs FROM events WHERE event_id = ANY($1::text[])",
            batch.event_id[:3])
        by_id = {r["event_id"]: r for r in stored}
        for i in range(3):
            assert by_id[batch.event_id[i]]["value"] == batch.value[i]
        row = await pool.fetchrow("SELECT source, reason, raw FROM dead_letters")
        assert (row["source"], row["reason"], row["raw"]) == ("mqtt", "bad_json", b"\xff{")
    finally:
        await pool.close()


async def test_duplicates_within_a_batch_and_partial_replay(flavour_dsn: str) -> None:
    pool, writer = await open_writer(flavour_dsn)
    try:
        before = await count(pool)
        old = make_batch(100, seed=2)
        await writer.write(old)
        fresh = make_batch(50, seed=3)
        mixed = EventBatch.concat([old.take(np.arange(10)), fresh, fresh.take(np.arange(5))])
        result = await writer.write(mixed)
        expected = np.r_[np.zeros(10, bool), np.ones(50, bool), np.zeros(5, bool)]
        assert result.new_mask.tolist() == expected.tolist()
        assert await count(pool) == before + 150
    finally:
        await pool.close()


async def test_event_for_a_day_without_partition(flavour_dsn: str) -> None:
    pool, writer = await open_writer(flavour_dsn)
    try:
        long_ago = int(time.time() * 1e6) - 200 * DAY_US
        far = int(time.time() * 1e6) + 40 * DAY_US
        batch = EventBatch.concat([make_batch(3, start_us=long_ago, seed=4),
                                   make_batch(3, start_us=far, seed=5)])
        result = await writer.write(batch)
        assert result.new == 6
        got = await pool.fetchval("SELECT count(*) FROM events WHERE event_id = ANY($1::text[])",
                                  batch.event_id)
        assert got == 6
    finally:
        await pool.close()


def test_copy_target_is_the_day_partition_when_the_batch_has_one_day() -> None:
    partitions = PartitionManager("postgres")
    day = 20_000  # 2024-10-04
    partitions._days = {day, day + 1}
    at = day * DAY_US + np.array([5, 86_399_999_999])
    assert partitions.copy_target(at) == "events_p20241004"
    assert partitions.copy_target(at + 5) == "events"  # spans midnight
    assert partitions.copy_target(at + 10 * DAY_US) == "events"  # day not known
    assert PartitionManager("timescaledb").copy_target(at) == "events"


async def test_a_dropped_partition_is_recreated_and_the_batch_stored(database: str) -> None:
    pool, writer = await open_writer(database)
    try:
        when = int(time.time() * 1e6) - 3 * DAY_US
        await writer.write(make_batch(2, start_us=when, seed=6))
        day = dt.datetime.fromtimestamp(when / 1e6, dt.UTC).strftime("%Y%m%d")
        await pool.execute(f"DROP TABLE events_p{day}")  # e.g. by retention, meanwhile
        batch = make_batch(4, start_us=when, seed=7)
        assert (await writer.write(batch)).new == 4
        assert await pool.fetchval("SELECT count(*) FROM events WHERE event_id = ANY($1::text[])",
                                   batch.event_id) == 4
    finally:
        await pool.close()


async def test_unknown_devices_are_auto_registered(database: str) -> None:
    pool, writer = await open_writer(database)
    try:
        batch = make_batch(20, devices=7, seed=6, prefix="auto")
        result = await writer.write(batch)
        assert sorted(result.new_devices) == sorted(set(batch.device_id))
        rows = await pool.fetch("SELECT id, registered_by, district FROM devices WHERE id = ANY($1)",
                                sorted(set(batch.device_id)))
        assert {r["registered_by"] for r in rows} == {"auto"}
        assert all(r["district"] is None for r in rows)
        assert (await writer.write(make_batch(5, devices=7, seed=7, prefix="auto"))).new_devices == []
    finally:
        await pool.close()


async def test_failure_inside_the_transaction_rolls_back_everything(database: str) -> None:
    pool, writer = await open_writer(database)
    try:
        before, dead_before = await count(pool), await count(pool, "dead_letters")
        batch = make_batch(10, seed=8)

        async def failing(tx: WriteTransaction) -> None:
            await tx.register_devices(batch)
            await tx.store_dead_letters([DeadLetter("http", "schema", b"{}")])
            await tx.store_events(batch)
            await tx.conn.execute("SELECT 1/0")

        with pytest.raises(PermanentStorageError) as info:
            await writer.run(batch, failing, what="failing batch")
        assert info.value.sqlstate == "22012"
        assert await count(pool) == before
        assert await count(pool, "dead_letters") == dead_before
    finally:
        await pool.close()


async def test_work_meanwhile_runs_on_the_fast_path_and_its_failure_rolls_back(
    database: str,
) -> None:
    pool, writer = await open_writer(database)
    try:
        before = await count(pool)
        calls: list[int] = []

        async def store(batch: EventBatch, call: Callable[[], None]) -> np.ndarray:
            async def transaction(tx: WriteTransaction) -> np.ndarray:
                return await tx.store_events(batch, meanwhile=call)
            return await writer.run(batch, transaction, what="batch")

        batch = make_batch(3000, seed=9)
        first = await store(batch, lambda: calls.append(1))
        again = await store(batch, lambda: calls.append(2))
        assert (int(first.sum()), int(again.sum()), calls) == (3000, 0, [1, 2])

        def failing() -> None:
            raise RuntimeError("rule evaluation failed")

        with pytest.raises(RuntimeError):
            await store(make_batch(3000, seed=10), failing)
        assert await count(pool) == before + 3000
        later = await writer.write(make_batch(10, seed=11))  # the connections are usable again
        assert later.new == 10
    finally:
        await pool.close()


async def test_server_restart_mid_batch_is_retried(tmp_path) -> None:
    """A fast shutdown kills the writer's connection mid-COPY; the batch is retried, not lost."""
    with EmbeddedPostgres() as pg:
        dsn = new_database(pg, "restart")
        pool, writer = await open_writer(dsn)
        retries: list[BaseException] = []
        writer._on_retry = retries.append
        try:
            total = 0
            batches = [make_batch(50_000, devices=500, seed=100 + i) for i in range(6)]

            async def restart_soon() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(pg.restart)

            restart = asyncio.create_task(restart_soon())
            for b in batches:
                total += (await writer.write(b)).new
            await restart
            assert retries, "the restart should have interrupted at least one write"
            assert total == 300_000
            assert await count(pool) == 300_000
        finally:
            await pool.close()
