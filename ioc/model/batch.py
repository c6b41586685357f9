"""What decoding makes of messages: an EventBatch of good events and a DeadLetter per bad input.

A decoded micro-batch travels as columns (one list, numpy array or TextColumn per field)
so that the writer can COPY it and the rule engine can mask it without ever
building a dict per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ioc.model.columns import CodedValues, TextValues, concat_coded, concat_texts

EVENT_COLUMNS = ("device_id", "event_id", "kind", "ts", "value", "unit", "attrs")


@dataclass(slots=True)
class EventBatch:
    """Decoded events, one entry per event in every column.

    ``ts`` is microseconds since the Unix epoch (UTC); ``attrs`` holds JSON
    object text (or None) exactly as it will be stored in the jsonb column. From the
    decoder's column-wise path, devices, kinds and units are CodedLists and event ids and
    attrs TextColumns (see :mod:`ioc.model.columns`).
    """

    device_id: CodedValues[str] = field(default_factory=list)
    event_id: TextValues[str] = field(default_factory=list)
    kind: CodedValues[str] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    unit: CodedValues[str | None] = field(default_factory=list)
    attrs: TextValues[str | None] = field(default_factory=list)

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
        if not batches:
            return cls()
        joined: dict[tuple[int, ...], tuple[np.ndarray, list[int]]] = {}
        return cls(
            device_id=concat_coded([b.device_id for b in batches]),
            event_id=concat_texts([b.event_id for b in batches], joined),
            kind=concat_coded([b.kind for b in batches]),
            ts=np.concatenate([b.ts for b in batches]),
            value=np.concatenate([b.value for b in batches]),
            unit=concat_coded([b.unit for b in batches]),
            attrs=concat_texts([b.attrs for b in batches], joined),
        )


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
