"""Binary COPY of an EventBatch, encoded a column at a time instead of a tuple per row.

asyncpg's ``copy_records_to_table`` needs a Python tuple per row and then encodes field by
field. Here each text column crosses into C once (msgspec's msgpack encoder writes the whole
list, UTF-8 as is, into one buffer) and the rest is whole-array numpy work:

* the offset and length of every value in that buffer come from a marker written after it;
* where each field of each row lands is a cumulative sum of the field sizes;
* values are copied there in 16-byte blocks through overlapping strided views (one fancy
  assignment per distinct block count), and the fixed-width fields are written afterwards,
  over whatever the blocks spilled.

The format: an 11-byte signature, int32 flags and header-extension length; per row an int16
field count, then per field an int32 length (-1 for NULL) and the bytes; an int16 -1 trailer.
All big-endian; timestamptz is int64 µs since 2000-01-01 UTC and jsonb a version byte (1)
followed by the JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from ioc.storage.batch import EventBatch
from ioc.storage.pool import PG_EPOCH_US

COLUMNS = ("ts", "device_id", "event_id", "kind", "value", "unit", "attrs")

_SIGNATURE = np.frombuffer(b"PGCOPY\n\xff\r\n\x00" + bytes(8), np.uint8)  # + flags, extension
_BLOCK = 16  # copy unit: a block starts up to 15 bytes early, never before its row's 18-byte head
_MSGPACK = msgspec.msgpack.Encoder()
# Written after each value. UTF-8 never holds 0xff, a msgpack str header never four of them in
# a row (short of a 4 GiB string) and neither ends nor starts a value with one: each run of
# seven holds exactly one 4-aligned all-0xff word, found with a single vectorised compare.
_MARKER = msgspec.Raw(b"\xff" * 7)
_NIL = 0xC0
_HEADER_LEN = np.zeros(256, np.int64)  # by its first byte, the length of a msgpack str header
_HEADER_LEN[0xA0 : _NIL + 1] = 1  # fixstr, nil
_HEADER_LEN[0xD9:0xDC] = 2, 3, 5  # str8, str16, str32

_MID = np.dtype([("vlen", ">i4"), ("value", ">f8"), ("ulen", ">i4")])  # between kind and unit
_ALEN = np.dtype([("len", ">i4"), ("version", "u1")])  # attrs' length and jsonb version byte


class _Text(NamedTuple):
    """A text column encoded in ``buf``: value i is ``size[i]`` bytes at ``start[i]`` (-1: NULL)."""

    buf: np.ndarray
    start: np.ndarray
    size: np.ndarray


def encode_events(events: EventBatch, *, ordinal: bool = False) -> memoryview:
    """The COPY ... (FORMAT binary) data of ``events`` for COLUMNS.

    With ``ordinal``, each row leads with an extra int4 field: its index in the batch. A
    memoryview rather than bytes, which asyncpg's ``copy_to_table`` would take for a path.
    """
    n = len(events)
    if not n:
        return memoryview(_SIGNATURE.tobytes() + b"\xff\xff")
    dev, eid, kind, unit, attrs = map(_text, (events.device_id, events.event_id, events.kind,
                                              events.unit, events.attrs))
    head = _head(ordinal)
    # A row: head (up to device_id's length), device_id, event_id's length, event_id, kind's
    # length, kind, _MID, unit, _ALEN (no version byte when NULL), attrs.
    wd, we, wk, wu = (np.maximum(t.size, 0) for t in (dev, eid, kind, unit))
    wa = attrs.size + 1
    size = wd + we + wk + wu + wa + (head.itemsize + 4 + 4 + _MID.itemsize + 4)
    start = np.empty(n, np.int64)
    start[0] = len(_SIGNATURE)
    np.cumsum(size[:-1], out=start[1:])
    start[1:] += len(_SIGNATURE)
    at_dev = start + head.itemsize
    at_elen = at_dev + wd
    at_klen = at_elen + 4 + we
    at_mid = at_klen + 4 + wk
    at_alen = at_mid + _MID.itemsize + wu

    out = np.empty(int(start[-1] + size[-1]) + 2, np.uint8)
    # Blocks spill backwards, onto earlier fields of the row: place the last text first.
    _place(out, at_alen + _ALEN.itemsize, attrs)
    _place(out, at_mid + _MID.itemsize, unit)
    _place(out, at_klen + 4, kind)
    _place(out, at_elen + 4, eid)
    _place(out, at_dev, dev)

    alen = np.empty(n, _ALEN)
    alen["len"] = np.where(attrs.size < 0, -1, wa)
    alen["version"] = 1  # when NULL, lands on the next row's head (or the trailer), written later
    _put(out, at_alen, alen)
    lengths = _view(out, np.dtype(">i4"))
    lengths[at_elen] = eid.size
    lengths[at_klen] = kind.size
    mid = np.empty(n, _MID)
    mid["vlen"] = 8
    mid["value"] = events.value
    mid["ulen"] = unit.size
    _put(out, at_mid, mid)
    heads = np.empty(n, head)
    heads["count"] = len(COLUMNS) + ordinal
    if ordinal:
        heads["olen"] = 4
        heads["ord"] = np.arange(n)
    heads["tlen"] = 8
    heads["ts"] = events.ts - PG_EPOCH_US
    heads["dlen"] = dev.size
    _put(out, start, heads)
    out[: len(_SIGNATURE)] = _SIGNATURE
    out[-2:] = 0xFF
    return memoryview(out)


def _head(ordinal: bool) -> np.dtype:
    """The fixed bytes a row starts with: field count, [ord,] ts and device_id's length."""
    fields = [("count", ">i2")]
    if ordinal:
        fields += [("olen", ">i4"), ("ord", ">i4")]
    return np.dtype([*fields, ("tlen", ">i4"), ("ts", ">i8"), ("dlen", ">i4")])


def _text(values: Sequence[str | None]) -> _Text:
    """Encode with msgpack (UTF-8 as is), a _MARKER after each value to find where it ends."""
    n = len(values)
    items: list[object] = [_MARKER] * (2 * n)
    items[0::2] = values
    buf = bytearray(_BLOCK)  # spare bytes for the blocks that start before the first value
    _MSGPACK.encode_into(items, buf, _BLOCK)
    a = np.frombuffer(buf, np.uint8)
    word = np.flatnonzero(a[: len(a) & ~3].view("<u4") == 0xFFFFFFFF) * 4
    if len(word) != n:
        raise TypeError("text columns hold str (or None)")
    back1 = a[word - 1] == 0xFF
    back2 = back1 & (a[word - 2] == 0xFF)
    end = word - back1 - back2 - (back2 & (a[word - 3] == 0xFF))  # where the marker starts
    begin = np.empty(n, np.int64)
    begin[0] = _BLOCK + (1 if 2 * n < 16 else 3 if 2 * n < 65536 else 5)  # after array header
    begin[1:] = end[:-1] + len(_MARKER)
    first = a[begin]
    header = _HEADER_LEN[first]
    if not header.all():
        raise TypeError("text columns hold str (or None)")
    start = begin + header
    return _Text(a, start, np.where(first == _NIL, -1, end - start))


def _place(out: np.ndarray, at: np.ndarray, text: _Text) -> None:
    """Copy each value to ``out[at:]`` in blocks that end where it ends (start up to 15 early)."""
    blocks = (text.size + (_BLOCK - 1)) // _BLOCK  # 0 for empty and NULL
    counts = np.bincount(blocks)
    for b in np.flatnonzero(counts[1:]) + 1:
        rows = slice(None) if counts[b] == len(blocks) else np.flatnonzero(blocks == b)
        width = np.dtype((np.void, int(b) * _BLOCK))
        back = text.size[rows] - width.itemsize
        _view(out, width)[at[rows] + back] = _view(text.buf, width)[text.start[rows] + back]


def _put(out: np.ndarray, at: np.ndarray, items: np.ndarray) -> None:
    """Write each of ``items`` at its offset in ``at``, as raw bytes (5x faster than by field)."""
    raw = np.dtype((np.void, items.itemsize))
    _view(out, raw)[at] = items.view(raw)


def _view(buf: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``buf`` as overlapping ``dtype`` items, one starting at each byte offset."""
    return np.ndarray((len(buf) - dtype.itemsize + 1,), dtype, buf, strides=(1,))
