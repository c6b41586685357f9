"""Vectorized RFC 3339 parsing for the decoder's uniform-batch path.

Parsing 20,000 timestamps one by one into datetime objects and back into integers costs
more than decoding the JSON around them. Here the texts of one length are joined into a
byte matrix and parsed with numpy. Only the strict common layout is accepted
(``YYYY-MM-DD[T t space]HH:MM:SS[.f{1,6}][Z z ±HH:MM]``, fields in range); for anything
else the caller falls back to the per-event parser, which explains refusals. Within that
layout the result equals msgspec's datetime converted to UTC microseconds.
"""

from __future__ import annotations

from functools import cache

import numpy as np

_DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_SEPARATOR_POSITIONS = [4, 7, 13, 16]
_SEPARATORS = np.frombuffer(b"--::", dtype=np.uint8)
# Fields: year, month, day, hour, minute, second, fraction, offset hours, offset minutes.
_FIELD_WIDTHS = (4, 2, 2, 2, 2, 2)
_LOW = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=np.int64)
_HIGH = np.array([9999, 12, 31, 23, 59, 59, 999_999, 23, 59], dtype=np.int64)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_UNIX_EPOCH_DAYS = 719_468  # days from 0000-03-01 to 1970-01-01 (proleptic Gregorian)


def parse_rfc3339_us(texts: list[str]) -> np.ndarray | None:
    """UTC microseconds since the Unix epoch for each text, or None if any is outside the layout."""
    n = len(texts)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    distinct = set(map(len, texts))
    if len(distinct) == 1:
        return _parse_length(texts, distinct.pop())
    out = np.empty(n, dtype=np.int64)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    for length in distinct:
        idx = np.flatnonzero(lengths == length)
        us = _parse_length([texts[i] for i in idx.tolist()], length)
        if us is None:
            return None
        out[idx] = us
    return out


def _parse_length(texts: list[str], length: int) -> np.ndarray | None:
    joined = "".join(texts)
    if length < 20 or not joined.isascii():
        return None
    return _parse_layout(np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, length),
                         length)


def _parse_layout(rows: np.ndarray, length: int) -> np.ndarray | None:
    """Parse equal-length texts (one per row of ``rows``) that share one layout."""
    last = rows[:, length - 1]
    sign = rows[:, length - 6] if length >= 25 else None
    if ((last == ord("Z")) | (last == ord("z"))).all():
        zone = 1
    elif sign is not None and (rows[:, length - 3] == ord(":")).all() and (
        (sign == ord("+")) | (sign == ord("-"))
    ).all():
        zone = 6
    else:
        return None
    body = length - zone
    frac_digits = body - 20 if body > 19 else 0
    if not (body == 19 or (21 <= body <= 26 and (rows[:, 19] == ord(".")).all())):
        return None
    between = rows[:, 10]
    if not (
        (rows[:, _SEPARATOR_POSITIONS] == _SEPARATORS).all()
        and ((between == ord("T")) | (between == ord("t")) | (between == ord(" "))).all()
    ):
        return None
    digits = rows[:, _digit_positions(length, frac_digits, zone)] - np.uint8(ord("0"))
    if (digits > 9).any():  # anything below "0" wrapped around
        return None
    # float64 so that BLAS does the product; every field is far below 2**53, so exact.
    fields = (digits.astype(np.float64) @ _weights(frac_digits, zone)).astype(np.int64)
    if ((fields < _LOW) | (fields > _HIGH)).any():
        return None
    year, month, day, hour, minute, second, fraction, off_hour, off_minute = fields.T
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if (day > _DAYS_IN_MONTH[month] + (leap & (month == 2))).any():
        return None
    # Days from the civil date (H. Hinnant's algorithm; years start in March).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - _UNIX_EPOCH_DAYS
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    if zone == 6:
        offset = off_hour * 3600 + off_minute * 60
        seconds -= np.where(sign == ord("-"), -offset, offset)
    return seconds * 1_000_000 + fraction


@cache
def _digit_positions(length: int, frac_digits: int, zone: int) -> list[int]:
    offset = [length - 5, length - 4, length - 2, length - 1] if zone == 6 else []
    return _DATE_TIME_DIGITS + list(range(20, 20 + frac_digits)) + offset


@cache
def _weights(frac_digits: int, zone: int) -> np.ndarray:
    """Matrix turning the digit columns into the nine fields by one product."""
    widths = [*_FIELD_WIDTHS, frac_digits, *((2, 2) if zone == 6 else (0, 0))]
    weights = np.zeros((sum(widths), 9), dtype=np.float64)
    row = 0
    for field, width in enumerate(widths):
        scale = 10 ** (6 - frac_digits) if field == 6 else 1
        for k in range(width):
            weights[row + k, field] = 10 ** (width - 1 - k) * scale
        row += width
    return weights
