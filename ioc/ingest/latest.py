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
from itertools import repeat

import asyncpg
import numpy as np

from ioc.model import CodedList, CodedValues, EventBatch
from ioc.storage.devices import upsert_latest
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0


def _codes(values: CodedValues[str], codes: dict[str, int]) -> np.ndarray:
    """The code of each value, giving new values the next free codes."""
    if isinstance(values, CodedList):
        return _codes(values.values, codes)[values.codes]
    found = np.fromiter(map(codes.get, values, repeat(-1)), dtype=np.int64, count=len(values))
    if (found < 0).any():
        for value in values:
            codes.setdefault(value, len(codes))
        found = np.fromiter(map(codes.__getitem__, values), dtype=np.int64, count=len(values))
    return found


class LatestValues:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = FLUSH_INTERVAL_S,
                 supervisor: Supervisor | None = None) -> None:
        self._pool = pool
        self._supervisor = supervisor or Supervisor()
        self._interval_s = interval_s
        self._dirty: dict[tuple[str, str], tuple[int, float]] = {}
        self._device_codes: dict[str, int] = {}
        self._kind_codes: dict[str, int] = {}
        self._prepared: tuple[EventBatch, np.ndarray] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = self._supervisor.spawn("device-latest", self._flush_loop)

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

    def prepare(self, events: EventBatch) -> None:
        """Find the newest events ahead, as if all new, while the database stores them."""
        self._prepared = events, self._newest(events.device_id, events.kind, events.ts)

    def fold(self, events: EventBatch, new_mask: np.ndarray) -> None:
        """Keep the newest reading of each device and kind among the batch's new events."""
        prepared, self._prepared = self._prepared, None
        if new_mask.all():
            device, kind, ts, value = events.device_id, events.kind, events.ts, events.value
            if prepared is not None and prepared[0] is events:
                newest = prepared[1]
            else:
                newest = self._newest(device, kind, ts)
        else:
            idx = np.flatnonzero(new_mask)
            pick = idx.tolist()
            device = [events.device_id[i] for i in pick]
            kind = [events.kind[i] for i in pick]
            ts, value = events.ts[idx], events.value[idx]
            newest = self._newest(device, kind, ts)
        dirty = self._dirty
        for i, t, v in zip(newest.tolist(), ts[newest].tolist(), value[newest].tolist(),
                           strict=True):
            pair = (device[i], kind[i])
            old = dirty.get(pair)
            if old is None or t >= old[0]:
                dirty[pair] = (t, v)

    def _newest(self, device: list[str], kind: list[str], ts: np.ndarray) -> np.ndarray:
        """Position of the newest event of each device and kind.

        Devices and kinds become integer codes by one C-level dict lookup per event, and
        the newest per pair is found with numpy: 3x cheaper than a tuple key per event.
        """
        kinds = _codes(kind, self._kind_codes)
        key = _codes(device, self._device_codes) * len(self._kind_codes) + kinds
        order = np.lexsort((ts, key))  # by pair, then by time
        ordered = key[order]
        return order[np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))]

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
