"""API keys: created once, stored only as a SHA-256 hash, looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

ROLES = ("admin", "operator", "agency", "ingest")
KEY_PREFIX = "ioc_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str | None
    role: str
    districts: tuple[str, ...] | None  # None: every district


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is as good as a slow one against guessing.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    conn: asyncpg.Connection, role: str, *, name: str | None = None,
    districts: list[str] | None = None,
) -> tuple[str, int]:
    """A new key (returned once, never stored) and its id."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (name, role, districts, key_hash, prefix) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id",
        name, role, districts or None, hash_key(key), key[:12],
    )
    return key, int(key_id)


async def find_key(conn: asyncpg.Connection, key: str) -> ApiKey | None:
    row = await conn.fetchrow(
        "SELECT id, name, role, districts FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        hash_key(key),
    )
    if row is None:
        return None
    districts = tuple(row["districts"]) if row["districts"] else None
    return ApiKey(row["id"], row["name"], row["role"], districts)


async def touch_key(conn: asyncpg.Connection, key_id: int) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id)


async def list_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, name, role, districts, prefix, created_at, last_used_at, revoked_at"
        " FROM api_keys ORDER BY id")


async def revoke_key(conn: asyncpg.Connection, key_id: int) -> bool:
    """Revoke a key; False when there is no such key or it was revoked already."""
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id)
    return status.endswith(" 1")
