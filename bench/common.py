"""Shared pieces of the benchmarks: a server to measure on, the ceilings, the live feed's
client, and JSON results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

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


class FeedClient:
    """An SSE client of ``GET /api/v1/alerts/stream``, read like a browser's EventSource.

    One class for bench/alert_latency.py's probes and bench/storm.py's markers, so that both
    time the console the same way. The user records in ``sent`` (key -> monotonic time of the
    publish) what it sends; ``key_of`` names the key of a frame that answers one (None for any
    other frame), and its arrival goes in ``seen``. ``frames`` counts every alert change
    received, its own or not.
    """

    def __init__(self, api: str, key_of: Callable[[str], Hashable | None]) -> None:
        self.api = api
        self._key_of = key_of
        self.sent: dict[Any, float] = {}
        self.seen: dict[Any, float] = {}
        self.frames = 0
        self.reconnects = 0
        self._arrived = asyncio.Event()

    async def listen(self, subscribed: asyncio.Event) -> None:
        """Reads the stream until cancelled; reconnects with Last-Event-ID as a browser does."""
        last_id: str | None = None
        async with httpx.AsyncClient(timeout=None) as client:
            while True:
                headers = {"Last-Event-ID": last_id} if last_id else {}
                try:
                    async with client.stream("GET", f"{self.api}/api/v1/alerts/stream",
                                             headers=headers) as resp:
                        resp.raise_for_status()
                        async for line in resp.aiter_lines():
                            if line.startswith("retry:"):
                                subscribed.set()
                            elif line.startswith("id: "):
                                last_id = line[4:]
                            elif line.startswith("data: "):
                                self.frames += 1
                                now = time.monotonic()
                                key = self._key_of(line[6:])
                                if key is not None:
                                    self.seen.setdefault(key, now)
                                    self._arrived.set()
                except httpx.HTTPError:
                    pass
                self.reconnects += 1

    async def settle(self, keys: Iterable[Hashable], within_s: float) -> None:
        """Wait (at most ``within_s``) for the frames of ``keys``."""
        keys = list(keys)
        deadline = time.monotonic() + within_s
        while any(k not in self.seen for k in keys) and time.monotonic() < deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 1.0)

    def latency(self, keys: Iterable[Hashable]) -> dict[str, Any]:
        """Publish -> frame of ``keys`` in ms: the median, p95 and p99 by rank (p99 of 300 is
        the third slowest, so that a handful of stalls shows instead of being interpolated
        away), max and mean."""
        lat = sorted((self.seen[k] - self.sent[k]) * 1000 for k in keys if k in self.seen)
        if not lat:
            return {"received": 0}
        rank = {f"p{q}_ms": round(lat[min(len(lat) - 1, int(len(lat) * q / 100))], 1)
                for q in (95, 99)}
        return {"received": len(lat), "p50_ms": round(statistics.median(lat), 1), **rank,
                "max_ms": round(lat[-1], 1), "mean_ms": round(statistics.fmean(lat), 1)}


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, ensure_ascii=False) + "\n")
    return path
