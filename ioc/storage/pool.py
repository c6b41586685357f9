"""Connection pools: the writer's speak Unix microseconds for timestamptz, the rest datetime."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from ioc.storage.errors import DatabaseUnavailable

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _encode_ts(value: Any) -> tuple[int]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, int):
        return (value - PG_EPOCH_US,)
    delta = value - _PG_EPOCH
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds,)


def _decode_ts(value: tuple[int]) -> int:
    return value[0] + PG_EPOCH_US


async def use_microsecond_timestamps(conn: asyncpg.Connection) -> None:
    """timestamptz as Unix microseconds, so a COPY of an int64 column needs no datetime objects."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_encode_ts, decoder=_decode_ts, format="tuple"
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The writer pool's release hook: its connections keep no session state to undo.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a round
    trip per batch; an open transaction is still rolled back before this hook runs.
    """


async def create_pool(dsn: str, *, size: int, writer: bool = False) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1 if writer else 2,
        max_size=size,
        init=use_microsecond_timestamps if writer else None,
        reset=_keep_session if writer else None,
        command_timeout=None,
        server_settings={"application_name": "ioc-writer" if writer else "ioc-api"},
    )


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip: raises when the database does not answer (readiness checks)."""
    await pool.fetchval("SELECT 1")


async def connect(dsn: str) -> asyncpg.Connection:
    """One plain connection, with the usual failures turned into one readable line."""
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot reach the database ({exc})") from None
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"database refused the connection: {exc}") from None
