"""The rows of PostgreSQL binary COPY data, written by compiled code from column buffers.

:func:`write_rows` lays out every row of an event batch: per row an int16 field count, then
per field an int32 length (-1 for NULL) and the bytes, all big-endian. Each text column comes
as one buffer with the offset and length of each value, so the writer (numba, compiled
without reference counting: it allocates nothing) only copies bytes. ``ioc/storage/
copy_binary.py`` prepares the buffers and the output array, and holds the reference beside
the dispatch: ``_encode_plain``, ``struct`` per field, which gives the same bytes and runs
instead with the accelerators off.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True, _nrt=False)
def _put(out, w, value, width):
    """``value`` big-endian in ``width`` bytes at out[w]; the index after it."""
    for k in range(width):
        out[w + k] = (value >> (8 * (width - 1 - k))) & 0xFF
    return w + width


@njit(cache=True, nogil=True, _nrt=False)
def _field(out, w, buf, start, size, jsonb):
    """A text field: its length (-1: NULL) and bytes, after jsonb's version byte if asked."""
    if size < 0:
        return _put(out, w, -1, 4)
    w = _put(out, w, size + jsonb, 4)
    if jsonb:
        out[w] = 1
        w += 1
    for k in range(size):
        out[w + k] = buf[start + k]
    return w + size


@njit(cache=True, nogil=True, _nrt=False)
def write_rows(out, w, ordinal, order, ts, value_bits, db, ds, dn, eb, es, en, kb, ks, kn, ub, us, un,
               ab, as_, an):
    """Every row, in ``order``, from index ``w`` of ``out``, then the trailer; the index
    after it.

    Per row: with ``ordinal`` an int4 field holding the row's index in the batch, then ts
    (int8, already µs since 2000-01-01), device_id, event_id, kind (text), value (float8, its
    bits), unit (text) and attrs (jsonb: version byte 1, then the text). Text column c is
    buffer ``cb`` with value i at ``cs[i]``, ``cn[i]`` bytes long (-1: NULL).
    """
    fields = 7 + ordinal
    for i in order:
        w = _put(out, w, fields, 2)
        if ordinal:
            w = _put(out, w, 4, 4)
            w = _put(out, w, i, 4)
        w = _put(out, w, 8, 4)
        w = _put(out, w, ts[i], 8)
        w = _field(out, w, db, ds[i], dn[i], 0)
        w = _field(out, w, eb, es[i], en[i], 0)
        w = _field(out, w, kb, ks[i], kn[i], 0)
        w = _put(out, w, 8, 4)
        w = _put(out, w, value_bits[i], 8)
        w = _field(out, w, ub, us[i], un[i], 0)
        w = _field(out, w, ab, as_[i], an[i], 1)
    return _put(out, w, -1, 2)
