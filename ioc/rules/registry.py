"""Device slots and rule scopes.

Every device gets a dense integer slot; all per-device state lives in arrays
indexed by it. A rule's ``where`` becomes one boolean array over slots,
computed with array operations (district codes, one mask per tag) so that
registering 100k devices under 100 rules stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

from ioc.model import CodedList
from ioc.rules.model import DeviceMeta, Where

_MULTIPLIERS = np.random.default_rng(0x10C).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def _hashes(ids: np.ndarray) -> np.ndarray:
    """64-bit hash of each string of a ``<U`` array, computed on its code points at once.

    Zero padding adds nothing, so the hash does not depend on the array's width.
    """
    width = ids.dtype.itemsize // 4
    if not len(ids) or not width:
        return np.zeros(len(ids), dtype=np.uint64)
    codes = np.ascontiguousarray(ids).view(np.uint32).reshape(len(ids), width).astype(np.uint64)
    return codes @ np.resize(_MULTIPLIERS, width)


DICT_LOOKUP_MAX_DEVICES = 30_000  # beyond, the vectorized lookup wins (see DeviceRegistry)


class DeviceRegistry:
    """Committed devices, in slot order. Slots are never reused or reordered.

    Interning a batch: while the registry is small, one C-level dict lookup per event
    (``map`` over ``index.get``), the cheapest while the dict stays in the CPU caches.
    For large fleets (or numpy text input) it is vectorized: ids are hashed as a numpy
    array, looked up in a sorted hash index and verified by string comparison; only
    misses (new devices, or a hash collision) go through the dict. Measured on batches
    of 20k fresh strings: 2k devices 0.05 vs 0.24 µs/event, 100k devices 0.25 vs 0.24.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.metas: list[DeviceMeta] = []
        self.index: dict[str, int] = {}
        self._id_array = np.empty(1024, dtype=object)  # ids by slot, for building rows
        self._id_text = np.zeros(1024, dtype="<U1")  # the same as fixed-width text, for verifying
        self._keys = np.empty(0, dtype=np.uint64)  # sorted hashes of registered ids
        self._key_slots = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def intern(self, device_ids: Sequence[str] | np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Slots of ``device_ids`` and the ids not yet registered, in first-seen order.

        Unknown ids get provisional slots ``len(self)...`` in that order; they
        become real only when :meth:`add` is called with them (on commit).
        """
        if isinstance(device_ids, CodedList):
            slots, new_ids = self.intern(device_ids.values)
            return slots[device_ids.codes], new_ids
        if len(self.ids) <= DICT_LOOKUP_MAX_DEVICES and not isinstance(device_ids, np.ndarray):
            slots = np.fromiter(map(self.index.get, device_ids, repeat(-1)), dtype=np.int64,
                                count=len(device_ids))
            return self._provisional(device_ids, slots)
        text = np.asarray(device_ids)
        if text.dtype.kind != "U":
            text = text.astype(str)
        slots = np.full(len(text), -1, dtype=np.int64)
        if len(self._keys) and len(text):
            h = _hashes(text)
            # Searching sorted needles is several times faster (the searches share prefixes).
            order = np.argsort(h)
            pos = np.empty(len(h), dtype=np.int64)
            pos[order] = np.searchsorted(self._keys, h[order])
            np.minimum(pos, len(self._keys) - 1, out=pos)
            cand = self._key_slots[pos]
            found = (self._keys[pos] == h) & (self._id_text[cand] == text)
            slots[found] = cand[found]
        return self._provisional(text, slots)

    def _provisional(
        self, device_ids: Sequence[str] | np.ndarray, slots: np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        """Fill the slots not found (-1) from the dict, or with provisional slots."""
        missing = np.flatnonzero(slots < 0)
        if not len(missing):
            return slots, []
        ids = [str(device_ids[i]) for i in missing.tolist()]
        known = [self.index.get(d, -1) for d in ids]
        new_ids = list(dict.fromkeys(d for d, k in zip(ids, known, strict=True) if k < 0))
        local = {d: len(self.ids) + j for j, d in enumerate(new_ids)}
        slots[missing] = [k if k >= 0 else local[d] for d, k in zip(ids, known, strict=True)]
        return slots, new_ids

    def add(self, metas: Iterable[DeviceMeta]) -> list[int]:
        """Register or update devices; returns their slots."""
        out = []
        added: list[str] = []
        for meta in metas:
            slot = self.index.get(meta.id)
            if slot is None:
                slot = len(self.ids)
                self.index[meta.id] = slot
                self.ids.append(meta.id)
                added.append(meta.id)
                self.metas.append(meta)
            else:
                self.metas[slot] = meta
            out.append(slot)
        if added:
            self._index_new(added)
        return out

    def _index_new(self, added: list[str]) -> None:
        n, first = len(self.ids), len(self.ids) - len(added)
        text = np.asarray(added)
        if n > len(self._id_array) or text.dtype.itemsize > self._id_text.dtype.itemsize:
            cap = max(n, 2 * len(self._id_array))
            self._id_array = np.resize(self._id_array, cap)
            width = max(text.dtype.itemsize, self._id_text.dtype.itemsize)
            grown = np.zeros(cap, dtype=f"<U{width // 4}")
            grown[:first] = self._id_text[:first]
            self._id_text = grown
        self._id_array[first:n] = added
        self._id_text[first:n] = text
        h = _hashes(text)
        order = np.argsort(h)
        at = np.searchsorted(self._keys, h[order])
        self._keys = np.insert(self._keys, at, h[order])
        self._key_slots = np.insert(self._key_slots, at, np.arange(first, n)[order])

    @classmethod
    def repeated(cls, metas: Sequence[DeviceMeta], times: int) -> DeviceRegistry:
        """Slot ``i + j * len(metas)`` holds ``metas[i]``, for ``times`` copies: a replay
        evaluates copies of the same devices side by side, and their transitions name the
        real device. Looking an id up finds its first copy."""
        reg = cls()
        reg.add(metas)
        n = len(metas)
        reg.ids = reg.ids * times
        reg.metas = reg.metas * times
        reg._id_array = np.tile(reg._id_array[:n], times)
        return reg

    def meta(self, slot: int, provisional: Sequence[str]) -> DeviceMeta:
        """Metadata of ``slot``; provisional (uncommitted) devices have none."""
        if slot < len(self.ids):
            return self.metas[slot]
        return DeviceMeta(provisional[slot - len(self.ids)])

    def device_ids(self, slots: np.ndarray, provisional: Sequence[str]) -> list[str]:
        """Ids of ``slots``, including provisional ones (those at or beyond ``len(self)``)."""
        n = len(self.ids)
        if not len(provisional) or not len(slots) or slots.max() < n:
            return self._id_array[slots].tolist()
        return [self.ids[s] if s < n else provisional[s - n] for s in slots.tolist()]


def scope_masks(wheres: Sequence[Where], metas: Sequence[DeviceMeta]) -> list[np.ndarray]:
    """For each ``where``, which of ``metas`` it selects (bool array aligned with ``metas``)."""
    k = len(metas)
    codes: dict[str | None, int] = {}
    district_code = np.fromiter(
        (codes.setdefault(m.district, len(codes)) for m in metas), dtype=np.int64, count=k
    )
    tag_masks: dict[str, np.ndarray] = {}
    position: dict[str, int] | None = None
    out = []
    for where in wheres:
        mask = np.ones(k, dtype=np.bool_)
        if where.districts:
            wanted = [codes[d] for d in where.districts if d in codes]
            mask &= np.isin(district_code, wanted)
        if where.device_ids:
            if position is None:
                position = {m.id: i for i, m in enumerate(metas)}
            chosen = np.zeros(k, dtype=np.bool_)
            chosen[[position[d] for d in where.device_ids if d in position]] = True
            mask &= chosen
        for tag in where.tags:
            if tag not in tag_masks:
                tag_masks[tag] = np.fromiter((tag in m.tags for m in metas), np.bool_, count=k)
            mask &= tag_masks[tag]
        out.append(mask)
    return out
