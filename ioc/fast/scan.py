"""Compiled scan of single-event JSON messages into columns: the decoder's column-wise path.

Nearly all traffic is one event per message in the single-reading form. Decoding each into
Python objects (a struct, six strings, a float) and checking them cost more CPU than anything
else in the service, so a group of messages is scanned here instead, by numba-compiled code
over the messages joined into one buffer: every message is checked against the JSON grammar
(UTF-8 included) and the event shape, ts and value are parsed to numbers, and the strings are
located by offsets. Only what the caller keeps becomes a Python object.

The scan accepts only what it can judge exactly and answers "no" to any doubt: an escape in
an id, kind, unit or key, a number outside the exact fast path of decimal conversion, a ts
outside the strict RFC 3339 layout, a repeated field, ``values``/``units``, in attrs a
``\\u0000`` or surrogate escape, an exponent, or more digits than PostgreSQL's numeric holds.
The caller then decodes the group message by message -- the reference, which gives the
reasons and is all that runs with the accelerators off (``IOC_ACCELERATE=false``). Within
what the scan accepts, the columns equal the reference's (hypothesis properties check it).

Two helpers serve the message-by-message path, each beside a plain reference in
``ioc/ingest/decode.py`` that runs instead with the accelerators off: :func:`screen`, one pass
over a group's messages marking those msgspec's typed decode may be trusted with (see its
comment block; its reference ``_plain_screen`` is more cautious wherever msgspec is lenient),
and :func:`nesting`, how deep a text's brackets nest (``_plain_nesting``, exact).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Fields located by offset: columns 2f (start) and 2f+1 (length, -1 when absent or null).
DEVICE, EVENT_ID, KIND, UNIT, ATTRS = range(5)
MAX_DISTINCT = 64  # kinds (and units) in one group; more sends the group to the reference
# PostgreSQL's numeric: at most 131072 digits before the decimal point, 16383 after.
PG_NUMERIC_MAX_INT_DIGITS = 131072
PG_NUMERIC_MAX_SCALE = 16383

_KEYS = (b"event_id", b"device_id", b"kind", b"ts", b"value", b"unit", b"attrs")
_K_EVENT_ID, _K_DEVICE, _K_KIND, _K_TS, _K_VALUE, _K_UNIT, _K_ATTRS = range(7)
_K_REFUSED = 7  # values, units: the multi-reading form
_KEY_BYTES = np.frombuffer(b"".join((*_KEYS, b"values", b"units")), np.uint8)
_KEY_LEN = np.array([len(k) for k in (*_KEYS, b"values", b"units")], np.int64)
_KEY_ID = np.array([*range(7), _K_REFUSED, _K_REFUSED], np.int64)
_REQUIRED = (1 << _K_DEVICE) | (1 << _K_KIND) | (1 << _K_TS) | (1 << _K_VALUE)

_POW10 = np.array([10.0**k for k in range(23)])
_MAX_EXACT = 1 << 53
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_MIN_MS = -62_135_596_800_000  # 0001-01-01, as decode's epoch-ms bounds
_MAX_MS = 253_402_300_799_999
_PLAIN = np.ones(256, np.bool_)  # bytes a string holds as they are: ASCII but " \\ and controls
_PLAIN[:0x20] = _PLAIN[0x22] = _PLAIN[0x5C] = _PLAIN[0x80:] = False
_ESCAPED = np.zeros(256, np.bool_)  # what may follow a backslash, \u aside: " \ / b f n r t
_ESCAPED[list(b'"\\/bfnrt')] = True
_HEX = np.full(256, -1, np.int64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


@njit(cache=True, nogil=True, _nrt=False)
def _ws(buf, p, end):
    while p < end:
        c = buf[p]
        if c != 0x20 and c != 0x0A and c != 0x0D and c != 0x09:
            break
        p += 1
    return p


@njit(cache=True, nogil=True, _nrt=False)
def _utf8_tail(buf, p, end):
    """Index after the multi-byte UTF-8 sequence at ``p``, or -1 if it is not valid UTF-8."""
    c = buf[p]
    if c < 0xC2 or c > 0xF4:
        return -1
    n = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
    if p + n >= end:
        return -1
    c1 = buf[p + 1]
    if (c1 & 0xC0) != 0x80:
        return -1
    if (c == 0xE0 and c1 < 0xA0) or (c == 0xF0 and c1 < 0x90):  # overlong
        return -1
    if (c == 0xED and c1 >= 0xA0) or (c == 0xF4 and c1 >= 0x90):  # surrogate, past U+10FFFF
        return -1
    for k in range(2, n + 1):
        if (buf[p + k] & 0xC0) != 0x80:
            return -1
    return p + n + 1


@njit(cache=True, nogil=True, _nrt=False)
def _string(buf, p, end, escapes):
    """Index after the string whose opening quote is at ``p``, or -1.

    With ``escapes`` the JSON escapes are allowed (the text is stored as sent, as in attrs),
    except ``\\u0000`` (jsonb refuses it) and surrogate escapes; without, any backslash is a no.
    """
    p += 1
    while p < end:
        c = buf[p]
        if _PLAIN[c]:
            p += 1
            continue
        if c == 0x22:
            return p + 1
        if c < 0x20:
            return -1
        if c == 0x5C:
            if not escapes or p + 1 >= end:
                return -1
            e = buf[p + 1]
            if e == 0x75:  # \uXXXX
                if p + 6 > end:
                    return -1
                code = 0
                for k in range(2, 6):
                    h = _HEX[buf[p + k]]
                    if h < 0:
                        return -1
                    code = code * 16 + h
                if code == 0 or 0xD800 <= code <= 0xDFFF:
                    return -1
                p += 6
            elif _ESCAPED[e]:
                p += 2
            else:
                return -1
        else:
            p = _utf8_tail(buf, p, end)
            if p < 0:
                return -1
    return -1


@njit(cache=True, nogil=True, _nrt=False)
def _number_end(buf, p, end):
    """Index after a JSON number without exponent at ``p`` (attrs' numbers), or -1.

    Also -1 past PostgreSQL's numeric range (digits before and after the point), which the
    attrs text must stay within: the reference decoder then says why.
    """
    if p < end and buf[p] == 0x2D:
        p += 1
    if p >= end or not 0x30 <= buf[p] <= 0x39:
        return -1
    if buf[p] == 0x30:
        p += 1
    else:
        start = p
        while p < end and 0x30 <= buf[p] <= 0x39:
            p += 1
        if p - start > PG_NUMERIC_MAX_INT_DIGITS:
            return -1
    if p < end and buf[p] == 0x2E:
        p += 1
        if p >= end or not 0x30 <= buf[p] <= 0x39:
            return -1
        start = p
        while p < end and 0x30 <= buf[p] <= 0x39:
            p += 1
        if p - start > PG_NUMERIC_MAX_SCALE:
            return -1
    if p < end and (buf[p] == 0x65 or buf[p] == 0x45 or 0x30 <= buf[p] <= 0x39):
        return -1
    return p


@njit(cache=True, nogil=True, _nrt=False)
def _literal(buf, p, end, word):
    if p + len(word) > end:
        return -1
    for k in range(len(word)):
        if buf[p + k] != word[k]:
            return -1
    return p + len(word)


_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)


@njit(cache=True, nogil=True, _nrt=False)
def _scalar_end(buf, p, end):
    c = buf[p]
    if c == 0x22:
        return _string(buf, p, end, True)
    if c == 0x74:
        return _literal(buf, p, end, _TRUE)
    if c == 0x66:
        return _literal(buf, p, end, _FALSE)
    if c == 0x6E:
        return _literal(buf, p, end, _NULL)
    return _number_end(buf, p, end)


@njit(cache=True, nogil=True, _nrt=False)
def _value_end(buf, p, end, max_depth, stack):
    """Index after the JSON value at ``p`` (containers at most ``max_depth`` deep), or -1."""
    depth = 0
    while True:
        p = _ws(buf, p, end)
        if p >= end:
            return -1
        c = buf[p]
        if c == 0x7B or c == 0x5B:
            depth += 1
            if depth > max_depth:
                return -1
            stack[depth] = c
            p = _ws(buf, p + 1, end)
            if p >= end:
                return -1
            if buf[p] == c + 2:  # } or ]: empty
                p += 1
                depth -= 1
            elif c == 0x7B:
                if buf[p] != 0x22:
                    return -1
                p = _string(buf, p, end, True)
                if p < 0:
                    return -1
                p = _ws(buf, p, end)
                if p >= end or buf[p] != 0x3A:
                    return -1
                p += 1
                continue
            else:
                continue
        else:
            p = _scalar_end(buf, p, end)
            if p < 0:
                return -1
        # After a value: close containers or move to the next member.
        while depth > 0:
            p = _ws(buf, p, end)
            if p >= end:
                return -1
            c = buf[p]
            if c == 0x2C:
                p = _ws(buf, p + 1, end)
                if stack[depth] == 0x7B:
                    if p >= end or buf[p] != 0x22:
                        return -1
                    p = _string(buf, p, end, True)
                    if p < 0:
                        return -1
                    p = _ws(buf, p, end)
                    if p >= end or buf[p] != 0x3A:
                        return -1
                    p += 1
                break
            if c == stack[depth] + 2:
                p += 1
                depth -= 1
            else:
                return -1
        if depth == 0:
            return p


@njit(cache=True, nogil=True, _nrt=False)
def _key_id(buf, a, b):
    """Which known field the key bytes buf[a:b] name (-1: another key)."""
    n = b - a
    off = 0
    for k in range(len(_KEY_LEN)):
        if _KEY_LEN[k] == n:
            same = True
            for j in range(n):
                if buf[a + j] != _KEY_BYTES[off + j]:
                    same = False
                    break
            if same:
                return _KEY_ID[k]
        off += _KEY_LEN[k]
    return -1


@njit(cache=True, nogil=True, _nrt=False)
def _digits(buf, p, n):
    v = 0
    for k in range(n):
        d = buf[p + k] - 0x30
        if d < 0 or d > 9:
            return -1
        v = v * 10 + d
    return v


@njit(cache=True, nogil=True, _nrt=False)
def _rfc3339_us(buf, a, b):
    """µs since the epoch of ``YYYY-MM-DD[Tt ]HH:MM:SS[.f{1,6}](Z|z|±HH:MM)`` in buf[a:b]."""
    n = b - a
    if n < 20:
        return False, 0
    if buf[a + 4] != 0x2D or buf[a + 7] != 0x2D or buf[a + 13] != 0x3A or buf[a + 16] != 0x3A:
        return False, 0
    t = buf[a + 10]
    if t != 0x54 and t != 0x74 and t != 0x20:
        return False, 0
    year, month, day = _digits(buf, a, 4), _digits(buf, a + 5, 2), _digits(buf, a + 8, 2)
    hour, minute, second = _digits(buf, a + 11, 2), _digits(buf, a + 14, 2), _digits(buf, a + 17, 2)
    p = a + 19
    fraction = 0
    if buf[p] == 0x2E:
        q = p + 1
        while q < b and 0x30 <= buf[q] <= 0x39:
            q += 1
        width = q - p - 1
        if width < 1 or width > 6:
            return False, 0
        fraction = _digits(buf, p + 1, width)
        for _ in range(6 - width):
            fraction *= 10
        p = q
    offset = 0
    z = buf[p]
    if (z == 0x5A or z == 0x7A) and p + 1 == b:
        offset = 0
    elif (z == 0x2B or z == 0x2D) and p + 6 == b and buf[p + 3] == 0x3A:
        oh, om = _digits(buf, p + 1, 2), _digits(buf, p + 4, 2)
        if oh < 0 or om < 0 or oh > 23 or om > 59:
            return False, 0
        offset = (oh * 3600 + om * 60) * (1 if z == 0x2B else -1)
    else:
        return False, 0
    if (year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23
            or minute < 0 or minute > 59 or second < 0 or second > 59):
        return False, 0
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _DAYS_IN_MONTH[month] + (1 if leap and month == 2 else 0):
        return False, 0
    # Days from the civil date (H. Hinnant's algorithm; years start in March).
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return True, (days * 86400 + hour * 3600 + minute * 60 + second - offset) * 1_000_000 + fraction


@njit(cache=True, nogil=True, _nrt=False)
def _float(buf, p, end):
    """(index after, value) of a JSON number whose decimal value converts exactly, else (-1, 0).

    Exact: an integer mantissa below 2**53 times or divided by a power of ten up to 10**22 is
    one correctly rounded IEEE operation, so the result equals any correct parser's.
    """
    neg = p < end and buf[p] == 0x2D
    if neg:
        p += 1
    if p >= end or not 0x30 <= buf[p] <= 0x39:
        return -1, 0.0
    mant = 0
    exp10 = 0
    if buf[p] == 0x30:
        p += 1
    else:
        while p < end and 0x30 <= buf[p] <= 0x39:
            mant = mant * 10 + (buf[p] - 0x30)
            if mant >= _MAX_EXACT:
                return -1, 0.0
            p += 1
    if p < end and buf[p] == 0x2E:
        p += 1
        if p >= end or not 0x30 <= buf[p] <= 0x39:
            return -1, 0.0
        while p < end and 0x30 <= buf[p] <= 0x39:
            mant = mant * 10 + (buf[p] - 0x30)
            if mant >= _MAX_EXACT:
                return -1, 0.0
            exp10 -= 1
            p += 1
    if p < end and (buf[p] == 0x65 or buf[p] == 0x45):
        p += 1
        sign = 1
        if p < end and (buf[p] == 0x2B or buf[p] == 0x2D):
            sign = -1 if buf[p] == 0x2D else 1
            p += 1
        if p >= end or not 0x30 <= buf[p] <= 0x39:
            return -1, 0.0
        e = 0
        while p < end and 0x30 <= buf[p] <= 0x39:
            e = e * 10 + (buf[p] - 0x30)
            if e > 400:
                return -1, 0.0
            p += 1
        exp10 += sign * e
    if exp10 < -22 or exp10 > 22:
        return -1, 0.0
    v = float(mant)
    v = v / _POW10[-exp10] if exp10 < 0 else v * _POW10[exp10]
    if neg:
        v = -v
    return p, v + 0.0  # -0 is stored as +0.0, as on every path


@njit(cache=True, nogil=True, _nrt=False)
def _epoch_ms(buf, p, end):
    """(index after, ms) of a JSON integer within the datetime range, else (-1, 0)."""
    neg = p < end and buf[p] == 0x2D
    if neg:
        p += 1
    start = p
    ms = 0
    while p < end and 0x30 <= buf[p] <= 0x39:
        ms = ms * 10 + (buf[p] - 0x30)
        p += 1
        if p - start > 16:
            return -1, 0
    if p == start or (buf[start] == 0x30 and p - start > 1):
        return -1, 0
    if p < end and (buf[p] == 0x2E or buf[p] == 0x65 or buf[p] == 0x45):
        return -1, 0
    ms = -ms if neg else ms
    if ms < _MIN_MS or ms > _MAX_MS:
        return -1, 0
    return p, ms


@njit(cache=True, nogil=True, _nrt=False)
def _same(buf, a, b, n):
    for k in range(n):  # noqa: SIM110 (compiled: no generators)
        if buf[a + k] != buf[b + k]:
            return False
    return True


@njit(cache=True, nogil=True, _nrt=False)
def _intern(buf, spans, col, i, reps, count):
    """Code of event i's text in column ``col`` among the group's distinct ones (-1: null,
    -2: too many distinct), adding it to ``reps`` (first event of each) if new."""
    a, n = spans[i, 2 * col], spans[i, 2 * col + 1]
    if n < 0:
        return -1
    for j in range(count[col]):
        r = reps[col, j]
        if spans[r, 2 * col + 1] == n and _same(buf, spans[r, 2 * col], a, n):
            return j
    j = count[col]
    if j == MAX_DISTINCT:
        return -2
    reps[col, j] = i
    count[col] = j + 1
    return j


@njit(cache=True, nogil=True, _nrt=False)
def scan(buf, starts, ends, expected, exp_start, exp_len, max_id, max_attrs, max_depth,
         spans, ts, value, codes, reps, count, stack):
    """Scan every message buf[starts[i]:ends[i]]; -1 if all are one event each, else the index
    of the first that is not (or does not fit the scan).

    Fills ``spans`` (n x 10), ``ts`` (µs), ``value``, ``codes`` (n x 2: kind, unit code into
    ``reps``: first event of each distinct text, ``count`` of them). A device must equal
    expected[exp_start[i]:+exp_len[i]] when that length is not -1; an event_id must be 1 to
    ``max_id`` printable ASCII characters.
    """
    for i in range(len(starts)):
        end = ends[i]
        for f in range(10):
            spans[i, f] = -1
        p = _ws(buf, starts[i], end)
        if p >= end or buf[p] != 0x7B:
            return i
        p = _ws(buf, p + 1, end)
        seen = 0
        while True:
            if p >= end or buf[p] != 0x22:
                return i
            q = _string(buf, p, end, False)
            if q < 0:
                return i
            key = _key_id(buf, p + 1, q - 1)
            p = _ws(buf, q, end)
            if p >= end or buf[p] != 0x3A:
                return i
            p = _ws(buf, p + 1, end)
            if p >= end:
                return i
            if key >= 0:
                if key == _K_REFUSED or seen & (1 << key):
                    return i
                seen |= 1 << key
            c = buf[p]
            if key in (_K_DEVICE, _K_KIND, _K_EVENT_ID, _K_UNIT):
                col = (DEVICE if key == _K_DEVICE else KIND if key == _K_KIND
                       else EVENT_ID if key == _K_EVENT_ID else UNIT)
                if c == 0x22:
                    q = _string(buf, p, end, False)
                    if q < 0:
                        return i
                    spans[i, 2 * col] = p + 1
                    spans[i, 2 * col + 1] = q - p - 2
                elif key in (_K_EVENT_ID, _K_UNIT) and c == 0x6E:
                    q = _literal(buf, p, end, _NULL)
                    if q < 0:
                        return i
                else:
                    return i
            elif key == _K_TS:
                if c == 0x22:
                    q = _string(buf, p, end, False)
                    if q < 0:
                        return i
                    ok, us = _rfc3339_us(buf, p + 1, q - 1)
                    if not ok:
                        return i
                    ts[i] = us
                else:
                    q, ms = _epoch_ms(buf, p, end)
                    if q < 0:
                        return i
                    ts[i] = ms * 1000
            elif key == _K_VALUE:
                q, v = _float(buf, p, end)
                if q < 0:
                    return i
                value[i] = v
            elif key == _K_ATTRS:
                if c == 0x7B:
                    q = _value_end(buf, p, end, max_depth, stack)
                    if q < 0 or q - p > max_attrs:
                        return i
                    spans[i, 2 * ATTRS] = p
                    spans[i, 2 * ATTRS + 1] = q - p
                elif c == 0x6E:
                    q = _literal(buf, p, end, _NULL)
                    if q < 0:
                        return i
                else:
                    return i
            else:
                q = _value_end(buf, p, end, max_depth, stack)
                if q < 0:
                    return i
            p = _ws(buf, q, end)
            if p >= end:
                return i
            if buf[p] == 0x7D:
                p += 1
                break
            if buf[p] != 0x2C:
                return i
            p = _ws(buf, p + 1, end)
        if _ws(buf, p, end) != end or (seen & _REQUIRED) != _REQUIRED:
            return i
        n = spans[i, 2 * DEVICE + 1]
        if exp_len[i] >= 0:
            if exp_len[i] != n:
                return i
            a, e = spans[i, 2 * DEVICE], exp_start[i]
            for k in range(n):
                if buf[a + k] != expected[e + k]:
                    return i
        n = spans[i, 2 * EVENT_ID + 1]
        if n == 0 or n > max_id:
            return i
        a = spans[i, 2 * EVENT_ID]
        for k in range(max(n, 0)):
            if not 0x20 <= buf[a + k] <= 0x7E:
                return i
        for col in range(2):
            code = _intern(buf, spans, KIND if col == 0 else UNIT, i, reps, count)
            if code == -2:
                return i
            codes[i, col] = code
    return -1


# ---- the screen of the message-by-message path ------------------------------------------------
# msgspec's typed decode is exact for strict JSON but lenient beyond it (it does not check the
# UTF-8 of what it skips, takes a ts offset without a colon, nests as deep as the Python stack
# allows), and the numbers it parses are doubles. screen() marks the messages it can be trusted
# with: the rest go to the decoder's exact slow path, which gives the reasons.

_CLEAN_MAX_DIGITS = 40
_CLEAN_MAX_EXPONENT = 250


@njit(cache=True, nogil=True, _nrt=False)
def _hex4(buf, p, end):
    if p + 4 > end:
        return -1
    code = 0
    for k in range(4):
        h = _HEX[buf[p + k]]
        if h < 0:
            return -1
        code = code * 16 + h
    return code


@njit(cache=True, nogil=True, _nrt=False)
def _clean_string(buf, p, end):
    """Index after the string at ``p`` if it is clean, else -1.

    Not clean: invalid UTF-8, a control character, a bad or lone surrogate escape, a ``\\u``
    escape of an ASCII character (``\\u0000``, or a character of a timestamp in disguise), and
    text laid out as an RFC 3339 timestamp whose offset has no colon (``...T07:00:00+0700``).
    """
    a = p + 1
    p = a
    while p < end:
        c = buf[p]
        if _PLAIN[c]:
            p += 1
            continue
        if c == 0x22:
            n = p - a
            if (n >= 24 and buf[a + 4] == 0x2D and buf[a + 13] == 0x3A
                    and (buf[p - 5] == 0x2B or buf[p - 5] == 0x2D)
                    and _digits(buf, p - 4, 4) >= 0):
                return -1
            return p + 1
        if c < 0x20:
            return -1
        if c == 0x5C:
            if p + 1 >= end:
                return -1
            e = buf[p + 1]
            if e == 0x75:
                code = _hex4(buf, p + 2, end)
                if code < 0x80 or 0xDC00 <= code <= 0xDFFF:
                    return -1
                if 0xD800 <= code <= 0xDBFF:
                    if p + 12 > end or buf[p + 6] != 0x5C or buf[p + 7] != 0x75:
                        return -1
                    low = _hex4(buf, p + 8, end)
                    if low < 0xDC00 or low > 0xDFFF:
                        return -1
                    p += 12
                else:
                    p += 6
            else:
                p = p + 2 if _ESCAPED[e] else -1
        else:
            p = _utf8_tail(buf, p, end)
        if p < 0:  # a bad escape or bad UTF-8
            return -1
    return -1


# What a byte outside strings means to the screen: 1 digit, 2 opens, 3 closes, 4 e or E,
# 5 a sign or point (inside a number), 0 anything else (which ends a number).
_OUTSIDE = np.zeros(256, np.int8)
_OUTSIDE[0x30:0x3A] = 1
_OUTSIDE[[0x7B, 0x5B]] = 2
_OUTSIDE[[0x7D, 0x5D]] = 3
_OUTSIDE[[0x65, 0x45]] = 4
_OUTSIDE[[0x2B, 0x2D, 0x2E]] = 5


@njit(cache=True, nogil=True, _nrt=False)
def _clean(buf, p, end, max_depth):
    """Whether buf[p:end] is clean, provided it is JSON at all (msgspec checks the grammar:
    what it refuses goes to the slow path anyway): strings as :func:`_clean_string` wants
    them, nested at most ``max_depth`` deep, and every number of moderate size -- at most
    40 digits in a row and an exponent of at most 250, well inside a double and
    PostgreSQL's numeric."""
    depth = 0
    run = 0  # digits in a row
    exp = -1  # the exponent read so far, -1 outside an exponent
    while p < end:
        c = buf[p]
        if c == 0x22:
            p = _clean_string(buf, p, end)
            if p < 0:
                return False
            run = 0
            exp = -1
            continue
        k = _OUTSIDE[c]
        if k == 1:
            run += 1
            if exp >= 0:
                exp = exp * 10 + (c - 0x30)
                if exp > _CLEAN_MAX_EXPONENT:
                    return False
            elif run > _CLEAN_MAX_DIGITS:
                return False
        elif k == 5:
            run = 0
        elif k == 4:
            exp = 0 if run > 0 else -1
            run = 0
        else:
            run = 0
            exp = -1
            if k == 2:
                depth += 1
                if depth > max_depth:
                    return False
            elif k == 3:
                depth -= 1
        p += 1
    return True


@njit(cache=True, nogil=True, _nrt=False)
def screen(buf, starts, ends, max_depth, clean):
    """clean[i] = whether msgspec's typed decode may be trusted with message
    buf[starts[i]:ends[i]] (see :func:`_clean`)."""
    for i in range(len(starts)):
        clean[i] = _clean(buf, starts[i], ends[i], max_depth)


@njit(cache=True, nogil=True, _nrt=False)
def nesting(buf, start, end):
    """How deep the arrays and objects of buf[start:end] nest: the most brackets open at once,
    strings skipped (a backslash escapes the next byte). Defined for any bytes, JSON or not."""
    depth = 0
    deepest = 0
    p = start
    while p < end:
        c = buf[p]
        if c == 0x22:
            p += 1
            while p < end and buf[p] != 0x22:
                p += 2 if buf[p] == 0x5C else 1
        elif c == 0x7B or c == 0x5B:
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c == 0x7D or c == 0x5D:
            depth -= 1
        p += 1
    return deepest
