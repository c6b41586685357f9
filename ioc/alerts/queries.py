"""Read queries of the alert API: the stored rows shaped as the API shows alerts."""

from __future__ import annotations

from typing import Any

import asyncpg

from ioc.alerts.shape import alert_dict, iso
from ioc.storage import alerts as stored
from ioc.storage.alerts import AlertFilter


async def list_alerts(conn: asyncpg.Connection, f: AlertFilter, *, before_id: int | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """Newest first (by id), continuing below ``before_id``; see :class:`AlertFilter`."""
    return [alert_dict(r) for r in await stored.list_alerts(conn, f, before_id=before_id,
                                                            limit=limit)]


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> dict[str, Any] | None:
    """The alert and its audit trail (oldest change first)."""
    row = await stored.get_alert(conn, alert_id)
    if row is None:
        return None
    audit = await stored.alert_audit(conn, alert_id)
    return {**alert_dict(row), "audit": [
        {"action": a["action"], "actor": a["actor"], "note": a["note"], "at": iso(a["at"])}
        for a in audit]}
