"""The codes of texts that lie in one buffer, found by a compiled hash table.

The column-wise decoder hands devices, kinds and units on as a :class:`ioc.model.CodedList`:
each distinct value once, and each event's code for it. The device ids the transport vouches
for lie in one buffer; :func:`buffer_codes` codes them with a hash table of their bytes,
cheaper than one dict pass. Its reference is that dict pass, ``_dict_codes`` in
``ioc/ingest/decode.py`` (which codes the device ids no transport vouches for): the same codes,
by first appearance. The column-wise decode is itself an accelerator, so with the switch off
neither runs and device ids stay plain lists.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def buffer_codes(buf: np.ndarray, start: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The code of each text ``buf[start[i]:start[i] + size[i]]`` (by first appearance) and the
    position of the first text of each code."""
    n = len(start)
    codes = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    table = np.full(1 << max(4, (2 * n).bit_length()), -1, np.int64)  # under half full
    distinct = _buffer_codes(buf, start, size, codes, first, table)
    return codes, first[:distinct]


@njit(cache=True, nogil=True, _nrt=False)
def _buffer_codes(buf, start, size, codes, first, table):
    """Open addressing on an FNV-1a hash; equal hashes are told apart by their bytes."""
    mask = len(table) - 1
    distinct = 0
    for i in range(len(start)):
        a, m = start[i], size[i]
        h = np.uint64(14695981039346656037)
        for k in range(m):
            h = (h ^ np.uint64(buf[a + k])) * np.uint64(1099511628211)
        j = np.int64(h & np.uint64(mask))
        while True:
            c = table[j]
            if c < 0:
                table[j] = distinct
                first[distinct] = i
                codes[i] = distinct
                distinct += 1
                break
            f = first[c]
            if size[f] == m:
                b = start[f]
                k = 0
                while k < m and buf[b + k] == buf[a + k]:
                    k += 1
                if k == m:
                    codes[i] = c
                    break
            j = (j + 1) & mask
    return distinct
