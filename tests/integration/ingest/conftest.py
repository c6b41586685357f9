"""Per-test brokers and a service process for the delivery tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.support.service import ServiceProcess


@pytest.fixture
def mqtt_broker() -> Iterator[EmbeddedMosquitto]:
    """A broker of this test's own, so no persistent session leaks between tests."""
    with EmbeddedMosquitto() as broker:
        yield broker


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator:
    started: list[ServiceProcess] = []

    def make(**env: str) -> ServiceProcess:
        svc = ServiceProcess(tmp_path, env)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.kill()


async def query(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """One statement on a connection of its own."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def event_ids(dsn: str, prefix: str) -> list[str]:
    rows = await query(dsn, "SELECT event_id FROM events WHERE event_id LIKE $1", prefix + "-%")
    return [r[0] for r in rows]


def wait_rows(dsn: str, sql: str, n: int, timeout: float = 30, *args: object,
              poll_s: float = 0.05) -> list[asyncpg.Record]:
    """Poll ``sql`` until it returns ``n`` rows or more (or time runs out); returns the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = asyncio.run(query(dsn, sql, *args))
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(poll_s)


def wait_for_count(dsn: str, prefix: str, n: int, timeout: float = 90) -> list[str]:
    """Poll until ``n`` events with the prefix are stored (or time runs out); returns the ids."""
    rows = wait_rows(dsn, "SELECT event_id FROM events WHERE event_id LIKE $1", n, timeout,
                     prefix + "-%", poll_s=0.5)
    return [r[0] for r in rows]
