"""A text column of few distinct values that carries the code of each item.

The decoder knows a batch's distinct devices, kinds and units and each event's code for them.
Handing the codes on lets the passes after it (the COPY encoder, the rule engine, the latest
values) work once per distinct value and then index by code, where a plain list costs them a
lookup or an encode of every event's string again.

Texts that lie in one buffer (the device ids the transport vouches for) are coded by compiled
code (:func:`buffer_codes`): a hash table of their bytes, cheaper than one dict pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
from numba import njit


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
