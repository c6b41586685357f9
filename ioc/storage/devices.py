"""The devices table: registry sync from config/devices.yaml and look-ups."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from ioc.devices import Device
from ioc.rules.model import DeviceMeta


async def sync_registry(conn: asyncpg.Connection, devices: list[Device]) -> int:
    """Upsert the file's devices (an auto-registered device gets its district now); returns count."""
    if not devices:
        return 0
    await conn.executemany(
        """
        INSERT INTO devices (id, name, kind, district, ward, lat, lon, "interval", tags,
                             registered_by, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, make_interval(secs => $8), $9, 'file', now())
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, kind = EXCLUDED.kind, district = EXCLUDED.district,
            ward = EXCLUDED.ward, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
            "interval" = EXCLUDED."interval", tags = EXCLUDED.tags,
            registered_by = 'file', updated_at = now()
        WHERE (devices.name, devices.kind, devices.district, devices.ward, devices.lat,
               devices.lon, devices."interval", devices.tags, devices.registered_by)
              IS DISTINCT FROM
              (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.district, EXCLUDED.ward, EXCLUDED.lat,
               EXCLUDED.lon, EXCLUDED."interval", EXCLUDED.tags, 'file')
        """,
        [(d.id, d.name, d.kind, d.district, d.ward, d.lat, d.lon, d.interval_s, list(d.tags))
         for d in devices],
    )
    return len(devices)


async def all_devices(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        'SELECT id, name, kind, district, ward, lat, lon, extract(epoch FROM "interval") AS interval_s,'
        " tags, registered_by FROM devices ORDER BY id"
    )


async def registered_ids(conn: asyncpg.Connection) -> frozenset[str]:
    """Devices registered from the file or by an admin (not auto-registered by their events)."""
    rows = await conn.fetch("SELECT id FROM devices WHERE registered_by <> 'auto'")
    return frozenset(r["id"] for r in rows)


async def device_metas(conn: asyncpg.Connection) -> list[DeviceMeta]:
    """Every device as the rule engine scopes and words alerts (name, district, tags)."""
    rows = await conn.fetch("SELECT id, name, district, tags FROM devices")
    return [DeviceMeta(r["id"], r["name"], r["district"], tuple(r["tags"] or ())) for r in rows]


async def device_districts(conn: asyncpg.Connection,
                           device_ids: Collection[str]) -> dict[str, str | None]:
    """The district of each of these devices (a device not in the table is left out)."""
    rows = await conn.fetch("SELECT id, district FROM devices WHERE id = ANY($1::text[])",
                            list(device_ids))
    return {r["id"]: r["district"] for r in rows}


async def upsert_latest(conn: asyncpg.Connection, device_ids: list[str], kinds: list[str],
                        ts_us: list[int], values: list[float]) -> None:
    """Newest reading per (device, kind); an older one never overwrites a newer one."""
    await conn.execute(
        """
        INSERT INTO device_latest (device_id, kind, ts, value, updated_at)
        SELECT d, k, timestamptz 'epoch' + t * interval '1 microsecond', v, now()
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[]) AS u(d, k, t, v)
        ON CONFLICT (device_id, kind) DO UPDATE
            SET ts = EXCLUDED.ts, value = EXCLUDED.value, updated_at = now()
            WHERE EXCLUDED.ts >= device_latest.ts
        """,
        device_ids, kinds, ts_us, values,
    )
