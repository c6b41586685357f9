
"""The dead_letters table, read side and replay bookkeeping (the writer inserts them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from ioc.storage.params import Params

_COLUMNS = ('id, received_at, source, topic, "partition", "offset", reason, detail, raw,'
            " replayed_at, replayed_by")


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    reasons: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    start: dt.datetime | None = None  # received_at, inclusive
    end: dt.datetime | None = None  # received_at, exclusive
    replayed: bool | None = None


async def page(conn: asyncpg.Connection, f: DeadLetterFilter, *, before_id: int | None,
               limit: int) -> tuple[list[asyncpg.Record], int | None]:
    """Newest first by id (ids only grow, so the keyset is stable while new ones arrive)."""
    conds: list[str] = []
    arg = Params()

    if f.reasons is not None:
        conds.append(f"reason = ANY({arg(list(f.reasons))}::text[])")
    if f.sources is not None:
        conds.append(f"source = ANY({arg(list(f.sources))}::text[])")
    if f.start is not None:
        conds.append(f"received_at >= {arg(f.start)}")
    if f.end is not None:
        conds.append(f"received_at < {arg(f.end)}")
    if f.replayed is not None:
        conds.append("replayed_at IS NOT NULL" if f.replayed else "replayed_at IS NULL")
    if before_id is not None:
        conds.append(f"id < {arg(before_id)}")
    sql = (f"SELECT {_COLUMNS} FROM dead_letters"
           + (" WHERE " + " AND ".join(conds) if conds else "")
           + f" ORDER BY id DESC LIMIT {arg(limit + 1)}")
    rows = await conn.fetch(sql, *arg.values)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


async def get(conn: asyncpg.Connection, dead_letter_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = $1",
                               dead_letter_id)


async def mark_replayed(conn: asyncpg.Connection, dead_letter_id: int,
                        by: str) -> asyncpg.Record | None:
    """Marks the dead letter replayed; None if another replay marked it first."""
    return await conn.fetchrow(
        "UPDATE dead_letters SET replayed_at = now(), replayed_by = $2"
        " WHERE id = $1 AND replayed_at IS NULL RETURNING replayed_at, replayed_by",
        dead_letter_id, by,
    )
