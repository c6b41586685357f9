"""District scoping of read requests: an agency key limited to districts sees only theirs.

A request that names another district, or a registered device of another district (or of no
district), is refused with 403 instead of silently answering nothing, so that a report
built on it cannot look complete when it is not.
"""

from __future__ import annotations

import asyncpg

from ioc.api.errors import ApiError
from ioc.storage.history import devices_outside
from ioc.storage.keys import ApiKey


def split_values(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated query parameters and comma lists alike: ``a&x=b,c`` -> (a, b, c)."""
    if not values:
        return None
    for value in values:
        plain_text(value)
    out = tuple(dict.fromkeys(v.strip() for value in values for v in value.split(",") if v.strip()))
    return out or None


def plain_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: such a filter is refused (422), not sent to fail (500)."""
    if value is not None and "\x00" in value:
        raise ApiError(422, "invalid", "text parameters must not contain NUL characters")
    return value


def scoped_districts(key: ApiKey, requested: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The districts a query may cover: those asked for, within the key's; None = all."""
    if key.districts is None:
        return requested
    if requested is None:
        return key.districts
    outside = [d for d in requested if d not in key.districts]
    if outside:
        raise ApiError(403, "forbidden", f"this key may not read district(s) {outside}")
    return requested


async def check_devices(conn: asyncpg.Connection, key: ApiKey, ids: tuple[str, ...] | None) -> None:
    """403 when a limited key names a registered device outside its districts."""
    if key.districts is None or not ids:
        return
    outside = await devices_outside(conn, list(ids), key.districts)
    if outside:
        raise ApiError(403, "forbidden", f"this key may not read device(s) {outside[:20]}")
