"""Recently seen API keys, so that a busy client costs no database round trip per call.

It lives beside the key queries (not in the API) because the service owns one per instance and
hands it to the API: the service may not import the API. A revoked key keeps working for at
most ``CACHE_S`` seconds on an instance that saw it.
"""

from __future__ import annotations

import time

import asyncpg

from ioc.storage.keys import ApiKey, find_key, touch_key

CACHE_S = 30.0
TOUCH_S = 60.0  # ``last_used_at`` is written at most this often per key
MAX_ENTRIES = 10_000


class KeyCache:
    """Key look-ups through ``pool``, remembered for ``CACHE_S`` (unknown keys too)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}

    async def lookup(self, token: str) -> ApiKey | None:
        """The active key for ``token``, or None; notes its use in ``last_used_at``."""
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit and hit[0] > now:
            key = hit[1]
        else:
            async with self._pool.acquire() as conn:
                key = await find_key(conn, token)
            if len(self._entries) > MAX_ENTRIES:
                self._entries.clear()
            self._entries[token] = (now + CACHE_S, key)
        if key is not None and self._touched.get(key.id, 0) + TOUCH_S < now:
            self._touched[key.id] = now
            async with self._pool.acquire() as conn:
                await touch_key(conn, key.id)
        return key

    def clear(self) -> None:
        self._entries.clear()
