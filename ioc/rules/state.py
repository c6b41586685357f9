"""Per-(rule, device) state and per-device event clocks, as arrays indexed by device slot.

Persisted forms (what :class:`~ioc.rules.engine.Evaluation` hands to the
database, and what ``load_state``/``load_clocks`` read back):

- rule state row ``(rule_id, device_id, json)``; json holds only non-default
  fields: ``{"def": "<fingerprint>", "firing": true, "run_start": <ts_us>,
  "prev": [<ts_us>, <value>], "window": [<ts_us>, ...]}``. ``def`` ties the
  row to the rule definition it was computed under. A row with nothing but
  ``def`` is the default state and may be deleted instead of stored.
- clock row ``(device_id, json)``: ``{"latest": <ts_us>, "kinds": {"<kind>":
  <ts_us>, ...}}`` — the device's latest event ts (for lateness) and, per kind
  some rule uses, the latest ts rules have consumed (for ordering).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ioc.rules.checkpoints import ENTRIES
from ioc.rules.model import Rule
from ioc.rules.segments import NONE

_DTYPES = {
    "firing": np.bool_, "run_start": np.int64, "prev_t": np.int64, "prev_v": np.float64,
    "window": np.int64,
}


def _grown(arr: np.ndarray, capacity: int, fill: object) -> np.ndarray:
    if len(arr) >= capacity:
        return arr
    out = np.full((capacity, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _grown_entries(arr: np.ndarray, capacity: int, fill: object) -> np.ndarray:
    """``_grown`` for checkpoint entry arrays, shaped (ENTRIES, slots, ...)."""
    if arr.shape[1] >= capacity:
        return arr
    out = np.full((ENTRIES, capacity, *arr.shape[2:]), fill, dtype=arr.dtype)
    out[:, : arr.shape[1]] = arr
    return out


@dataclass(slots=True)
class EntryPick:
    """Slots and the checkpoint entry of each to read (``genesis``: the empty state instead),
    shared by every array a replica copies."""

    slots: np.ndarray
    entries: np.ndarray
    genesis: np.ndarray

    @classmethod
    def of(cls, slots: np.ndarray, entries: np.ndarray) -> EntryPick:
        """``entries``: an entry per slot, or -1 for the empty state."""
        return cls(slots, np.maximum(entries, 0), entries < 0)

    def read(self, snaps: np.ndarray, fill: object) -> np.ndarray:
        out = snaps[self.entries, self.slots]
        out[self.genesis] = fill
        return out


@dataclass(slots=True)
class StateUpdate:
    """New values of a rule's state for the slots whose state changed."""

    rule_pos: int
    slots: np.ndarray
    values: dict[str, np.ndarray]


class RuleState:
    """The state arrays one rule needs (only those its type uses)."""

    def __init__(self, rule: Rule, fingerprint: str, capacity: int, *,
                 checkpoints: bool = True) -> None:
        self.rule = rule
        self.fingerprint = fingerprint
        self.active = 0  # slots firing or with a pending run: 0 lets quiet batches skip the rule
        self.hot = np.zeros(capacity, dtype=np.bool_)  # which slots those are
        # Slots whose state ever left the default: a checkpoint copies only these (a rule
        # scoped to one kind and district has default state for most devices).
        self.seen = np.zeros(capacity, dtype=np.bool_)
        self.defaults: dict[str, object] = {"firing": False}
        if rule.for_s:
            self.defaults["run_start"] = NONE
        if rule.rate:
            self.defaults["prev_t"] = NONE
            self.defaults["prev_v"] = 0.0
        self.window = rule.count.at_least - 1 if rule.count else 0
        if self.window:
            self.defaults["window"] = NONE
        self.arrays: dict[str, np.ndarray] = {}
        self.snaps: dict[str, np.ndarray] = {}  # the same per checkpoint entry (checkpoints.py)
        for name, fill in self.defaults.items():
            shape = (capacity, self.window) if name == "window" else (capacity,)
            self.arrays[name] = np.full(shape, fill, dtype=_DTYPES[name])
            if checkpoints:
                self.snaps[name] = np.full((ENTRIES, *shape), fill, dtype=_DTYPES[name])

    def grow(self, capacity: int) -> None:
        for name, arr in self.arrays.items():
            self.arrays[name] = _grown(arr, capacity, self.defaults[name])
            self.snaps[name] = _grown_entries(self.snaps[name], capacity, self.defaults[name])
        self.hot = _grown(self.hot, capacity, False)
        self.seen = _grown(self.seen, capacity, False)

    def snapshot(self, entries: np.ndarray, slots: np.ndarray) -> None:
        """Copy the committed state of ``slots`` into checkpoint ``entries``.

        Slots never seen hold the default state, and so does every entry of theirs.
        """
        some = np.flatnonzero(self.seen[slots])
        if not len(some):
            return
        entries, slots = entries[some], slots[some]
        for name, arr in self.arrays.items():
            self.snaps[name][entries, slots] = arr[slots]

    def write_entry(self, entries: np.ndarray, slots: np.ndarray,
                    values: dict[str, np.ndarray]) -> None:
        """Set checkpoint ``entries`` of ``slots`` to ``values`` (a state computed elsewhere)."""
        self.seen[slots] = True
        for name, v in values.items():
            self.snaps[name][entries, slots] = v

    def replica(self, pick: EntryPick) -> RuleState:
        """A state of ``len(pick.slots)`` slots holding those slots as of their entries; it
        takes no checkpoints of its own."""
        rs = RuleState(self.rule, self.fingerprint, 0, checkpoints=False)
        rs.arrays = {name: pick.read(self.snaps[name], self.defaults[name]) for name in self.arrays}
        rs.seen = np.ones(len(pick.slots), dtype=np.bool_)
        rs.recount()
        return rs

    def gather(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        return {name: arr[slots] for name, arr in self.arrays.items()}

    def active_at(self, slots: np.ndarray) -> np.ndarray:
        """Whether each of ``slots`` is firing or has a pending ``for`` run."""
        return self.hot[slots]

    def _active(self, values: dict[str, np.ndarray]) -> np.ndarray:
        act = values["firing"].copy()
        if "run_start" in values:
            act |= values["run_start"] != NONE
        return act

    def diff(self, rule_pos: int, slots: np.ndarray, new: dict[str, np.ndarray]) -> StateUpdate | None:
        """The update for ``slots`` keeping only slots whose state really changes."""
        old = self.gather(slots)
        changed = np.zeros(len(slots), dtype=np.bool_)
        for name, values in new.items():
            ne = values != old[name]
            changed |= ne.any(axis=1) if ne.ndim == 2 else ne
        if not changed.any():
            return None
        return StateUpdate(rule_pos, slots[changed], {k: v[changed] for k, v in new.items()})

    def apply(self, update: StateUpdate) -> None:
        self.seen[update.slots] = True
        before = int(self.hot[update.slots].sum())
        for name, values in update.values.items():
            self.arrays[name][update.slots] = values
        now = self._active(self.gather(update.slots))
        self.hot[update.slots] = now
        self.active += int(now.sum()) - before

    def recount(self) -> None:
        self.hot = self._active(self.arrays)
        self.active = int(self.hot.sum())

    def row_json(self, values: dict[str, np.ndarray], i: int) -> str:
        """The persisted form of element ``i`` of ``values`` (only non-default fields).

        Built by hand rather than with ``json.dumps``: it runs for every changed
        row of every batch, and this is several times faster for these flat shapes.
        """
        parts = [f'"def":"{self.fingerprint}"']
        if values["firing"][i]:
            parts.append('"firing":true')
        if "run_start" in values and values["run_start"][i] != NONE:
            parts.append(f'"run_start":{int(values["run_start"][i])}')
        if "prev_t" in values and values["prev_t"][i] != NONE:
            parts.append(f'"prev":[{int(values["prev_t"][i])},{float(values["prev_v"][i])!r}]')
        if "window" in values:
            window = [str(int(t)) for t in values["window"][i] if t != NONE]
            if window:
                parts.append(f'"window":[{",".join(window)}]')
        return "{" + ",".join(parts) + "}"

    def non_default_slots(self) -> np.ndarray:
        mask = self._active(self.arrays)
        if "prev_t" in self.arrays:
            mask |= self.arrays["prev_t"] != NONE
        if "window" in self.arrays:
            mask |= (self.arrays["window"] != NONE).any(axis=1)
        return np.flatnonzero(mask)

    def load(self, slot: int, d: dict[str, Any], entry: int | None = None) -> None:
        """Set ``slot`` from a decoded row (fields this rule type does not use are ignored);
        ``entry``: into that checkpoint entry instead of the committed state."""
        arrays = self.arrays if entry is None else {k: v[entry] for k, v in self.snaps.items()}
        self.seen[slot] = True
        arrays["firing"][slot] = bool(d.get("firing", False))
        if "run_start" in arrays:
            arrays["run_start"][slot] = int(d.get("run_start", NONE))
        if "prev_t" in arrays:
            prev = d.get("prev")
            arrays["prev_t"][slot] = int(prev[0]) if prev else NONE
            arrays["prev_v"][slot] = float(prev[1]) if prev else 0.0
        if "window" in arrays:
            w = [int(t) for t in d.get("window", [])][-self.window :]
            arrays["window"][slot] = [NONE] * (self.window - len(w)) + w


@dataclass(slots=True)
class ClockUpdate:
    """New clock values for the devices whose clocks changed (full rows for those devices)."""

    slots: np.ndarray
    latest: np.ndarray
    kinds: dict[str, np.ndarray]


class Clocks:
    """Latest event ts per device, and latest consumed ts per (device, rule kind)."""

    def __init__(self, capacity: int) -> None:
        self.latest = np.full(capacity, NONE, dtype=np.int64)
        self.kinds: dict[str, np.ndarray] = {}
        self.snap_latest = np.full((ENTRIES, capacity), NONE, dtype=np.int64)
        self.snap_kinds: dict[str, np.ndarray] = {}

    def grow(self, capacity: int) -> None:
        self.latest = _grown(self.latest, capacity, NONE)
        self.snap_latest = _grown_entries(self.snap_latest, capacity, NONE)
        for k, arr in self.kinds.items():
            self.kinds[k] = _grown(arr, capacity, NONE)
            self.snap_kinds[k] = _grown_entries(self.snap_kinds[k], capacity, NONE)

    def use_kinds(self, kinds: set[str]) -> None:
        """Track exactly ``kinds``: new ones start empty, unused ones are dropped."""
        n = len(self.latest)
        self.kinds = {k: self.kinds.get(k, np.full(n, NONE, dtype=np.int64)) for k in sorted(kinds)}
        self.snap_kinds = {
            k: self.snap_kinds.get(k, np.full((ENTRIES, n), NONE, dtype=np.int64))
            for k in sorted(kinds)
        }

    def snapshot(self, entries: np.ndarray, slots: np.ndarray) -> None:
        """Copy the committed clocks of ``slots`` into checkpoint ``entries``."""
        self.snap_latest[entries, slots] = self.latest[slots]
        for k, arr in self.kinds.items():
            self.snap_kinds[k][entries, slots] = arr[slots]

    def replica(self, pick: EntryPick) -> Clocks:
        """Clocks of ``len(pick.slots)`` slots holding those slots as of their entries."""
        c = Clocks(len(pick.slots))
        c.latest = pick.read(self.snap_latest, NONE)
        c.kinds = {k: pick.read(self.snap_kinds[k], NONE) for k in self.kinds}
        return c

    def at_entries(self, entries: np.ndarray, slots: np.ndarray) -> ClockUpdate:
        """The clocks stored in checkpoint ``entries`` of ``slots`` (for their persisted rows)."""
        return ClockUpdate(slots, self.snap_latest[entries, slots],
                           {k: arr[entries, slots] for k, arr in self.snap_kinds.items()})

    def for_kind(self, kind: str | None) -> np.ndarray:
        """Consumption clock of a rule kind; kind-less rules consume all kinds, i.e. ``latest``."""
        return self.latest if kind is None else self.kinds[kind]

    def apply(self, update: ClockUpdate) -> None:
        self.latest[update.slots] = update.latest
        for k, values in update.kinds.items():
            self.kinds[k][update.slots] = values

    def rows(self, update: ClockUpdate, device_ids: list[str]) -> list[tuple[str, str]]:
        """Persisted clock rows for ``update``, one per device.

        Devices are grouped by which kind clocks they have, and each group is
        rendered with one %-template: this runs for nearly every device of
        every batch, so it must not cost a ``json.dumps`` per row.
        """
        names = list(update.kinds)
        columns = list(update.kinds.values())
        if not len(update.slots):
            return []
        known = np.stack([c != NONE for c in columns], axis=1) if columns else None
        pattern = known @ (1 << np.arange(len(names))) if known is not None else np.zeros(
            len(update.slots), dtype=np.int64
        )
        ids = np.asarray(device_ids, dtype=object)
        out: list[tuple[str, str]] = []
        for code in np.unique(pattern).tolist():
            rows = np.flatnonzero(pattern == code)
            used = [j for j in range(len(names)) if code >> j & 1]
            kinds = ",".join(
                json.dumps(names[j], ensure_ascii=False).replace("%", "%%") + ":%d" for j in used
            )
            template = '{"latest":%d,"kinds":{' + kinds + "}}"
            values = zip(update.latest[rows].tolist(), *(columns[j][rows].tolist() for j in used),
                         strict=True)
            out.extend(zip(ids[rows].tolist(), [template % v for v in values], strict=True))
        return out

    def load(self, slot: int, d: dict[str, Any], entry: int | None = None) -> None:
        """Set ``slot`` from a clock row (``entry``: into that checkpoint entry)."""
        latest = self.latest if entry is None else self.snap_latest[entry]
        latest[slot] = int(d.get("latest", NONE))
        kinds = d.get("kinds", {})
        for k, arr in self.kinds.items():
            (arr if entry is None else self.snap_kinds[k][entry])[slot] = int(kinds.get(k, NONE))
