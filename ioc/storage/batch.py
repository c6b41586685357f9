"""Columnar shapes that cross the storage boundary.

A decoded micro-batch travels as columns (one list, numpy array or TextColumn per field)
so that the writer can COPY it and the rule engine can mask it without ever
building a dict per event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import overload

import numpy as np

from ioc.coded import CodedList

EVENT_COLUMNS = ("device_id", "event_id", "kind", "ts", "value", "unit", "attrs")


class TextColumn(Sequence[str | None]):
    """Texts lying in one UTF-8 buffer: value i is ``size[i]`` bytes at ``start[i]`` (-1: None).

    The decoder hands over event ids and attrs so, as they lie in the received messages: the
    COPY encoder copies their bytes, and a str is made only for an item that is asked for.
    """

    __slots__ = ("buf", "size", "start")

    def __init__(self, buf: np.ndarray, start: np.ndarray, size: np.ndarray) -> None:
        self.buf = buf
        self.start = start
        self.size = size

    def __len__(self) -> int:
        return len(self.start)

    @overload
    def __getitem__(self, index: int) -> str | None: ...

    @overload
    def __getitem__(self, index: slice) -> TextColumn: ...

    def __getitem__(self, index: int | slice) -> str | TextColumn | None:
        if isinstance(index, slice):
            return TextColumn(self.buf, self.start[index], self.size[index])
        size = int(self.size[index])
        if size < 0:
            return None
        start = int(self.start[index])
        return str(self.buf[start:start + size], "utf-8")

    def __iter__(self) -> Iterator[str | None]:
        buf = self.buf
        for start, size in zip(self.start.tolist(), self.size.tolist(), strict=True):
            yield None if size < 0 else str(buf[start:start + size], "utf-8")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TextColumn({list(self)!r})"


def _concat_texts(columns: list[Sequence[str | None]],
                  joined: dict[tuple[int, ...], tuple[np.ndarray, list[int]]]) -> Sequence[str | None]:
    """One column of the parts' columns: a TextColumn if all are (their buffers joined once
    for all the columns that share them, as a scanned group's event ids and attrs do)."""
    if not all(type(c) is TextColumn for c in columns):
        return list(chain.from_iterable(columns))
    texts: list[TextColumn] = columns  # type: ignore[assignment]
    key = tuple(id(c.buf) for c in texts)
    if key not in joined:
        sizes = [len(c.buf) for c in texts]
        joined[key] = np.concatenate([c.buf for c in texts]), [0, *np.cumsum(sizes[:-1]).tolist()]
    buf, offsets = joined[key]
    return TextColumn(buf, np.concatenate([c.start + off for c, off in zip(texts, offsets, strict=True)]),
                      np.concatenate([c.size for c in texts]))


def _concat_lists(columns: list[list[str]]) -> list[str]:
    """One column of the parts' columns: coded if all are (see :mod:`ioc.coded`)."""
    if all(type(c) is CodedList for c in columns):
        return CodedList.concat(columns)  # type: ignore[arg-type]
    return list(chain.from_iterable(columns))


@dataclass(slots=True)
class EventBatch:
    """Decoded events, one entry per event in every column.

    ``ts`` is microseconds since the Unix epoch (UTC); ``attrs`` holds JSON
    object text (or None) exactly as it will be stored in the jsonb column. From the
    decoder's column-wise path, devices, kinds and units are CodedLists.
    """

    device_id: list[str] = field(default_factory=list)
    event_id: Sequence[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    unit: list[str | None] = field(default_factory=list)
    attrs: Sequence[str | None] = field(default_factory=list)

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
            device_id=_concat_lists([b.device_id for b in batches]),
            event_id=_concat_texts([b.event_id for b in batches], joined),  # type: ignore[arg-type]
            kind=_concat_lists([b.kind for b in batches]),
            ts=np.concatenate([b.ts for b in batches]),
            value=np.concatenate([b.value for b in batches]),
            unit=_concat_lists([b.unit for b in batches]),
            attrs=_concat_texts([b.attrs for b in batches], joined),
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
