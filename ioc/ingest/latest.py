"""The newest reading per device and kind, folded in memory and written every few seconds.

Writing it with every batch would cost an upsert per device per batch; the device list and
device view only need it fresh to within a few seconds. It is folded in after each commit
(so only stored events count) and flushed by a background task; an instance that dies loses
at most the last interval's updates, which the devices' next readings repair.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import numpy as np

from ioc.storage.batch import EventBatch
from ioc.storage.devices import upsert_latest
from ioc.tasks import cancel_and_wait

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0


class LatestValues:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._dirty: dict[tuple[str, str], tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="device-latest")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush()

    async def process(
        self, conn: asyncpg.Connection, events: EventBatch, new_mask: np.ndarray,
        received_at: float,
    ) -> Callable[[], None] | None:
        """A batch processor: nothing in the transaction, the fold after its commit."""
        if not new_mask.any():
            return None
        return lambda: self.fold(events, new_mask)

    def fold(self, events: EventBatch, new_mask: np.ndarray) -> None:
        idx = np.flatnonzero(new_mask)
        order = idx[np.argsort(events.ts[idx], kind="stable")]
        # Ascending ts: the dict keeps, per key, the index of the newest reading.
        newest = dict(zip(zip(np.asarray(events.device_id, dtype=object)[order].tolist(),
                              np.asarray(events.kind, dtype=object)[order].tolist(),
                              strict=True), order.tolist(), strict=True))
        ts, value, dirty = events.ts, events.value, self._dirty
        for key, i in newest.items():
            t = int(ts[i])
            old = dirty.get(key)
            if old is None or t >= old[0]:
                dirty[key] = (t, float(value[i]))

    async def flush(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        keys = list(dirty)
        try:
            async with self._pool.acquire() as conn:
                await upsert_latest(conn, [k[0] for k in keys], [k[1] for k in keys],
                                    [dirty[k][0] for k in keys], [dirty[k][1] for k in keys])
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("latest values of %d device/kind pairs not written (%s); retrying",
                        len(keys), exc)
            for key, item in dirty.items():
                newer = self._dirty.get(key)
                if newer is None or newer[0] < item[0]:
                    self._dirty[key] = item

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()
