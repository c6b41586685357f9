"""Recent consumed events, kept so that a late event can replay its device from a checkpoint.

Per device the engine needs every event it consumed since the device's horizon (its
oldest kept checkpoint, at most ``1.5 × max_lateness`` behind its newest event). They are
kept as column chunks in arrival order; chunks are merged like a binary counter (a chunk
is merged into the one before it while that one is at most twice its size), so there are
O(log n) chunks and each event is copied O(log n) times, and every merge drops events
below their device's horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ioc.rules.segments import NONE


@dataclass(slots=True)
class Events:
    """Events as columns: device slot, ts (µs), global kind code, value."""

    slot: np.ndarray
    ts: np.ndarray
    kind: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask: np.ndarray) -> Events:
        return Events(self.slot[mask], self.ts[mask], self.kind[mask], self.value[mask])

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if len(parts) == 1:
            return parts[0]
        return Events(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("slot", "ts", "kind", "value")))


def empty_events() -> Events:
    return Events(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64),
                  np.empty(0, np.float64))


class RecentEvents:
    """The consumed events of every device since its horizon."""

    def __init__(self) -> None:
        self._chunks: list[Events] = []
        self._size = 0
        self._since_prune = 0

    def __len__(self) -> int:
        return self._size

    def append(self, events: Events, horizon: np.ndarray) -> None:
        """Add a batch's consumed events; ``horizon`` (per slot) bounds what is kept."""
        if not len(events):
            return
        self._chunks.append(events)
        self._size += len(events)
        self._since_prune += len(events)
        if self._since_prune > self._size // 2:
            self._chunks = [self._kept(Events.concat(self._chunks), horizon)]
            self._since_prune = 0
        while len(self._chunks) > 1 and len(self._chunks[-2]) <= 2 * len(self._chunks[-1]):
            last = self._chunks.pop()
            self._chunks[-1] = self._kept(Events.concat([self._chunks[-1], last]), horizon)
        self._size = sum(len(c) for c in self._chunks)

    @staticmethod
    def _kept(events: Events, horizon: np.ndarray) -> Events:
        keep = events.ts >= horizon[events.slot]
        return events if keep.all() else events.take(keep)

    def take(self, wanted: np.ndarray, since: np.ndarray) -> Events:
        """The events of slots where ``wanted`` (bool per slot) with ts >= ``since[slot]``."""
        parts = []
        for c in self._chunks:
            sel = wanted[c.slot]
            sel &= c.ts >= since[c.slot]
            if sel.any():
                parts.append(c.take(sel))
        return Events.concat(parts) if parts else empty_events()


def horizon_default(capacity: int) -> np.ndarray:
    """No horizon yet: every event of a device counts until it has a checkpoint."""
    return np.full(capacity, NONE, dtype=np.int64)
