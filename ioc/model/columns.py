"""The text columns of an EventBatch: a plain list of str, or one of two shapes that spare strs.

A column is a list of str wherever events are made one at a time (the message-by-message
decode, ``EventBatch.take``, the tests). The column-wise decode hands over two other shapes
instead, so that the passes after it need not make or read a str per event:

- :class:`TextColumn` -- texts that stay where they lie in the received messages (event ids,
  attrs): the COPY encoder copies their bytes, and a str is made only for an item asked for.
- :class:`CodedList` -- a column of few distinct values (devices, kinds, units) that carries
  each item's code for them. The decoder knows a batch's distinct values and each event's
  code; handing the codes on lets the passes after it (the COPY encoder, the rule engine, the
  latest values) work once per distinct value and then index by code, where a plain list
  costs them a lookup or an encode of every event's string again.

Both read as the plain list they equal. A pass that can use the shape asks ``isinstance``;
:data:`TextValues` and :data:`CodedValues` name what a column may be.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import TypeVar, overload

import numpy as np

# The type of a column's items: str, or str | None where a value may be missing.
T = TypeVar("T", str, str | None)


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

    @classmethod
    def concat(cls, parts: Sequence[TextColumn], joined: dict[tuple[int, ...], tuple[np.ndarray, list[int]]]
               ) -> TextColumn:
        """The parts one after the other, their buffers joined once for all the columns that
        share them (as a scanned group's event ids and attrs do): ``joined`` keeps the joins."""
        key = tuple(id(c.buf) for c in parts)
        if key not in joined:
            sizes = [len(c.buf) for c in parts]
            joined[key] = np.concatenate([c.buf for c in parts]), [0, *np.cumsum(sizes[:-1]).tolist()]
        buf, offsets = joined[key]
        return cls(buf, np.concatenate([c.start + off for c, off in zip(parts, offsets, strict=True)]),
                   np.concatenate([c.size for c in parts]))


class CodedList(list):  # type: ignore[type-arg]
    """A list equal to ``[values[c] for c in codes]``, never changed after it is made.

    ``values`` may repeat a value (the concatenation of several batches does), so code the
    values of an item before comparing two items by code.
    """

    __slots__ = ("codes", "values")

    def __init__(self, values: list[str | None], codes: np.ndarray,
                 items: Iterable[str | None] | None = None) -> None:
        """``items``, if given, must be the values at ``codes`` (it spares looking them up)."""
        super().__init__(map(values.__getitem__, codes.tolist()) if items is None else items)
        self.values = values
        self.codes = codes

    @classmethod
    def concat(cls, parts: Sequence[CodedList]) -> CodedList:
        values: list[str | None] = []
        codes = []
        for part in parts:
            codes.append(part.codes + len(values))
            values += part.values
        return cls(values, np.concatenate(codes), chain.from_iterable(parts))


# What a column of an EventBatch may be; ``CodedValues[str]`` is ``CodedList | list[str]``.
TextValues = TextColumn | list[T]
CodedValues = CodedList | list[T]


def concat_texts(columns: Sequence[TextValues[T]],
                 joined: dict[tuple[int, ...], tuple[np.ndarray, list[int]]]) -> TextValues[T]:
    """One column of the parts' columns: a TextColumn if all are (see :meth:`TextColumn.concat`)."""
    if all(isinstance(c, TextColumn) for c in columns):
        return TextColumn.concat(columns, joined)  # type: ignore[arg-type]
    return list(chain.from_iterable(columns))


def concat_coded(columns: Sequence[CodedValues[T]]) -> CodedValues[T]:
    """One column of the parts' columns: a CodedList if all are."""
    if all(isinstance(c, CodedList) for c in columns):
        return CodedList.concat(columns)  # type: ignore[arg-type]
    return list(chain.from_iterable(columns))
