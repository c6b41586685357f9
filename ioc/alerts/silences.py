"""Silences: matchers plus a time window that suppress notifications (never the alert record).

A silence matches an alert when every matcher it has is equal to the alert's field (exact
match, AND); it is active while ``starts_at <= now() < ends_at``. The rows are read and
written in ``ioc/storage/alerts.py``; here they become matchers and API objects.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ioc.alerts.shape import iso
from ioc.storage import alerts as stored


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Mapping[str, str]

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(alert.get(key) == value for key, value in self.matchers.items())


def silenced(silences: Sequence[Silence], alert: Mapping[str, Any]) -> bool:
    return any(s.matches(alert) for s in silences)


async def active_silences(conn: asyncpg.Connection) -> list[Silence]:
    return [Silence(i, json.loads(m)) for i, m in await stored.active_silences(conn)]


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
    return silence_dict(await stored.insert_silence(conn, matchers, starts_at, ends_at, comment,
                                                    created_by))


async def get_silence(conn: asyncpg.Connection, silence_id: int) -> dict[str, Any] | None:
    row = await stored.get_silence(conn, silence_id)
    return silence_dict(row) if row else None


async def list_silences(
    conn: asyncpg.Connection, *, include_expired: bool, districts: Sequence[str] | None,
    before_id: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Newest first. ``districts`` limits to silences without a district or in those districts."""
    rows = await stored.list_silences(conn, include_expired=include_expired, districts=districts,
                                      before_id=before_id, limit=limit)
    return [silence_dict(r) for r in rows]
