"""Shared pieces of the benchmarks: a server to measure on, the ceilings, and JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

from ioc.model import EventBatch
from ioc.storage.copy_binary import COLUMNS
from ioc.storage.pool import PG_EPOCH_US

RESULTS = Path(__file__).parent / "results"

BARE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_bare (
    ts timestamptz, device_id text, event_id text, kind text, value double precision,
    unit text, attrs jsonb, received_at timestamptz DEFAULT now())
"""
NAIVE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_naive (
    ts timestamptz NOT NULL, device_id text NOT NULL, event_id text NOT NULL, kind text NOT NULL,
    value double precision NOT NULL, unit text, attrs jsonb, received_at timestamptz DEFAULT now(),
    UNIQUE (device_id, event_id, ts))
"""


def records(batch: EventBatch) -> list[tuple]:
    ts = [(t,) for t in (batch.ts - PG_EPOCH_US).tolist()]
    return list(zip(ts, batch.device_id, batch.event_id, batch.kind, batch.value.tolist(),
                    batch.unit, batch.attrs, strict=True))


async def bare_copy_rate(conn: asyncpg.Connection, batches: list[EventBatch]) -> float:
    """Ceiling 1: COPY of the same rows into a table without any constraint or index."""
    await conn.execute(BARE_TABLE)
    await conn.execute("TRUNCATE bench_bare")
    await conn.execute("CHECKPOINT")  # do not pay for flushing what ran before
    start = time.perf_counter()
    for b in batches:
        async with conn.transaction():
            await conn.copy_records_to_table("bench_bare", records=records(b), columns=COLUMNS)
    rate = sum(len(b) for b in batches) / (time.perf_counter() - start)
    await conn.execute("DROP TABLE bench_bare")
    return rate


async def naive_idempotent_rate(conn: asyncpg.Connection, batches: list[EventBatch]) -> float:
    """Ceiling 2: the textbook idempotent write (COPY to staging + INSERT ... ON CONFLICT)."""
    await conn.execute(NAIVE_TABLE)
    await conn.execute("TRUNCATE bench_naive")
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE bench_naive) "
                       "ON COMMIT DELETE ROWS")
    await conn.execute("CHECKPOINT")
    start = time.perf_counter()
    for b in batches:
        async with conn.transaction():
            await conn.copy_records_to_table("bench_stage", records=records(b),
                                             columns=COLUMNS)
            await conn.execute("INSERT INTO bench_naive SELECT * FROM bench_stage "
                               "ON CONFLICT DO NOTHING")
    rate = sum(len(b) for b in batches) / (time.perf_counter() - start)
    await conn.execute("DROP TABLE bench_naive")
    return rate


async def checkpoint(dsn: str) -> None:
    """Flush the server's dirty buffers, so that the next timed run does not pay for them."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def machine() -> dict[str, Any]:
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "psql": pg.stdout.strip(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, ensure_ascii=False) + "\n")
    return path
