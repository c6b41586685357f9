"""Silences: matchers plus a time window that suppress notifications (never the alert record).

A silence matches an alert when every matcher it has is equal to the alert's field (exact
match, AND); it is active while ``starts_at <= now() < ends_at``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ioc.alerts.shape import iso


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Mapping[str, str]

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(alert.get(key) == value for key, value in self.matchers.items())


def silenced(silences: Sequence[Silence], alert: Mapping[str, Any]) -> bool:
    return any(s.matches(alert) for s in silences)


async def active_silences(conn: asyncpg.Connection) -> list[Silence]:
    rows = await conn.fetch(
        "SELECT id, matchers::text AS m FROM silences WHERE starts_at <= now() AND ends_at > now()")
    return [Silence(r["id"], json.loads(r["m"])) for r in rows]


_COLUMNS = ("id, matchers::text AS matchers, starts_at, ends_at, comment, created_by, created_at,"
            " (starts_at <= now() AND ends_at > now()) AS active")


def silence_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "matchers": json.loads(row["matchers"]),
            "starts_at": iso(row["starts_at"]), "ends_at": iso(row["ends_at"]),
            "comment": row["comment"], "created_by": row["created_by"],
            "created_at": iso(row["created_at"]), "active": row["active"]}


async def create_silence(
    conn: asyncpg.Connection, matchers: Mapping[str, str], starts_at: dt.datetime | None,
    ends_at: dt.datetime | None, comment: str | None, created_by: str,
) -> dict[str, Any]:
    """Insert a silence; the caller validated the matcher keys and the window."""
    row = await conn.fetchrow(
        f"INSERT INTO silences (matchers, starts_at, ends_at, comment, created_by)"
        f" VALUES ($1::jsonb, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        json.dumps(dict(matchers), ensure_ascii=False), starts_at, ends_at, comment, created_by)
    return silence_dict(row)


async def get_silence(conn: asyncpg.Connection, silence_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM silences WHERE id = $1", silence_id)
    return silence_dict(row) if row else None


async def list_silences(
    conn: asyncpg.Connection, *, include_expired: bool, districts: Sequence[str] | None,
    before_id: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Newest first. ``districts`` limits to silences without a district or in those districts."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM silences
            WHERE ($1 OR ends_at > now())
              AND ($2::text[] IS NULL OR matchers->>'district' IS NULL
                   OR matchers->>'district' = ANY($2))
              AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4""",
        include_expired, list(districts) if districts is not None else None, before_id, limit)
    return [silence_dict(r) for r in rows]


async def delete_silence(conn: asyncpg.Connection, silence_id: int) -> bool:
    return await conn.fetchval("DELETE FROM silences WHERE id = $1 RETURNING true",
                               silence_id) is not None
