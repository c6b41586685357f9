"""Segment primitives for columns grouped by device (contiguous runs of equal keys).

They let the engine do per-device scans — running maxima, "last time X
happened" — with whole-array numpy operations instead of a loop per event.
"""

from __future__ import annotations

import numpy as np

NONE = np.iinfo(np.int64).min
"""Sentinel for "no timestamp" in int64 state arrays (sorts below every real ts)."""

_SAFE_SPAN = 2**62


def segment_starts(keys: np.ndarray) -> np.ndarray:
    """True where a run of equal ``keys`` begins."""
    starts = np.empty(len(keys), dtype=np.bool_)
    if len(keys):
        starts[0] = True
        np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    return starts


def segment_ends(starts: np.ndarray) -> np.ndarray:
    """Positions of the last element of each segment."""
    if not len(starts):
        return np.empty(0, dtype=np.int64)
    return np.append(np.flatnonzero(starts[1:]), len(starts) - 1)


def last_marker(marker: np.ndarray) -> np.ndarray:
    """Index of the latest True at or before each position; ``marker[0]`` must be True."""
    idx = np.where(marker, np.arange(len(marker)), 0)
    np.maximum.accumulate(idx, out=idx)
    return idx


def segmented_cummax(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running maximum of int64 ``values`` that restarts at every segment start.

    Each segment is lifted above the previous one by ``segment_number * span``
    so one global ``np.maximum.accumulate`` cannot leak across segments. When
    that could overflow int64 (absurd spans), values are replaced by their
    dense ranks first, which bounds the span by the array length.
    """
    n = len(values)
    if n == 0:
        return values.copy()
    seg = np.cumsum(starts, dtype=np.int64) - 1
    lo, hi = int(values.min()), int(values.max())
    span = hi - lo + 1
    if (int(seg[-1]) + 1) * span < _SAFE_SPAN:
        base = seg * span
        lifted = base + (values - lo)
        np.maximum.accumulate(lifted, out=lifted)
        return lifted - base + lo
    uniq, rank = np.unique(values, return_inverse=True)
    base = seg * n
    lifted = base + rank
    np.maximum.accumulate(lifted, out=lifted)
    return uniq[lifted - base]


def shift_in_segment(values: np.ndarray, starts: np.ndarray, fill: int) -> np.ndarray:
    """``values`` moved one position later within each segment; segment starts get ``fill``."""
    out = np.empty_like(values)
    if len(values):
        out[1:] = values[:-1]
        out[starts] = fill
    return out
