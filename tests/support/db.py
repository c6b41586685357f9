"""Direct database access for test assertions and set-up (one connection per call)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ioc.storage.keys import create_key


async def fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def make_keys(dsn: str, roles: Mapping[str, tuple[str, Sequence[str] | None]]
                    ) -> dict[str, str]:
    """One API key per name: {name: (role, districts)} -> {name: key}."""
    conn = await asyncpg.connect(dsn)
    try:
        return {name: (await create_key(conn, role, name=f"test-{name}",
                                        districts=list(districts) if districts else None))[0]
                for name, (role, districts) in roles.items()}
    finally:
        await conn.close()
