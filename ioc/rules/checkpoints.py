"""Where a device can be replayed from: a few snapshots of its state, and its horizon.

A checkpoint ``at`` of a device is its whole rule state (every rule, and its clocks) after
all its events with ``ts < at`` and none later. The committed state after a batch is such a
checkpoint at ``latest + 1``, and it stays valid until an event with a smaller ts arrives —
which is exactly a late event, whose replay starts from an older checkpoint and which
invalidates the newer ones. Each device has ``ENTRIES`` snapshot entries, planned after
every batch with events of the device, whether rules read them or not (lateness is measured
from its newest event of any kind):

* after a batch, entries later than the earliest event it consumed for the device are
  dropped (they no longer hold "all events before ``at``");
* the newest entry at least ``max_lateness`` behind the device's newest event becomes its
  *base*: the device's *horizon* moves to its ``at`` and older entries are dropped. Events
  older than the horizon are ignored by rules, so every event within ``max_lateness``
  counts and the replay of any counted event has a checkpoint at or before it;
* a new entry (the state just committed, ``at = latest + 1``) is taken when the newest
  entry is at least ``max_lateness / 2`` older, so the base trails the newest event by at
  most ``1.5 × max_lateness`` and three entries always suffice.

Until a device has a base its replays start from the empty state (the "genesis"), with all
its events since it was first seen. The empty state is a checkpoint at any time up to the
device's first consumed event, so its first batch sets the horizon there, or ``max_lateness``
behind its newest event if that is earlier: older events are ignored from the start, as they
are once the device has a base (without it, a new device would count events of any age and
keep all of them for replays until its newest event moved ``max_lateness`` on).

Checkpoints are taken at batch ends only, so the horizon trails the newest event by
``max_lateness`` to ``1.5 × max_lateness`` plus up to the step between two of the device's
batches (its newest event then and now): a first batch spanning hours, or a device
reporting once an hour, keeps counting events older than ``1.5 × max_lateness`` until its
next batch moves the horizon. Late events add to that: they drop the entries after them, and
the horizon waits for a younger one to age (while every batch repeats the device's newest
timestamp none does — an open problem, see ``tests/unit/rules/test_event_time.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ioc.rules.segments import NONE

ENTRIES = 3
GENESIS = -1
NO_EVENT = np.iinfo(np.int64).max
"""``earliest`` of a device that had no event consumed in a batch (it invalidates nothing)."""


@dataclass(slots=True)
class CheckpointPlan:
    """New entry times and horizons of ``slots``, and which entries take the committed state."""

    slots: np.ndarray
    at: np.ndarray  # (ENTRIES, len(slots)); NONE: empty
    horizon: np.ndarray
    old_horizon: np.ndarray
    added: tuple[np.ndarray, np.ndarray]  # (entry, position in slots) of entries to fill
    freed: tuple[np.ndarray, np.ndarray]  # (entry, position) of entries emptied or replaced
    cut: tuple[np.ndarray, np.ndarray]  # (entry, position) taking a replay's state at its cut


class Checkpoints:
    """Entry times (``at``, per entry and slot) and horizons (per slot)."""

    def __init__(self, capacity: int, lateness_us: int) -> None:
        self.lateness_us = lateness_us
        self.at = np.full((ENTRIES, capacity), NONE, dtype=np.int64)
        self.horizon = np.full(capacity, NONE, dtype=np.int64)
        # Per slot, what lets a batch leave it out of the plan: its newest entry (a batch
        # with an earlier event drops it) and the newest event at which an entry ages into
        # the base or a new entry is due (NONE: no entry yet, plan every batch).
        self._newest = np.full(capacity, NONE, dtype=np.int64)
        self._due = np.full(capacity, NONE, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        if capacity <= self.at.shape[1]:
            return
        n = self.at.shape[1]
        at = np.full((ENTRIES, capacity), NONE, dtype=np.int64)
        at[:, :n] = self.at
        self.at = at
        for name in ("horizon", "_newest", "_due"):
            grown = np.full(capacity, NONE, dtype=np.int64)
            grown[:n] = getattr(self, name)
            setattr(self, name, grown)

    def reindex(self, slots: np.ndarray | None = None) -> None:
        """Recompute what :meth:`plan` filters by, after ``at`` or ``horizon`` were set."""
        if slots is None:
            slots = np.arange(self.at.shape[1])
        at, horizon = self.at[:, slots], self.horizon[slots]
        newest = at.max(axis=0)
        pending = np.where(at > horizon, at, NO_EVENT).min(axis=0)
        ages = np.where(pending == NO_EVENT, NO_EVENT, pending + self.lateness_us)
        due = np.minimum(ages, newest - 1 + max(1, self.lateness_us // 2))
        self._newest[slots] = newest
        self._due[slots] = np.where(newest == NONE, NONE, due)

    def choose(self, slots: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(entry, at)`` of the newest checkpoint at or before ``ts`` per slot (GENESIS, NONE
        when there is none: the device has no base yet, its replay starts from the empty
        state)."""
        at = self.at[:, slots]
        ok = (at != NONE) & (at <= ts)
        best = np.where(ok, at, NONE).argmax(axis=0)
        has = ok.any(axis=0)
        chosen = at[best, np.arange(len(slots))]
        return np.where(has, best, GENESIS), np.where(has, chosen, NONE)

    def plan(self, slots: np.ndarray, earliest: np.ndarray, latest: np.ndarray,
             cut: np.ndarray) -> CheckpointPlan:
        """Entries after a batch with events of ``slots`` (unique): the earliest it consumed
        per slot (``NO_EVENT``: none), the newest of any kind, ``latest``, and where a replay
        of the slot's device offers its state before the batch's events (``cut``; NONE: not
        replayed).

        A replayed device drops its entries after the batch's earliest event, and when its
        events keep coming at or before its newest ts (two kinds of one instant in separate
        messages, a camera's detections within one second) every entry taken at a batch end
        would be dropped by the next batch and none would age into a base. The replay's state
        just before the batch's earliest event is a checkpoint there, which the next batch
        leaves alone unless it comes earlier still: it is taken when newer than every entry
        kept.

        The plan covers only the slots whose entries or horizon change: most devices of a
        batch are quiet (nothing to drop, age or take), and are left out first.
        """
        keep = np.flatnonzero((self._newest[slots] > earliest) | (latest >= self._due[slots])
                              | (cut != NONE))
        slots, earliest, latest, cut = slots[keep], earliest[keep], latest[keep], cut[keep]
        lateness_us = self.lateness_us
        old = self.at[:, slots]
        at = old.copy()
        at[(at != NONE) & (at > earliest)] = NONE
        free = at == NONE
        cut_pos = np.flatnonzero((cut != NONE) & (cut > at.max(axis=0)) & free.any(axis=0))
        cut_entry = free.argmax(axis=0)[cut_pos]
        at[cut_entry, cut_pos] = cut[cut_pos]
        aged = (at != NONE) & (at <= latest - lateness_us)
        horizon = np.maximum(self.horizon[slots], np.where(aged, at, NONE).max(axis=0))
        first = (self.horizon[slots] == NONE) & (old == NONE).all(axis=0)
        horizon[first] = np.minimum(earliest[first], latest[first] - lateness_us)
        at[(at != NONE) & (at < horizon)] = NONE
        newest = at.max(axis=0)
        free = at == NONE
        want = ((newest == NONE) | (newest <= latest + 1 - max(1, lateness_us // 2))) & free.any(axis=0)
        pos = np.flatnonzero(want)
        entry = free.argmax(axis=0)[pos]
        at[entry, pos] = latest[pos] + 1
        freed = np.nonzero((old != NONE) & (at != old))
        kept = at[cut_entry, cut_pos] == cut[cut_pos]  # a cut below the new horizon went again
        return CheckpointPlan(slots, at, horizon, self.horizon[slots], (entry, pos), freed,
                              (cut_entry[kept], cut_pos[kept]))

    def apply(self, plan: CheckpointPlan) -> None:
        self.at[:, plan.slots] = plan.at
        self.horizon[plan.slots] = plan.horizon
        self.reindex(plan.slots)
