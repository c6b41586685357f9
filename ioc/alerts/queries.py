"""Read queries of the alert API: filtered keyset pages and one alert with its audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from ioc.alerts.shape import ALERT_COLUMNS, alert_dict, iso


async def list_alerts(
    conn: asyncpg.Connection, *, state: str | None = None, severity: str | None = None,
    district: str | None = None, rule_id: str | None = None, device_id: str | None = None,
    start: dt.datetime | None = None, end: dt.datetime | None = None,
    districts: Sequence[str] | None = None, before_id: int | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first (by id). ``state`` "open" means firing or acknowledged; ``start``/``end``
    bound ``started_at`` as [start, end); ``districts`` is the caller's scope."""
    where: list[str] = []
    args: list[Any] = []

    def add(clause: str, value: Any) -> None:
        args.append(value)
        where.append(clause.format(f"${len(args)}"))

    if state == "open":
        where.append("state <> 'resolved'")
    elif state is not None:
        add("state = {}", state)
    for column, value in (("severity", severity), ("district", district), ("rule_id", rule_id),
                          ("device_id", device_id)):
        if value is not None:
            add(f"{column} = {{}}", value)
    if start is not None:
        add("started_at >= {}", start)
    if end is not None:
        add("started_at < {}", end)
    if districts is not None:
        add("district = ANY({}::text[])", list(districts))
    if before_id is not None:
        add("id < {}", before_id)
    args.append(limit)
    sql = (f"SELECT {ALERT_COLUMNS} FROM alerts {'WHERE ' + ' AND '.join(where) if where else ''}"
           f" ORDER BY id DESC LIMIT ${len(args)}")
    return [alert_dict(r) for r in await conn.fetch(sql, *args)]


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any] | None:
    """The alert and its audit trail (oldest change first)."""
    row = await conn.fetchrow(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1", alert_id)
    if row is None:
        return None
    audit = await conn.fetch(
        "SELECT action, actor, note, at FROM alert_audit WHERE alert_id = $1 ORDER BY id", alert_id)
    return {**alert_dict(row), "audit": [
        {"action": a["action"], "actor": a["actor"], "note": a["note"], "at": iso(a["at"])}
        for a in audit]}
