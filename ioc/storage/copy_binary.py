"""Binary COPY of an EventBatch: the compiled row writer from column buffers, or its reference.

Every text column reaches the compiled writer (:func:`ioc.fast.copy_rows.write_rows`) as one
buffer with the offset and length of each value. A :class:`TextColumn` already is one: the
decoder's scan hands over event ids and attrs as they lie in the received messages, so their
bytes are copied once, into the COPY data, and never become Python strings. A list of str
becomes one by a single msgpack encode (UTF-8 as is) with a marker after each value that shows
where it ends. The writer then writes each row's fields.

With the accelerators off (``IOC_ACCELERATE=false``), :func:`_encode_plain` makes the same
bytes with ``struct``, one row and one field at a time: the reference, beside the dispatch
(a hypothesis property checks they agree).

Rows go in time order. The events' unique index leads with ts, and a batch gathered from
several Kafka partitions is several interleaved runs of time: inserted as they come, they
split the index's pages in the middle rather than at its right edge. Sorted, the server's
COPY costs 0.35 µs less per event and the index is 25% smaller (measured on 600k events).

The format: an 11-byte signature, int32 flags and header-extension length; per row an int16
field count, then per field an int32 length (-1 for NULL) and the bytes; an int16 -1 trailer.
All big-endian; timestamptz is int64 µs since 2000-01-01 UTC and jsonb a version byte (1)
followed by the JSON text.
"""

from __future__ import annotations

import struct

import msgspec
import numpy as np

from ioc import fast
from ioc.fast.copy_rows import write_rows
from ioc.model import CodedList, CodedValues, EventBatch, TextColumn, TextValues
from ioc.storage.pool import PG_EPOCH_US

COLUMNS = ("ts", "device_id", "event_id", "kind", "value", "unit", "attrs")

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # + flags, extension length
_TRAILER = b"\xff\xff"
_MSGPACK = msgspec.msgpack.Encoder()
# Written after each value. UTF-8 never holds 0xff, a msgpack str header never four of them in
# a row (short of a 4 GiB string) and neither ends nor starts a value with one: each run of
# seven holds exactly one 4-aligned all-0xff word, found with a single vectorised compare.
_MARKER = msgspec.Raw(b"\xff" * 7)
_NIL = 0xC0
_HEADER_LEN = np.zeros(256, np.int64)  # by its first byte, the length of a msgpack str header
_HEADER_LEN[0xA0 : _NIL + 1] = 1  # fixstr, nil
_HEADER_LEN[0xD9:0xDC] = 2, 3, 5  # str8, str16, str32
# Per row: field count, ts, value and five text lengths, plus the ordinal field if asked for.
_ROW_FIXED = 2 + (4 + 8) + (4 + 8) + 5 * 4
_ORDINAL = 4 + 4


def encode_events(events: EventBatch, *, ordinal: bool = False) -> memoryview:
    """The COPY ... (FORMAT binary) data of ``events`` for COLUMNS.

    With ``ordinal``, each row leads with an extra int4 field: its index in the batch (rows
    are in time order, ties in batch order). A memoryview rather than bytes, which asyncpg's
    ``copy_to_table`` would take for a path. Written by the compiled row writer, or with the
    accelerators off by the reference :func:`_encode_plain`: the same bytes.
    """
    if not fast.enabled():
        return memoryview(_encode_plain(events, ordinal=ordinal))
    n = len(events)
    if not n:
        return memoryview(_SIGNATURE + _TRAILER)
    dev, eid, kind, unit, attrs = map(_text, (events.device_id, events.event_id, events.kind,
                                              events.unit, events.attrs))
    size = (len(_SIGNATURE) + len(_TRAILER) + n * (_ROW_FIXED + ordinal * _ORDINAL)
            + sum(int(np.maximum(t.size, 0).sum()) for t in (dev, eid, kind, unit, attrs))
            + int((attrs.size >= 0).sum()))  # jsonb's version byte
    out = np.empty(size, np.uint8)
    out[: len(_SIGNATURE)] = np.frombuffer(_SIGNATURE, np.uint8)
    order = np.argsort(events.ts, kind="stable")  # cheap: a batch is a few sorted runs
    written = write_rows(out, len(_SIGNATURE), ordinal, order, events.ts - PG_EPOCH_US,
                         np.ascontiguousarray(events.value, np.float64).view(np.int64),
                         dev.buf, dev.start, dev.size, eid.buf, eid.start, eid.size,
                         kind.buf, kind.start, kind.size, unit.buf, unit.start, unit.size,
                         attrs.buf, attrs.start, attrs.size)
    assert written == size
    return memoryview(out)


def _text(values: TextValues[str | None] | CodedValues[str | None]) -> TextColumn:
    """The column as one buffer: as it is if a TextColumn, else msgpack-encoded (UTF-8 as is)
    with a _MARKER after each value to find where it ends; a CodedList by its distinct
    values."""
    if isinstance(values, TextColumn):
        return values
    if isinstance(values, CodedList):
        distinct = _text(values.values)
        return TextColumn(distinct.buf, distinct.start[values.codes], distinct.size[values.codes])
    n = len(values)
    items: list[object] = [_MARKER] * (2 * n)
    items[0::2] = values
    a = np.frombuffer(_MSGPACK.encode(items), np.uint8)
    word = np.flatnonzero(a[: len(a) & ~3].view("<u4") == 0xFFFFFFFF) * 4
    if len(word) != n:
        raise TypeError("text columns hold str (or None)")
    back1 = a[word - 1] == 0xFF
    back2 = back1 & (a[word - 2] == 0xFF)
    end = word - back1 - back2 - (back2 & (a[word - 3] == 0xFF))  # where the marker starts
    begin = np.empty(n, np.int64)
    begin[0] = 1 if 2 * n < 16 else 3 if 2 * n < 65536 else 5  # after the array header
    begin[1:] = end[:-1] + len(_MARKER)
    first = a[begin]
    header = _HEADER_LEN[first]
    if not header.all():
        raise TypeError("text columns hold str (or None)")
    start = begin + header
    return TextColumn(a, start, np.where(first == _NIL, -1, end - start))


def _encode_plain(events: EventBatch, *, ordinal: bool = False) -> bytes:
    """The reference of the compiled path: the same bytes spelled out with ``struct``, one row
    and one field at a time, rows sorted by ts in Python (stable: ties in batch order)."""
    ts = (np.asarray(events.ts, np.int64) - PG_EPOCH_US).tolist()
    value_bits = np.ascontiguousarray(events.value, np.float64).view(np.int64).tolist()
    dev, eid, kind, unit, attrs = map(_plain_texts, (events.device_id, events.event_id,
                                                     events.kind, events.unit, events.attrs))
    count = struct.pack(">h", 7 + ordinal)
    out = [_SIGNATURE]
    for i in sorted(range(len(events)), key=ts.__getitem__):
        out.append(count)
        if ordinal:
            out.append(struct.pack(">ii", 4, i))
        out.append(struct.pack(">iq", 8, ts[i]))
        out += (_plain_field(dev[i]), _plain_field(eid[i]), _plain_field(kind[i]))
        out.append(struct.pack(">iq", 8, value_bits[i]))
        out.append(_plain_field(unit[i]))
        out.append(_plain_field(None if attrs[i] is None else b"\x01" + attrs[i]))  # jsonb
    out.append(_TRAILER)
    return b"".join(out)


def _plain_texts(values: TextValues[str | None] | CodedValues[str | None]) -> list[bytes | None]:
    """Each value of a text column as UTF-8 bytes (None for NULL)."""
    if isinstance(values, TextColumn):
        buf = values.buf
        return [None if size < 0 else bytes(buf[start:start + size])
                for start, size in zip(values.start.tolist(), values.size.tolist(), strict=True)]
    if isinstance(values, CodedList):
        distinct = _plain_texts(values.values)
        return [distinct[code] for code in values.codes.tolist()]
    texts: list[bytes | None] = []
    for value in values:
        if value is not None and not isinstance(value, str):
            raise TypeError("text columns hold str (or None)")
        texts.append(None if value is None else value.encode())
    return texts


def _plain_field(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data
