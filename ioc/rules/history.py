"""Recent consumed events, kept so that a late event can replay its device from a checkpoint.

Per device the engine needs every event it consumed since the device's horizon (its
oldest kept checkpoint, at most ``1.5 × max_lateness`` behind its newest event). They are
kept as column chunks: one per batch, appended as they are (the batch already built the
arrays), and every ``FOLD_AT`` batches grouped into one chunk while older chunks drop events
below their device's horizon (see ``RecentEvents._fold``). Appending costs nothing per
event. A replay finds its devices' events by binary search in the folded chunks (each
joined and sorted by slot the first time a replay reads it) and by a scan of the fresh ones;
a stream that is never late never joins or sorts a chunk.
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


def _of_slots(by_slot: Events, slots: np.ndarray, since: np.ndarray) -> Events:
    """The events of ``slots`` with ts >= ``since`` (per slot) in ``by_slot`` (sorted by slot)."""
    lo = np.searchsorted(by_slot.slot, slots, "left")
    n = np.searchsorted(by_slot.slot, slots, "right") - lo
    total = int(n.sum())
    if not total:
        return empty_events()
    idx = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(total)
    found = by_slot.take(idx)
    return found.take(found.ts >= np.repeat(since, n))


def _live(events: Events, horizon: np.ndarray) -> Events:
    keep = events.ts >= horizon[events.slot]
    return events if keep.all() else events.take(keep)


class RecentEvents:
    """The consumed events of every device since its horizon."""

    def __init__(self) -> None:
        # Folded chunks, each the parts it was grouped from until a replay reads it (then
        # joined), and the same sorted by slot (made by the first replay that reads the chunk).
        self._folded: list[list[Events]] = []
        self._by_slot: list[Events | None] = []
        self._fresh: list[Events] = []
        self._size = 0
        self._slots = 0  # one more than the highest slot kept

    def __len__(self) -> int:
        """Events kept (some below their device's horizon until a fold drops them)."""
        return self._size

    def append(self, events: Events, horizon: np.ndarray) -> None:
        """Add a batch's consumed events; ``horizon`` (per slot) bounds what is kept."""
        if not len(events):
            return
        self._fresh.append(events)
        self._size += len(events)
        self._slots = max(self._slots, int(events.slot.max()) + 1)
        if len(self._fresh) >= FOLD_AT:
            self._fold(horizon)

    def _fold(self, horizon: np.ndarray) -> None:
        """Group the fresh chunks' live events (at or above their horizon) into one chunk, and
        drop the events that fell below their horizon from the older chunks.

        Events arrive roughly in time order, so an old chunk is mostly wholly below its
        devices' horizons (dropped without a copy) or wholly above (kept as it is); only a
        chunk that lost more than half its events is copied, and such small remainders are
        grouped, so that the chunks stay few and what is kept stays within twice what is live.
        Nothing is joined here: joining a chunk's parts waits for a replay that reads it.
        """
        merged = [p for p in (_live(c, horizon) for c in self._fresh) if len(p)]
        folded: list[list[Events]] = [merged] if merged else []
        by_slot: list[Events | None] = [None] if merged else []
        small = []
        for parts, sorted_c in zip(self._folded, self._by_slot, strict=True):
            lives = [c.ts >= horizon[c.slot] for c in parts]
            n = sum(int(np.count_nonzero(live)) for live in lives)
            if 2 * n > sum(map(len, parts)):
                folded.append(parts)
                by_slot.append(sorted_c)
            elif n:
                small += [c.take(live) for c, live in zip(parts, lives, strict=True) if live.any()]
        if small:
            folded.append(small)
            by_slot.append(None)
        self._folded, self._by_slot, self._fresh = folded, by_slot, []
        self._size = sum(len(c) for parts in folded for c in parts)

    def take(self, slots: np.ndarray, since: np.ndarray) -> Events:
        """The events of ``slots`` (sorted, unique) with ts >= ``since`` (one per slot)."""
        parts = []
        for i, chunk in enumerate(self._folded):
            if self._by_slot[i] is None:
                joined = Events.concat(chunk)
                self._folded[i] = [joined]
                self._by_slot[i] = joined.take(np.argsort(joined.slot, kind="stable"))
            parts.append(_of_slots(self._by_slot[i], slots, since))  # type: ignore[arg-type]
        if self._fresh:
            wanted = np.zeros(self._slots, dtype=np.bool_)
            lower = np.zeros(self._slots, dtype=np.int64)
            inside = slots[slots < self._slots]
            wanted[inside] = True
            lower[inside] = since[: len(inside)]
            for c in self._fresh:
                sel = wanted[c.slot]
                sel &= c.ts >= lower[c.slot]
                if sel.any():
                    parts.append(c.take(sel))
        parts = [p for p in parts if len(p)]
        return Events.concat(parts) if parts else empty_events()
