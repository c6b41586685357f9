"""Event kinds as small integer codes, shared by a batch, the recent-events store and replays.

Codes are assigned on first sight and never change; ``rank`` orders codes by kind name,
which is how events with equal timestamps are ordered whatever order they arrived in.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

from ioc.model import CodedList


class KindCodes:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self._rank = np.empty(0, dtype=np.int64)

    def _of_names(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self._code(str(n)) for n in names], dtype=np.int64)

    def _code(self, name: str) -> int:
        code = self.index.get(name)
        if code is None:
            code = self.index[name] = len(self.names)
            self.names.append(name)
        return code

    def codes(self, kinds: Sequence[str] | np.ndarray) -> np.ndarray:
        """The code of each kind (new kinds get codes).

        A list (what the service hands over) goes through one C-level dict lookup per
        event; a CodedList maps its distinct values only; numpy text is compared with each
        known kind (there are few), and only the rest is factorized.
        """
        if isinstance(kinds, CodedList):
            return self._of_names(kinds.values)[kinds.codes]
        if isinstance(kinds, np.ndarray):
            codes = np.full(len(kinds), -1, dtype=np.int64)
            for code, name in enumerate(self.names):
                codes[kinds == name] = code
            rest = np.flatnonzero(codes < 0)
            if len(rest):
                uniq, inverse = np.unique(kinds[rest], return_inverse=True)
                codes[rest] = self._of_names(uniq.tolist())[inverse.reshape(-1)]
            return codes
        codes = np.fromiter(map(self.index.get, kinds, repeat(-1)), dtype=np.int64,
                            count=len(kinds))
        missing = np.flatnonzero(codes < 0)
        if len(missing):
            for i in missing.tolist():
                codes[i] = self._code(str(kinds[i]))
        return codes

    def rank(self) -> np.ndarray:
        """Position of each code's name in name order."""
        if len(self._rank) != len(self.names):
            rank = np.empty(len(self.names), dtype=np.int64)
            rank[np.argsort(np.array(self.names, dtype=object))] = np.arange(len(self.names))
            self._rank = rank
        return self._rank

    def positions(self, wanted: Sequence[str]) -> np.ndarray:
        """For each code, the position of its kind in ``wanted`` (-1 if absent)."""
        where = {k: i for i, k in enumerate(wanted)}
        return np.array([where.get(n, -1) for n in self.names], dtype=np.int64)
