"""The vectorized rule engine: micro-batches in, fire/clear transitions and corrections out.

Event-time semantics (docs/contract/rules.md; the reference evaluator in
``reference.py`` implements the same rules one event at a time):

* **Event time is the order of record.** Per device, rules see the device's
  events in ``(ts, kind, value)`` order, whatever order and batches they
  arrived in. So for any arrival order and any batch cuts of the same events
  (within lateness), the alerts are those of evaluating each device's events
  sorted — which is what the reference evaluator and a backtest do.
* **In-order events cost nothing extra.** A batch is sorted per device; a
  device whose events in it all come after what its rules already consumed
  (``ts`` greater than the clock of each stream they belong to) is evaluated
  at once from its committed state, as a stream.
* **Late events replay their device.** A device with an event at or before a
  stream clock is re-evaluated from its newest checkpoint at or before that
  event (``checkpoints.py``), over the events it consumed since
  (``history.py``) plus the batch's: once with the events known before (what
  was emitted then) and once with all of them. The difference of the two is a
  list of :class:`~ioc.rules.corrections.Correction` (raise a missed episode,
  amend started/resolved/number of fires, withdraw one that did not happen)
  and the replay's final state replaces the device's. ``auto_resolve: false``
  rules, whose alerts an operator closes, get the missed fires as transitions.
* **Lateness.** An event older than its device's horizon (the oldest
  checkpoint kept, between ``max_lateness`` and ``1.5 × max_lateness`` behind
  the device's newest event of any kind, plus up to the step between two of
  its batches: checkpoints are taken at batch ends; late events can hold it
  back longer, see ``checkpoints.py``) is ignored by every rule; every event
  within ``max_lateness`` of the newest counts. A device's first batch sets
  its horizon, so this holds from its first event on.
* **Streams.** Each rule kind is a stream per device; kind-less rules read
  all kinds. ``rate`` reads only strictly increasing ts (equal timestamps
  have no defined rate: the first in order counts).
* **Matching.** An event matches when ``when`` holds (``rate``: the rate,
  ``(v - v_prev) / (t - t_prev) * per`` against the previous reading of the
  device, holds). ``clear`` defaults to "does not match"; an event for which an
  explicit ``clear`` holds never matches, so an overlapping clear cannot flap.
* **Firing.** Without ``for``, a matching event fires (if not firing). With
  ``for: D`` it fires at the first event whose ts is >= D after the first
  event of its unbroken run of matching events. ``count`` fires at a matching
  event when >= N matching events lie in (t - within, t]. A firing rule clears
  at the first later event where ``clear`` holds; with ``auto_resolve: false``
  no clear transition is emitted (the open alert waits for an operator) but the
  rule re-arms, so a new episode fires again.
* **Absence.** ``check_absent(now)`` fires for a device whose stream clock is
  known and ``<= now - for`` (devices never heard from are not checked), once
  per silence, with ``ts = clock + for`` and value NaN. The device's next
  event clears it. A silence seen in event time (a gap >= for between two
  readings, e.g. a backlog or a late upload) fires at ``prev + for`` and clears
  at the reading that ends it; a late reading that fills a gap amends or
  withdraws that alert.
* ``started_at`` is the ts of the firing event, ``resolved_at`` that of the
  clearing event; transitions are ordered by device, event time, then rule order.

Transactions: :meth:`RuleEngine.evaluate` and :meth:`RuleEngine.check_absent`
are pure; :meth:`RuleEngine.commit` applies an evaluation after its rows are
stored. Evaluate → store → commit must not interleave with another call on
the engine; ``commit`` refuses a stale evaluation.

Persistence (formats in ``state.py``): ``Evaluation.state_rows()`` gives the
``rule_state`` rows whose state changed; ``Evaluation.clock_rows()`` the
per-device clocks that changed; ``Evaluation.checkpoint_changes()`` the
checkpoint entries dropped and taken, and the horizons moved. All must be
stored with the batch; restore with :meth:`RuleEngine.load_state`,
:meth:`RuleEngine.load_clocks`, :meth:`RuleEngine.load_checkpoints` and
:meth:`RuleEngine.load_recent`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ioc import fast
from ioc.rules import kernels
from ioc.rules.checkpoints import NO_EVENT, CheckpointPlan, Checkpoints
from ioc.rules.codec import rule_fingerprint
from ioc.rules.corrections import Correction, diff, episodes
from ioc.rules.history import Events, RecentEvents
from ioc.rules.kernels import Outcome, Stream, condition_mask
from ioc.rules.kinds import KindCodes
from ioc.rules.messages import render, renderer
from ioc.rules.model import DeviceMeta, Rule
from ioc.rules.registry import DeviceRegistry, scope_masks
from ioc.rules.segments import NONE, segment_ends, segment_starts, shift_in_segment
from ioc.rules.state import Clocks, ClockUpdate, EntryPick, RuleState, StateUpdate
from ioc.rules.transitions import Transition

FIRE, CLEAR = 0, 1
_ACTIONS = ("fire", "clear")
NEW, OLD, CUT = range(3)  # the copies of a replay's devices (RuleEngine._replay)
COPIES = 3
__all__ = ["Evaluation", "RuleBatch", "RuleEngine", "StaleEvaluationError", "Transition"]


def _merge_clocks(parts: list[ClockUpdate]) -> ClockUpdate | None:
    """One clock update from updates of disjoint slots."""
    parts = [p for p in parts if len(p.slots)]
    if len(parts) <= 1:
        return parts[0] if parts else None
    return ClockUpdate(np.concatenate([p.slots for p in parts]),
                       np.concatenate([p.latest for p in parts]),
                       {k: np.concatenate([p.kinds[k] for p in parts]) for k in parts[0].kinds})


def _post_clocks(clocks: Clocks, slots: np.ndarray, upd: ClockUpdate | None) -> ClockUpdate:
    """The clocks of ``slots`` (sorted, unique) once ``upd`` is committed (or after it was)."""
    latest = clocks.latest[slots].copy()
    kinds = {k: arr[slots].copy() for k, arr in clocks.kinds.items()}
    if upd is not None and len(upd.slots) and len(slots):
        pos = np.searchsorted(slots, upd.slots)
        ok = (pos < len(slots)) & (slots[np.minimum(pos, len(slots) - 1)] == upd.slots)
        latest[pos[ok]] = upd.latest[ok]
        for k in kinds:
            kinds[k][pos[ok]] = upd.kinds[k][ok]
    return ClockUpdate(slots, latest, kinds)


class StaleEvaluationError(RuntimeError):
    """``commit`` got an evaluation computed before some other change to the engine."""


@dataclass(slots=True)
class RuleBatch:
    """One micro-batch as columns; ``ts`` in int64 microseconds UTC.

    A storage ``EventBatch`` converts with
    ``RuleBatch(b.device_id, b.kind, b.ts, b.value)``.
    """

    device_id: Sequence[str] | np.ndarray
    kind: Sequence[str] | np.ndarray
    ts: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        self.ts = np.asarray(self.ts, dtype=np.int64)
        self.value = np.asarray(self.value, dtype=np.float64)
        n = len(self.ts)
        if not (len(self.device_id) == len(self.kind) == len(self.value) == n):
            raise ValueError("RuleBatch columns must have the same length")

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> RuleBatch:
        """The events at ``index`` (int positions), in that order."""
        return RuleBatch(
            np.asarray(self.device_id)[index], np.asarray(self.kind)[index],
            self.ts[index], self.value[index],
        )


@dataclass(slots=True)
class Evaluation:
    """The result of evaluating a batch: transitions and corrections now, state on commit."""

    transitions: list[Transition]
    _generation: int
    _new_devices: list[str]
    _states: list[RuleState]
    _registry: DeviceRegistry
    _clocks: Clocks
    corrections: list[Correction] = field(default_factory=list)
    _state_updates: list[StateUpdate] = field(default_factory=list)
    _clock_update: ClockUpdate | None = None
    _consumed: Events | None = None
    _plan: CheckpointPlan | None = None
    _cut: ReplayCut | None = None

    def state_rows(self) -> list[tuple[str, str, str]]:
        """``(rule_id, device_id, state_json)`` for every (rule, device) whose state changed."""
        rows = []
        for upd in self._state_updates:
            rs = self._states[upd.rule_pos]
            ids = self._registry.device_ids(upd.slots, self._new_devices)
            rows += [(rs.rule.id, d, rs.row_json(upd.values, i)) for i, d in enumerate(ids)]
        return rows

    def clock_rows(self) -> list[tuple[str, str]]:
        """``(device_id, clock_json)`` for every device whose clocks changed."""
        upd = self._clock_update
        if upd is None:
            return []
        return self._clocks.rows(upd, self._registry.device_ids(upd.slots, self._new_devices))

    def checkpoint_changes(self) -> CheckpointChanges:
        """Checkpoint entries to drop and to take (copies of the committed state), horizons."""
        plan = self._plan
        if plan is None:
            return CheckpointChanges([], [], [])
        ids = np.asarray(self._registry.device_ids(plan.slots, self._new_devices), dtype=object)
        f_entry, f_pos = plan.freed
        dropped = list(zip(ids[f_pos].tolist(), f_entry.tolist(), strict=True))
        a_entry, a_pos = plan.added
        taken = []
        if len(a_pos):
            sub = _post_clocks(self._clocks, plan.slots[a_pos], self._clock_update)
            clocks = dict(self._clocks.rows(sub, ids[a_pos].tolist()))
            taken = [(d, e, int(plan.at[e, p]), clocks[d])
                     for d, e, p in zip(ids[a_pos].tolist(), a_entry.tolist(), a_pos.tolist(),
                                        strict=True)]
        moved = np.flatnonzero(plan.horizon != plan.old_horizon)
        horizons = list(zip(ids[moved].tolist(), plan.horizon[moved].tolist(), strict=True))
        written: list[tuple[str, int, int, str]] = []
        rows: list[tuple[str, str, int, str]] = []
        c_entry, c_pos = plan.cut
        if len(c_pos):
            assert self._cut is not None
            at = np.searchsorted(self._cut.slots, plan.slots[c_pos])
            clocks = dict(self._clocks.rows(
                ClockUpdate(plan.slots[c_pos], self._cut.latest[at],
                            {k: v[at] for k, v in self._cut.kinds.items()}),
                ids[c_pos].tolist()))
            for d, e, p in zip(ids[c_pos].tolist(), c_entry.tolist(), c_pos.tolist(), strict=True):
                written.append((d, e, int(plan.at[e, p]), clocks[d]))
            for rs, values in zip(self._states, self._cut.states, strict=True):
                empty = f'{{"def":"{rs.fingerprint}"}}'
                for d, e, i in zip(ids[c_pos].tolist(), c_entry.tolist(), at.tolist(), strict=True):
                    text = rs.row_json(values, i)
                    if text != empty:
                        rows.append((rs.rule.id, d, e, text))
        return CheckpointChanges(dropped, taken, horizons, written, rows)


@dataclass(frozen=True, slots=True)
class CheckpointChanges:
    """What to persist about checkpoints with a batch (see ``checkpoints.py``).

    ``dropped``: ``(device_id, entry)`` whose rows go; ``taken``: ``(device_id, entry, at_us,
    clock_json)`` whose rule rows are copies of the device's committed ``rule_state`` rows;
    ``horizons``: ``(device_id, horizon_us)``; ``written``: entries (as ``taken``) holding a
    replay's state at its cut, whose rule rows are ``rows``: ``(rule_id, device_id, entry,
    state_json)``.
    """

    dropped: list[tuple[str, int]]
    taken: list[tuple[str, int, int, str]]
    horizons: list[tuple[str, int]]
    written: list[tuple[str, int, int, str]] = field(default_factory=list)
    rows: list[tuple[str, str, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class ReplayCut:
    """The replayed devices' state just before the batch's earliest event of each (their
    ``cut``): every rule's state and the clocks, by position in ``slots`` (sorted)."""

    slots: np.ndarray
    cut: np.ndarray
    states: list[dict[str, np.ndarray]]
    latest: np.ndarray
    kinds: dict[str, np.ndarray]


class RuleEngine:
    """Evaluates rules over micro-batches, keeping per-(rule, device) state in numpy arrays."""

    def __init__(
        self, rules: Iterable[Rule], devices: Iterable[DeviceMeta] = (),
        max_lateness_s: float = 3600.0,
    ) -> None:
        self._lateness_us = round(max_lateness_s * 1e6)
        self._registry = DeviceRegistry()
        self._capacity = 1024
        self._mark = np.zeros(self._capacity, dtype=np.bool_)  # scratch: a set of slots
        self._clocks = Clocks(self._capacity)
        self._checkpoints = Checkpoints(self._capacity, self._lateness_us)
        self._recent = RecentEvents()
        self._kinds = KindCodes()
        self._states: list[RuleState] = []
        self._scopes: list[np.ndarray | None] = []
        self._stream_kinds: list[str | None] = []
        self._wanted: list[str] = []
        self._rules: tuple[Rule, ...] = ()
        self._generation = 0
        self._registry.add(devices)
        self._ensure_capacity(len(self._registry))
        self.set_rules(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """All rules as last set, disabled ones included."""
        return self._rules

    @property
    def devices(self) -> list[DeviceMeta]:
        return list(self._registry.metas)

    @property
    def recent_events(self) -> int:
        """How many consumed events are kept for replays."""
        return len(self._recent)

    # -- configuration -------------------------------------------------------------

    def set_rules(self, rules: Iterable[Rule]) -> list[str]:
        """Replace the rules; returns ids of rules whose state was dropped.

        A rule whose fingerprint (everything but message, severity,
        description) is unchanged keeps its state; a changed, removed or
        disabled rule loses it, and its ``rule_state`` rows should be deleted.
        """
        rules = tuple(rules)
        ids = [r.id for r in rules]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate rule ids")
        old = {rs.rule.id: rs for rs in self._states}
        states = []
        for rule in rules:
            if not rule.enabled:
                continue
            fp = rule_fingerprint(rule)
            kept = old.get(rule.id)
            if kept is not None and kept.fingerprint == fp:
                kept.rule = rule
                states.append(kept)
            else:
                states.append(RuleState(rule, fp, self._capacity))
        kept_ids = {id(rs) for rs in states}
        self._rules = rules
        self._states = states
        self._clocks.use_kinds({rs.rule.kind for rs in states if rs.rule.kind is not None})
        self._stream_kinds = list(dict.fromkeys(rs.rule.kind for rs in states))
        self._wanted = [k for k in self._stream_kinds if k is not None]
        self._scopes = [
            None if rs.rule.where.is_empty() else np.zeros(self._capacity, dtype=np.bool_)
            for rs in states
        ]
        self._write_scopes(np.arange(len(self._registry)), self._registry.metas)
        self._generation += 1
        return [rid for rid, rs in old.items() if id(rs) not in kept_ids]

    def upsert_devices(self, devices: Iterable[DeviceMeta]) -> None:
        """Add devices or change their metadata (scope and message fields)."""
        metas = list(devices)
        slots = self._registry.add(metas)
        self._ensure_capacity(len(self._registry))
        self._write_scopes(np.asarray(slots, dtype=np.int64), metas)
        self._generation += 1

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        cap = max(needed, self._capacity * 2)
        self._capacity = cap
        self._mark = np.zeros(cap, dtype=np.bool_)
        self._clocks.grow(cap)
        self._checkpoints.grow(cap)
        for rs in self._states:
            rs.grow(cap)
        for i, scope in enumerate(self._scopes):
            if scope is not None:
                grown = np.zeros(cap, dtype=np.bool_)
                grown[: len(scope)] = scope
                self._scopes[i] = grown

    def _write_scopes(self, slots: np.ndarray, metas: Sequence[DeviceMeta]) -> None:
        pairs = [(i, rs.rule.where) for i, rs in enumerate(self._states) if self._scopes[i] is not None]
        if not pairs or not len(slots):
            return
        for (i, _), mask in zip(pairs, scope_masks([w for _, w in pairs], metas), strict=True):
            self._scopes[i][slots] = mask  # type: ignore[index]

    def _new_evaluation(self, new_devices: list[str]) -> Evaluation:
        return Evaluation([], self._generation, new_devices, self._states, self._registry, self._clocks)

    # -- evaluation ----------------------------------------------------------------

    def _event_order(self, slots: np.ndarray, ts: np.ndarray, codes: np.ndarray,
                     value: np.ndarray) -> np.ndarray:
        """Positions sorting events by (slot, ts, kind name, value): event-time order per device.

        One sort of a combined int64 key when (slot, ts) pairs are distinct and the key
        fits; ties on (slot, ts) are rare and take the full four-key sort.
        """
        lo, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
        if (int(slots.max()) + 1) * span < 2**62:
            key = slots * span + (ts - lo)
            perm = np.argsort(key)
            sk = key[perm]
            if not (sk[1:] == sk[:-1]).any():
                return perm
        return np.lexsort((value, self._kinds.rank()[codes], ts, slots))

    def evaluate(self, batch: RuleBatch) -> Evaluation:
        """Transitions and corrections caused by ``batch`` and the state to commit; pure."""
        slots, new_ids = self._registry.intern(batch.device_id)
        n0 = len(self._registry)
        ev = self._new_evaluation(new_ids)
        if not len(batch):
            return ev
        if new_ids:
            # Provisional slots lie beyond every committed one, where state arrays hold
            # defaults; only their scope needs filling, which is invisible until commit.
            self._ensure_capacity(n0 + len(new_ids))
            self._write_scopes(np.arange(n0, n0 + len(new_ids)), [DeviceMeta(d) for d in new_ids])
        codes = self._kinds.codes(batch.kind)
        perm = self._event_order(slots, batch.ts, codes, batch.value)
        s_slot, s_ts, s_code = slots[perm], batch.ts[perm], codes[perm]
        stream = self._streams_of(s_code)
        fresh = s_ts >= self._checkpoints.horizon[s_slot]
        used = fresh & self._read(stream)
        late = used & self._late(s_slot, s_ts, stream)
        clock_parts = []
        if late.any():
            replayed = np.unique(s_slot[late])
            self._mark[replayed] = True
            in_replay = self._mark[s_slot]
            self._mark[replayed] = False
            keep = np.flatnonzero(~in_replay)
            clock_parts.append(self._evaluate_sorted(
                ev, perm[keep], s_slot[keep], s_ts[keep], stream[keep], fresh[keep],
                batch.value, batch.kind))
            r = np.flatnonzero(in_replay & used)
            replay_clocks = self._replay(
                ev, replayed, Events(s_slot[r], s_ts[r], s_code[r], batch.value[perm[r]]),
                perm[r])
            # The replay sees only the events rules read; a device's newest event (what
            # lateness is measured from, and what a restart derives from stored events) may be
            # of another kind, or ignored. Events are sorted by ts per device: the last is newest.
            a = np.flatnonzero(in_replay)
            newest = s_ts[a][segment_ends(segment_starts(s_slot[a]))]
            replay_clocks.latest = np.maximum(replay_clocks.latest, newest)
            clock_parts.append(replay_clocks)
        else:
            clock_parts.append(self._evaluate_sorted(
                ev, perm, s_slot, s_ts, stream, fresh, batch.value, batch.kind))
        ev._clock_update = _merge_clocks(clock_parts)
        # Checkpoints and horizons follow every device of the batch, whether rules read its
        # events or not: lateness is measured from its newest event of any kind.
        devices = s_slot[segment_starts(s_slot)]
        earliest = np.full(len(devices), NO_EVENT, dtype=np.int64)
        u = np.flatnonzero(used)
        if len(u):
            ev._consumed = Events(s_slot[u], s_ts[u], s_code[u], batch.value[perm[u]])
            first = segment_starts(ev._consumed.slot)
            earliest[np.searchsorted(devices, ev._consumed.slot[first])] = ev._consumed.ts[first]
        latest = np.maximum(self._clocks.latest[devices],
                            s_ts[segment_ends(segment_starts(s_slot))])
        cut = np.full(len(devices), NONE, dtype=np.int64)
        if ev._cut is not None:
            cut[np.searchsorted(devices, ev._cut.slots)] = ev._cut.cut
        ev._plan = self._checkpoints.plan(devices, earliest, latest, cut)
        return ev

    def _streams_of(self, codes: np.ndarray) -> np.ndarray:
        """For each kind code, the position of its kind among the rule kinds (-1: none)."""
        if not self._wanted:
            return np.full(len(codes), -1, dtype=np.int64)
        return self._kinds.positions(self._wanted)[codes]

    def _read(self, stream: np.ndarray) -> np.ndarray:
        """Which events some rule reads: all with a kind-less rule, else those of rule kinds."""
        return np.full(len(stream), None in self._stream_kinds, dtype=np.bool_) | (stream >= 0)

    def _late(self, s_slot: np.ndarray, s_ts: np.ndarray, stream: np.ndarray) -> np.ndarray:
        """Events that need their device replayed: at or before the clock of a stream they
        belong to, or ending a silence the absence timer reported before it lasted ``for`` in
        event time (the reading shows there was no such silence: the alert is withdrawn)."""
        late = np.zeros(len(s_ts), dtype=np.bool_)
        if None in self._stream_kinds:
            late |= s_ts <= self._clocks.latest[s_slot]
        for i, kind in enumerate(self._wanted):
            sel = np.flatnonzero(stream == i)
            if len(sel):
                late[sel] |= s_ts[sel] <= self._clocks.kinds[kind][s_slot[sel]]
        for rs in self._states:
            if rs.rule.absent is None or not rs.active:
                continue
            sel = np.flatnonzero(rs.arrays["firing"][s_slot] if rs.rule.kind is None else
                                 rs.arrays["firing"][s_slot] & (stream == self._wanted.index(rs.rule.kind)))
            clock = self._clocks.for_kind(rs.rule.kind)[s_slot[sel]]
            late[sel] |= s_ts[sel] < clock + round(rs.rule.absent.for_s * 1e6)
        return late

    def _evaluate_sorted(
        self, ev: Evaluation, perm: np.ndarray, s_slot: np.ndarray, s_ts: np.ndarray,
        stream: np.ndarray, fresh: np.ndarray, value: np.ndarray, kinds: Sequence[str] | np.ndarray,
    ) -> ClockUpdate:
        """Evaluate events in event-time order per device, all later than the stream clocks.

        ``perm`` maps these positions to the batch (``value``, ``kinds``). Appends to
        ``ev`` the transitions and state changes; returns the clock changes.
        """
        if not len(perm):
            return ClockUpdate(np.empty(0, np.int64), np.empty(0, np.int64),
                               {k: np.empty(0, np.int64) for k in self._clocks.kinds})
        ends = segment_ends(segment_starts(s_slot))
        touched = s_slot[ends]
        latest = np.maximum(s_ts[ends], self._clocks.latest[touched])
        changed = latest != self._clocks.latest[touched]
        kind_changes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        streams: dict[tuple, Stream] = {}
        for kind in self._stream_kinds:
            sel = fresh if kind is None else fresh & (stream == self._wanted.index(kind))
            streams[(kind,)], k_slots, k_vals = self._stream(
                perm, sel, s_slot, s_ts, value, self._clocks.for_kind(kind)
            )
            if kind is not None:
                kind_changes[kind] = (k_slots, k_vals)
                changed[np.searchsorted(touched, k_slots)] = True
        rows = touched[changed]
        kind_rows = {k: arr[rows] for k, arr in self._clocks.kinds.items()}
        for k, (k_slots, k_vals) in kind_changes.items():
            kind_rows[k][np.searchsorted(rows, k_slots)] = k_vals
        parts = [self._evaluate_rule(pos, rs, streams, ev) for pos, rs in enumerate(self._states)]
        position = np.empty(len(value), dtype=np.int64)  # batch index -> event-time position
        position[perm] = np.arange(len(perm))
        self._collect(ev, [p for p in parts if p is not None], kinds, position)
        return ClockUpdate(rows, latest[changed], kind_rows)

    def _replay(self, ev: Evaluation, slots: np.ndarray, events: Events,
                index: np.ndarray) -> ClockUpdate:
        """Re-evaluate the devices ``slots`` from checkpoints with ``events`` (theirs in the
        batch, in event-time order; ``index``: positions in the batch). Appends corrections
        (and missed fires of ``auto_resolve: false`` rules) to ``ev`` and the state changes
        of ``slots``; returns their clocks."""
        k = len(slots)
        first = segment_starts(events.slot)
        entries, since = self._checkpoints.choose(slots, events.ts[first])
        known = self._recent.take(slots, since)
        # One run over three copies of the devices, all from the checkpoint (one pass of
        # every rule instead of three): copy NEW gets the known events and the batch's, copy
        # OLD the known events only, copy CUT the known events before the batch's earliest
        # (they are the same in the old and the new evaluation), which leaves the state
        # there: a checkpoint (see Checkpoints.plan).
        fork = self._replica(slots, entries, COPIES)
        before = [rs.arrays["firing"][:k].copy() for rs in fork._states]
        cut = events.ts[first]
        local = np.searchsorted(slots, known.slot)
        early = known.ts < cut[local]
        copies = [
            Events(np.concatenate([local, np.searchsorted(slots, events.slot)]),
                   np.concatenate([known.ts, events.ts]), np.concatenate([known.kind, events.kind]),
                   np.concatenate([known.value, events.value])),
            Events(local + OLD * k, known.ts, known.kind, known.value),
            Events(local[early] + CUT * k, known.ts[early], known.kind[early],
                   known.value[early]),
        ]
        run = Events.concat(copies)
        copy_of = np.repeat(np.arange(COPIES), [len(c) for c in copies])
        batch_index = np.full(len(run), -1, dtype=np.int64)
        batch_index[len(known):len(known) + len(index)] = index
        run_ev = fork._run(run, np.arange(len(run)))
        fork.commit(run_ev)
        cut_slots = np.arange(CUT * k, (CUT + 1) * k)
        ev._cut = ReplayCut(slots, cut, [rs.gather(cut_slots) for rs in fork._states],
                            fork._clocks.latest[cut_slots],
                            {kd: arr[cut_slots] for kd, arr in fork._clocks.kinds.items()})
        old_t = [replace(t, event_index=None) for t in run_ev.transitions
                 if copy_of[t.event_index] == OLD]
        new_t = [replace(t, event_index=None if batch_index[t.event_index] < 0
                         else int(batch_index[t.event_index]))
                 for t in run_ev.transitions if copy_of[t.event_index] == NEW]
        old_t += self._timer_fires(slots, fork, before)
        self._corrections(ev, slots, since, before, old_t, new_t)
        mine = np.arange(k)
        for pos, rs in enumerate(fork._states):
            # Only the pairs whose state the replay changed: state_rows() promises no more.
            upd = self._states[pos].diff(pos, slots, rs.gather(mine))
            if upd is not None:
                ev._state_updates.append(upd)
        return ClockUpdate(slots, fork._clocks.latest[:k].copy(),
                           {kd: arr[:k].copy() for kd, arr in fork._clocks.kinds.items()})

    def _replica(self, slots: np.ndarray, entries: np.ndarray, copies: int) -> RuleEngine:
        """An engine over ``copies`` copies of ``slots`` (copy ``j`` of ``slots[i]`` is slot
        ``i + j * len(slots)``), each at the given checkpoint entries."""
        fork = RuleEngine.__new__(RuleEngine)
        slots, entries = np.tile(slots, copies), np.tile(entries, copies)
        k = max(1, len(slots))
        fork._lateness_us = self._lateness_us
        fork._registry = DeviceRegistry.repeated(
            [self._registry.metas[s] for s in slots[:len(slots) // copies].tolist()], copies)
        fork._capacity = k
        fork._mark = np.zeros(k, dtype=np.bool_)
        pick = EntryPick.of(slots, entries)
        fork._clocks = self._clocks.replica(pick)
        fork._checkpoints = Checkpoints(k, self._lateness_us)
        fork._recent = RecentEvents()
        fork._kinds = self._kinds
        fork._states = [rs.replica(pick) for rs in self._states]
        fork._scopes = [None if s is None else s[slots] for s in self._scopes]
        fork._stream_kinds = self._stream_kinds
        fork._wanted = self._wanted
        fork._rules = self._rules
        fork._generation = 0
        return fork

    def _run(self, events: Events, index: np.ndarray | None) -> Evaluation:
        """Evaluate ``events`` (slots of this engine, all after its clocks) in event time;
        transitions carry ``index[i]`` (None where negative or without ``index``)."""
        ev = self._new_evaluation([])
        if not len(events):
            return ev
        perm = self._event_order(events.slot, events.ts, events.kind, events.value)
        s_code = events.kind[perm]
        stream = self._streams_of(s_code)
        names = np.asarray(self._kinds.names, dtype=object)[events.kind]
        ev._clock_update = self._evaluate_sorted(
            ev, perm, events.slot[perm], events.ts[perm], stream,
            np.ones(len(perm), dtype=np.bool_), events.value, names)
        ev.transitions = [
            replace(t, event_index=None if index is None or t.event_index is None
                    or index[t.event_index] < 0 else int(index[t.event_index]))
            for t in ev.transitions
        ]
        return ev

    def _timer_fires(self, slots: np.ndarray, fork: RuleEngine,
                     before: list[np.ndarray]) -> list[Transition]:
        """Absence fires of the wall-clock timer for the replayed devices, which the replay of
        the old events cannot know; where the stream got no later event the replay keeps them
        firing (nothing changes), otherwise the new events decide whether that silence was
        real. A fire the replay's checkpoint holds as open (``before``: firing there, as when
        the checkpoint was taken after the timer reported a silence that began before it) is
        not repeated; one it does not hold — taken before the timer ran, or cleared as later
        than the checkpoint — is the old transitions' last."""
        out = []
        k = len(slots)
        for pos, rs in enumerate(self._states):
            if rs.rule.absent is None:
                continue
            firing = rs.arrays["firing"][slots]
            if not firing.any():
                continue
            clock = self._clocks.for_kind(rs.rule.kind)[slots]
            unchanged = firing & (fork._clocks.for_kind(rs.rule.kind)[:k] == clock)
            fork._states[pos].arrays["firing"][:k] |= unchanged
            fork._states[pos].recount()
            for_us = round(rs.rule.absent.for_s * 1e6)
            for i in np.flatnonzero(firing & ~unchanged & ~before[pos]).tolist():
                out.append(self._transition(
                    self._new_evaluation([]), pos, int(slots[i]), "fire", int(clock[i]) + for_us,
                    float("nan"), "", None))
        return out

    def _corrections(self, ev: Evaluation, slots: np.ndarray, since: np.ndarray,
                     before: list[np.ndarray], old: list[Transition],
                     new: list[Transition]) -> None:
        """Compare the old and new transitions of each replayed (rule, device)."""
        pos_of = {rs.rule.id: pos for pos, rs in enumerate(self._states)}
        compact = {self._registry.ids[s]: i for i, s in enumerate(slots.tolist())}
        old_by: dict[tuple[str, str], list[Transition]] = defaultdict(list)
        new_by: dict[tuple[str, str], list[Transition]] = defaultdict(list)
        for t in old:
            old_by[(t.rule_id, t.device_id)].append(t)
        for t in new:
            new_by[(t.rule_id, t.device_id)].append(t)
        for key in sorted(old_by.keys() | new_by.keys(), key=lambda k: (compact[k[1]], pos_of[k[0]])):
            rule_id, device_id = key
            pos, i = pos_of[rule_id], compact[device_id]
            o, n = old_by.get(key, []), new_by.get(key, [])
            if not self._states[pos].rule.auto_resolve:
                had = {t.ts_us for t in o if t.action == "fire"}
                ev.transitions += [t for t in n if t.action == "fire" and t.ts_us not in had]
                continue
            was_open = bool(before[pos][i])
            ev.corrections += diff(rule_id, device_id, int(since[i]),
                                   episodes(o, was_open), episodes(n, was_open))

    def _stream(
        self, perm: np.ndarray, sel: np.ndarray, s_slot: np.ndarray, s_ts: np.ndarray,
        value: np.ndarray, clock: np.ndarray,
    ) -> tuple[Stream, np.ndarray, np.ndarray]:
        """The events of one stream, and its clock changes (slots, new values).

        Events are in event-time order per device and later than the stream's clock, so
        each one's previous event is the one before it, or the clock for the first.
        """
        p = np.flatnonzero(sel)
        slot, t = s_slot[p], s_ts[p]
        st = segment_starts(slot)
        prev = shift_in_segment(t, st, NONE)
        prev[st] = clock[slot[st]]
        e = segment_ends(st)
        idx = perm[p]
        stream = Stream(idx, slot, t, value[idx], prev, st)
        return stream, slot[e], t[e]

    def _evaluate_rule(
        self, pos: int, rs: RuleState, streams: dict[tuple, Stream], ev: Evaluation
    ) -> tuple[int, Stream, Outcome] | None:
        rule = rs.rule
        stream = self._scoped(pos, streams)
        if not len(stream):
            return None
        if rule.absent:
            out = kernels.absent(rs, stream)
        elif rule.rate:
            out = kernels.rate(rs, stream, rule.clear)
        elif not rule.count and fast.enabled():
            # The compiled pass (ioc/fast/threshold.py); its reference is the branch below
            # with rs.diff after it.
            out, upd = kernels.threshold_compiled(pos, rs, stream)
            if upd is not None:
                ev._state_updates.append(upd)
            return pos, stream, out
        else:
            hot = self._hot_events(rs, stream)
            if hot is None:
                return None
            s, match, clear = hot
            kernel = kernels.count if rule.count else kernels.threshold
            out = kernel(rs, s, match, clear)
            stream = s
        upd = rs.diff(pos, out.slots, out.state)
        if upd is not None:
            ev._state_updates.append(upd)
        return pos, stream, out

    def _scoped(self, pos: int, streams: dict[tuple, Stream]) -> Stream:
        """The rule's stream restricted to its devices; shared by rules with the same scope.

        ``streams`` starts with one stream per kind (key ``(kind,)``) and caches
        the derived ones: strictly increasing ts (for ``rate``) and per ``where``.
        """
        rule = self._states[pos].rule
        strict = rule.rate is not None
        key = (rule.kind, strict, rule.where)
        if key in streams:
            return streams[key]
        base = streams[(rule.kind,)]
        if strict:
            base = streams.setdefault((rule.kind, True), base.take(base.ts > base.prev))
        scope = self._scopes[pos]
        streams[key] = base if scope is None else base.take(scope[base.slot])
        return streams[key]

    def _hot_events(
        self, rs: RuleState, stream: Stream
    ) -> tuple[Stream, np.ndarray, np.ndarray] | None:
        """The events of devices whose state can change, with their match and clear masks.

        A device with no matching event that is neither firing nor pending
        keeps its state and emits nothing, so its events are dropped before
        the kernel runs; whole devices are kept or dropped, never single events.
        """
        rule = rs.rule
        match = condition_mask(rule.when, stream.value)  # type: ignore[arg-type]
        clear = condition_mask(rule.clear, stream.value) if rule.clear else None
        if clear is not None:
            match &= ~clear
        any_match = bool(match.any())
        if rs.active == 0 and not any_match:
            return None
        hot = rs.active_at(stream.slot) if rs.active else np.zeros(len(stream), dtype=np.bool_)
        if any_match:
            matched = stream.slot[match]
            self._mark[matched] = True
            hot |= self._mark[stream.slot]
            self._mark[matched] = False
        s = stream.take(hot)
        match = match[hot]
        clear = ~match if clear is None else clear[hot]
        return s, match, clear

    def _collect(
        self, ev: Evaluation, parts: list[tuple[int, Stream, Outcome]],
        kinds: Sequence[str] | np.ndarray, position: np.ndarray,
    ) -> None:
        """Turn kernel outcomes into ordered Transition objects (a loop over transitions only)."""
        cols: list[list[np.ndarray]] = [[], [], [], [], [], []]
        for pos, s, out in parts:
            clear = out.clear if self._states[pos].rule.auto_resolve else np.zeros_like(out.clear)
            for action, mask in ((FIRE, out.fire), (CLEAR, clear)):
                at = np.flatnonzero(mask)
                if not len(at):
                    continue
                ts = s.ts[at]
                value = (s.value if out.value is None else out.value)[at]
                if action == FIRE and out.fire_ts is not None:
                    ts, value = out.fire_ts[at], np.full(len(at), np.nan)
                for col, data in zip(
                    cols, (s.index[at], np.full(len(at), pos), np.full(len(at), action),
                           ts, value, s.slot[at]), strict=True,
                ):
                    col.append(data)
        if not cols[0]:
            return
        index, pos_, action, ts, value, slot = (np.concatenate(c) for c in cols)
        order = np.lexsort((action, pos_, position[index]))
        rows = zip(*(c[order].tolist() for c in (index, pos_, action, ts, value, slot)), strict=True)
        # Per-rule parts (ids, severity, message renderer) are looked up once, not per transition.
        per_rule = {}
        for p in np.unique(pos_).tolist():
            rule = self._states[p].rule
            per_rule[p] = (rule.id, rule.severity, rule.kind, renderer(rule))
        metas, provisional = self._registry.metas, ev._new_devices
        n_known = len(metas)
        append = ev.transitions.append
        for e, p, a, t, v, sl in rows:
            rule_id, severity, rule_kind, render_one = per_rule[p]
            meta = metas[sl] if sl < n_known else DeviceMeta(provisional[sl - n_known])
            kind = rule_kind or str(kinds[e])
            append(Transition(rule_id, meta.id, _ACTIONS[a], t, v, severity,
                              render_one(meta, kind, t, v), kind, e))

    def _transition(
        self, ev: Evaluation, pos: int, slot: int, action: str, ts: int, value: float,
        event_kind: str, index: int | None,
    ) -> Transition:
        rule = self._states[pos].rule
        meta = self._registry.meta(slot, ev._new_devices)
        kind = rule.kind or event_kind
        return Transition(
            rule.id, meta.id, action, ts, value, rule.severity,
            render(rule, meta, kind, ts, value), kind, index,
        )

    def check_absent(self, now_us: int) -> Evaluation:
        """Absence fires as of wall-clock ``now_us``; pure, like :meth:`evaluate`."""
        ev = self._new_evaluation([])
        n = len(self._registry)
        for pos, rs in enumerate(self._states):
            rule = rs.rule
            if rule.absent is None:
                continue
            for_us = round(rule.absent.for_s * 1e6)
            clock = self._clocks.for_kind(rule.kind)[:n]
            due = (clock != NONE) & (clock <= now_us - for_us) & ~rs.arrays["firing"][:n]
            scope = self._scopes[pos]
            if scope is not None:
                due &= scope[:n]
            slots = np.flatnonzero(due)
            if not len(slots):
                continue
            ev._state_updates.append(
                StateUpdate(pos, slots, {"firing": np.ones(len(slots), dtype=np.bool_)})
            )
            for slot, t in zip(slots.tolist(), (clock[slots] + for_us).tolist(), strict=True):
                ev.transitions.append(
                    self._transition(ev, pos, slot, "fire", t, float("nan"), "", None)
                )
        return ev

    def is_current(self, ev: Evaluation) -> bool:
        """Whether ``ev`` was computed on the engine as it is now (nothing changed since)."""
        return ev._generation == self._generation

    def commit(self, ev: Evaluation) -> None:
        """Apply ``ev``'s state changes (call once its rows are durably stored)."""
        if not self.is_current(ev):
            raise StaleEvaluationError("the engine changed since this evaluation; evaluate again")
        self._registry.add(DeviceMeta(d) for d in ev._new_devices)
        if ev._clock_update is not None:
            self._clocks.apply(ev._clock_update)
        for upd in ev._state_updates:
            self._states[upd.rule_pos].apply(upd)
        if ev._plan is not None:
            self._checkpoints.apply(ev._plan)
            entries, pos = ev._plan.added
            slots = ev._plan.slots[pos]
            for rs in self._states:
                rs.snapshot(entries, slots)
            self._clocks.snapshot(entries, slots)
            self._timer_after_checkpoints(entries, slots)
            self._write_cut(ev)
        if ev._consumed is not None:
            self._recent.append(ev._consumed, self._checkpoints.horizon)
        self._generation += 1

    def _write_cut(self, ev: Evaluation) -> None:
        """Fill the entries the plan gave to replay cuts with the replay's state there."""
        assert ev._plan is not None
        entries, pos = ev._plan.cut
        if not len(pos):
            return
        assert ev._cut is not None
        slots = ev._plan.slots[pos]
        at = np.searchsorted(ev._cut.slots, slots)
        for rs, values in zip(self._states, ev._cut.states, strict=True):
            rs.write_entry(entries, slots, {name: v[at] for name, v in values.items()})
        self._clocks.snap_latest[entries, slots] = ev._cut.latest[at]
        for kd, arr in self._clocks.snap_kinds.items():
            arr[entries, slots] = ev._cut.kinds[kd][at]

    def _timer_after_checkpoints(self, entries: np.ndarray, slots: np.ndarray) -> None:
        """Clear, in checkpoint ``entries`` of ``slots``, absences the timer reported at or
        after the entry's ``at``.

        An entry copies the committed state, where an absence is firing once the timer
        reported it; but the entry is the state after the events before ``at``, and in event
        time that silence began firing only at its ts (clock + for). A replay from the entry
        then has the fire in its old transitions (``_timer_fires``), so that late events
        amend or withdraw that very alert; were it open at the entry, the correction would
        name the alert before it.
        """
        at = self._checkpoints.at[entries, slots]
        for rs in self._states:
            if rs.rule.absent is None:
                continue
            for_us = round(rs.rule.absent.for_s * 1e6)
            snaps = (self._clocks.snap_latest if rs.rule.kind is None
                     else self._clocks.snap_kinds[rs.rule.kind])
            clock = snaps[entries, slots]
            later = (clock == NONE) | (clock + for_us >= at)
            rs.snaps["firing"][entries[later], slots[later]] = False

    # -- persistence ---------------------------------------------------------------

    def _slot(self, device_id: str) -> int:
        slot = self._registry.index.get(device_id)
        if slot is None:
            self.upsert_devices([DeviceMeta(device_id)])
            slot = self._registry.index[device_id]
        return slot

    def load_state(self, rows: Iterable[tuple[str, str, str]]) -> list[str]:
        """Restore ``rule_state`` rows; returns ids of rules whose rows were ignored.

        Rows of unknown or disabled rules, or saved under another definition
        (fingerprint mismatch), are ignored — delete them.
        """
        by_id = {rs.rule.id: rs for rs in self._states}
        ignored: set[str] = set()
        for rule_id, device_id, text in rows:
            d = json.loads(text)
            rs = by_id.get(rule_id)
            if rs is None or d.get("def") != rs.fingerprint:
                ignored.add(rule_id)
                continue
            rs.load(self._slot(device_id), d)
        for rs in self._states:
            rs.recount()
        self._generation += 1
        return sorted(ignored)

    def load_clocks(self, rows: Iterable[tuple[str, str]]) -> None:
        """Restore clock rows (see ``state.py``), e.g. the newest stored ts per device and kind.

        Stored events include those older than their device's horizon, which no rule counted;
        a kind clock below the horizon is therefore taken from the device's base checkpoint
        instead (once checkpoints are loaded too, in either order).
        """
        for device_id, text in rows:
            self._clocks.load(self._slot(device_id), json.loads(text))
        self._settle_clocks()
        self._generation += 1

    def _settle_clocks(self) -> None:
        """Kind clocks below the horizon become those of the base checkpoint (at the horizon).

        Every stored event at or after the horizon was consumed (the horizon only moves on,
        and what it ignored lay below it), so a kind clock at or after it is right; below it,
        the newest consumed event of the kind is the one the base checkpoint's clock holds.
        """
        n = len(self._registry)
        horizon = self._checkpoints.horizon[:n]
        at = self._checkpoints.at[:, :n]
        is_base = (at == horizon) & (horizon != NONE)
        has_base = is_base.any(axis=0)
        entry = is_base.argmax(axis=0)
        for k, clock in self._clocks.kinds.items():
            stale = np.flatnonzero((horizon != NONE) & (clock[:n] < horizon))
            base = self._clocks.snap_kinds[k][entry[stale], stale]
            clock[stale] = np.where(has_base[stale], base, NONE)

    def load_checkpoints(
        self, entries: Iterable[tuple[str, int, int, str]],
        states: Iterable[tuple[str, str, int, str]], horizons: Iterable[tuple[str, int]],
    ) -> None:
        """Restore checkpoints: ``(device_id, entry, at_us, clock_json)`` entries, their
        ``(rule_id, device_id, entry, state_json)`` rule rows, ``(device_id, horizon_us)``.

        Rule rows saved under another definition are left at the default state, like
        :meth:`load_state` does.
        """
        for device_id, entry, at_us, text in entries:
            slot = self._slot(device_id)
            self._checkpoints.at[entry, slot] = at_us
            self._clocks.load(slot, json.loads(text), entry)
        by_id = {rs.rule.id: rs for rs in self._states}
        loaded = []
        for rule_id, device_id, entry, text in states:
            d = json.loads(text)
            rs = by_id.get(rule_id)
            if rs is not None and d.get("def") == rs.fingerprint:
                rs.load(self._slot(device_id), d, entry)
                loaded.append((entry, self._slot(device_id)))
        if loaded:
            # The stored rows are copies of the committed ones, as the entries were taken.
            e, sl = np.array(loaded, dtype=np.int64).T
            self._timer_after_checkpoints(e, sl)
        for device_id, horizon in horizons:
            self._checkpoints.horizon[self._slot(device_id)] = horizon
        self._checkpoints.reindex()
        self._settle_clocks()
        self._generation += 1

    def load_recent(self, batch: RuleBatch) -> None:
        """Restore the consumed events kept for replays from stored events (any order):
        those at or after their device's horizon, of kinds some rule reads."""
        if not len(batch):
            return
        slots = np.array([self._slot(str(d)) for d in batch.device_id], dtype=np.int64)
        codes = self._kinds.codes(batch.kind)
        keep = batch.ts >= self._checkpoints.horizon[slots]
        k = np.flatnonzero(keep & self._read(self._streams_of(codes)))
        self._recent.append(Events(slots[k], batch.ts[k], codes[k], batch.value[k]),
                            self._checkpoints.horizon)
        self._generation += 1

    def horizon_of(self, device_id: str) -> int | None:
        """The device's horizon in µs (None: it has none yet, every event counts)."""
        slot = self._registry.index.get(device_id)
        if slot is None or self._checkpoints.horizon[slot] == NONE:
            return None
        return int(self._checkpoints.horizon[slot])

    def export_state(self) -> list[tuple[str, str, str]]:
        """Every non-default ``rule_state`` row (for hand-over and tests)."""
        rows = []
        for rs in self._states:
            slots = rs.non_default_slots()
            values = rs.gather(slots)
            for i, slot in enumerate(slots.tolist()):
                rows.append((rs.rule.id, self._registry.ids[slot], rs.row_json(values, i)))
        return rows

    def export_clocks(self) -> list[tuple[str, str]]:
        """Every known device clock row."""
        n = len(self._registry)
        slots = np.flatnonzero(self._clocks.latest[:n] != NONE)
        upd = ClockUpdate(slots, self._clocks.latest[slots],
                          {k: arr[slots] for k, arr in self._clocks.kinds.items()})
        return self._clocks.rows(upd, self._registry.device_ids(slots, []))
