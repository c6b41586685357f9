"""Columnar shapes that cross the storage boundary.

A decoded micro-batch travels as columns (one list or numpy array per field)
so that the writer can COPY it and the rule engine can mask it without ever
building a dict per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENT_COLUMNS = ("device_id", "event_id", "kind", "ts", "value", "unit", "attrs")


@dataclass(slots=True)
class EventBatch:
    """Decoded events, one entry per event in every column.

    ``ts`` is microseconds since the Unix epoch (UTC); ``attrs`` holds JSON
    object text (or None) exactly as it will be stored in the jsonb column.
    """

    device_id: list[str] = field(default_factory=list)
    event_id: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    unit: list[str | None] = field(default_factory=list)
    attrs: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.device_id)

    def take(self, index: np.ndarray) -> EventBatch:
        """A new batch with the events at ``index`` (an int array or bool mask)."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else index
        pick = idx.tolist()
        return EventBatch(
            device_id=[self.device_id[i] for i in pick],
            event_id=[self.event_id[i] for i in pick],
            kind=[self.kind[i] for i in pick],
            ts=self.ts[idx],
            value=self.value[idx],
            unit=[self.unit[i] for i in pick],
            attrs=[self.attrs[i] for i in pick],
        )

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        out = cls()
        for b in batches:
            out.device_id.extend(b.device_id)
            out.event_id.extend(b.event_id)
            out.kind.extend(b.kind)
            out.unit.extend(b.unit)
            out.attrs.extend(b.attrs)
        if batches:
            out.ts = np.concatenate([b.ts for b in batches])
            out.value = np.concatenate([b.value for b in batches])
        return out


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """Input that could not become an event, kept with its raw bytes and why."""

    source: str
    reason: str
    raw: bytes
    detail: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
