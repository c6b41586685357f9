"""Recent consumed events, kept so that a late event can replay its device from a checkpoint.

Per device the engine needs every event it consumed since the device's horizon (its
oldest kept checkpoint, at most ``1.5 × max_lateness`` behind its newest event). They are
kept as column chunks in arrival order: one per batch, appended as they are (the batch
already built the arrays), and folded into one chunk — dropping events below their
device's horizon — once there are ``FOLD_AT`` of them. Appending costs nothing per event;
folding copies the kept events once every ``FOLD_AT`` batches. A replay scans every chunk
for its devices' events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


FOLD_AT = 64


class RecentEvents:
    """The consumed events of every device since its horizon."""

    def __init__(self) -> None:
        self._chunks: list[Events] = []
        self._size = 0

    def __len__(self) -> int:
        """Events kept (some below their device's horizon until the next fold)."""
        return self._size

    def append(self, events: Events, horizon: np.ndarray) -> None:
        """Add a batch's consumed events; ``horizon`` (per slot) bounds what is kept."""
        if not len(events):
            return
        self._chunks.append(events)
        self._size += len(events)
        if len(self._chunks) >= FOLD_AT:
            self._chunks = [self._kept(Events.concat(self._chunks), horizon)]
            self._size = len(self._chunks[0])

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
