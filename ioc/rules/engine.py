"""The vectorized rule engine: micro-batches in, fire/clear transitions out.

Event-time semantics (docs/contract/rules.md; the reference evaluator in
``reference.py`` implements the same rules one event at a time):

* **Arrival order is the order of record.** Events are considered in the
  order they arrive (batch order, batches in order); ties on ts keep that order.
* **Lateness.** Per device the engine keeps ``latest``, the greatest ts of any
  event that arrived before (any kind). An event with
  ``ts < latest - max_lateness`` is ignored by every rule.
* **Consumption (how in-lateness out-of-order events are handled).** Each rule
  kind is a stream per device with a clock: the greatest ts of the stream's
  earlier non-late events (kind-less rules use all kinds, i.e. ``latest``). A
  rule consumes an event only if ``ts >= clock`` (``ts > clock`` for ``rate``,
  where equal timestamps have no defined rate); an event that arrives after a
  later one of its stream is skipped, never re-ordered. Thus the events a rule
  consumes are ts-sorted per device, and whether an event is consumed depends
  only on what arrived before it — so **batch boundaries never change the
  outcome**: any cut of the same arrival sequence gives the same transitions.
  Lateness still matters across kinds: a device's rainfall reading may lag its
  water-level reading by up to ``max_lateness`` and still count.
  (Buffering to re-order would delay every alert by ``max_lateness``.)
* **Matching.** An event matches when ``when`` holds (``rate``: the rate,
  ``(v - v_prev) / (t - t_prev) * per`` against the previous consumed reading
  of the device, holds). ``clear`` defaults to "does not match"; an event for
  which an explicit ``clear`` holds never matches, so an overlapping clear
  cannot flap.
* **Firing.** Without ``for``, a matching event fires (if not firing). With
  ``for: D`` it fires at the first event whose ts is >= D after the first
  event of its unbroken run of matching events. ``count`` fires at a matching
  event when >= N matching consumed events lie in (t - within, t]. A firing
  rule clears at the first later event where ``clear`` holds; with
  ``auto_resolve: false`` no clear transition is emitted (the open alert waits
  for an operator) but the rule re-arms, so a new episode fires again.
* **Absence.** ``check_absent(now)`` fires for a device whose stream clock is
  known and ``<= now - for`` (devices never heard from are not checked), once
  per silence, with ``ts = clock + for`` and value NaN. The device's next
  consumed event clears it. A silence seen only in event time (a gap >= for
  between two consumed readings, e.g. during a backlog) fires at
  ``prev + for`` and clears at the reading that ends it.
* ``started_at`` is the ts of the firing event, ``resolved_at`` that of the
  clearing event; transitions are ordered by event, then rule order.

Transactions: :meth:`RuleEngine.evaluate` and :meth:`RuleEngine.check_absent`
are pure; :meth:`RuleEngine.commit` applies an evaluation after its rows are
stored. Evaluate → store → commit must not interleave with another call on
the engine; ``commit`` refuses a stale evaluation.

Persistence (formats in ``state.py``): ``Evaluation.state_rows()`` gives the
``rule_state`` rows whose state changed (firing, pending ``for`` run, rate
previous reading, count window); ``Evaluation.clock_rows()`` gives the
per-device clocks that changed. Both must be stored with the batch; restore
with :meth:`RuleEngine.load_state` and :meth:`RuleEngine.load_clocks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from ioc.model import CodedList
from ioc.rules import kernels
from ioc.rules.codec import rule_fingerprint
from ioc.rules.kernels import Outcome, Stream, condition_mask
from ioc.rules.messages import render, renderer
from ioc.rules.model import DeviceMeta, Rule
from ioc.rules.registry import DeviceRegistry, scope_masks
from ioc.rules.segments import (
    NONE,
    segment_ends,
    segment_starts,
    segmented_cummax,
    shift_in_segment,
)
from ioc.rules.state import Clocks, ClockUpdate, RuleState, StateUpdate

FIRE, CLEAR = 0, 1
_ACTIONS = ("fire", "clear")


def _group_by_slot(slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(perm, slots[perm])`` for the stable sort of ``slots`` (non-negative ints).

    Sorting the unique keys ``slot * n + i`` and splitting them again is several
    times faster than a stable argsort; it falls back to that if keys could overflow.
    """
    n = len(slots)
    if n and int(slots.max()) < (2**62) // n:
        keys = slots * n + np.arange(n)
        keys.sort()
        s_slot, perm = np.divmod(keys, n)
        return perm, s_slot
    perm = np.argsort(slots, kind="stable")
    return perm, slots[perm]


def _kind_codes(kinds: Sequence[str] | np.ndarray, wanted: list[str]) -> np.ndarray:
    """Position in ``wanted`` of each event's kind, -1 for any other kind.

    A list (what the service hands over) goes through one C-level dict lookup per event,
    several times cheaper than converting it to a numpy text array; numpy text is compared
    as such.
    """
    if isinstance(kinds, CodedList):
        return _kind_codes(kinds.values, wanted)[kinds.codes]
    if isinstance(kinds, np.ndarray):
        codes = np.full(len(kinds), -1, dtype=np.int64)
        for i, kind in enumerate(wanted):
            codes[kinds == kind] = i
        return codes
    position = {kind: i for i, kind in enumerate(wanted)}
    return np.fromiter(map(position.get, kinds, repeat(-1)), dtype=np.int64, count=len(kinds))


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


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule started (``fire``) or stopped (``clear``) holding for a device.

    ``event_index`` is the position in the batch of the event that caused
    it (None for the absence timer); ``value`` is the reading — the rate for
    ``rate`` rules, NaN for absence fires.
    """

    rule_id: str
    device_id: str
    action: str
    ts_us: int
    value: float
    severity: str
    message: str
    kind: str
    event_index: int | None


@dataclass(slots=True)
class Evaluation:
    """The result of evaluating a batch: transitions now, state changes on commit."""

    transitions: list[Transition]
    _generation: int
    _new_devices: list[str]
    _states: list[RuleState]
    _registry: DeviceRegistry
    _clocks: Clocks
    _state_updates: list[StateUpdate] = field(default_factory=list)
    _clock_update: ClockUpdate | None = None

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


class RuleEngine:
    """Evaluates rules over micro-batches, keeping per-(rule, device) state in numpy arrays."""

    def __init__(
        self, rules: Iterable[Rule], devices: Iterable[DeviceMeta] = (),
        max_lateness_s: float = 3600.0,
    ) -> None:
        self._lateness_us = round(max_lateness_s * 1e6)
        self._registry = DeviceRegistry()
        self._capacity = 1024
        self._mark = np.zeros(self._capacity, dtype=np.bool_)  # scratch: devices with a match
        self._clocks = Clocks(self._capacity)
        self._states: list[RuleState] = []
        self._scopes: list[np.ndarray | None] = []
        self._stream_kinds: list[str | None] = []
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

    def evaluate(self, batch: RuleBatch) -> Evaluation:
        """Transitions caused by ``batch`` and the state changes to commit; changes nothing."""
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
        perm, s_slot = _group_by_slot(slots)
        s_ts = batch.ts[perm]
        starts = segment_starts(s_slot)
        ends = segment_ends(starts)
        latest = np.maximum(segmented_cummax(s_ts, starts), self._clocks.latest[s_slot])
        fresh = s_ts >= latest - self._lateness_us
        touched = s_slot[ends]
        changed = latest[ends] != self._clocks.latest[touched]
        kind_changes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        streams: dict[tuple, Stream] = {}
        wanted = [k for k in self._stream_kinds if k is not None]
        s_kind = _kind_codes(batch.kind, wanted)[perm] if wanted else None
        for kind in self._stream_kinds:
            sel = fresh if kind is None else fresh & (s_kind == wanted.index(kind))
            streams[(kind,)], k_slots, k_vals = self._stream(
                perm, sel, s_slot, s_ts, batch.value, self._clocks.for_kind(kind)
            )
            if kind is not None:
                kind_changes[kind] = (k_slots, k_vals)
                changed[np.searchsorted(touched, k_slots)] = True
        if changed.any():
            rows = touched[changed]
            kinds = {k: arr[rows] for k, arr in self._clocks.kinds.items()}
            for k, (k_slots, k_vals) in kind_changes.items():
                kinds[k][np.searchsorted(rows, k_slots)] = k_vals
            ev._clock_update = ClockUpdate(rows, latest[ends][changed], kinds)
        parts = [self._evaluate_rule(pos, rs, streams, ev) for pos, rs in enumerate(self._states)]
        self._collect(ev, [p for p in parts if p is not None], batch)
        return ev

    def _stream(
        self, perm: np.ndarray, sel: np.ndarray, s_slot: np.ndarray, s_ts: np.ndarray,
        value: np.ndarray, clock: np.ndarray,
    ) -> tuple[Stream, np.ndarray, np.ndarray]:
        """The consumed events of one stream, and its clock changes (slots, new values)."""
        p = np.flatnonzero(sel)
        slot, t = s_slot[p], s_ts[p]
        st = segment_starts(slot)
        cm = segmented_cummax(t, st)
        stored = clock[slot]
        prev = np.maximum(shift_in_segment(cm, st, NONE), stored)
        keep = t >= prev
        e = segment_ends(st)
        new = np.maximum(cm[e], stored[e])
        moved = new != stored[e]
        idx = perm[p[keep]]
        kslot = slot[keep]
        stream = Stream(idx, kslot, t[keep], value[idx], prev[keep], segment_starts(kslot))
        return stream, slot[e][moved], new[moved]

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
        self, ev: Evaluation, parts: list[tuple[int, Stream, Outcome]], batch: RuleBatch
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
        order = np.lexsort((action, pos_, index))
        rows = zip(*(c[order].tolist() for c in (index, pos_, action, ts, value, slot)), strict=True)
        # Per-rule parts (ids, severity, message renderer) are looked up once, not per transition.
        per_rule = {}
        for p in np.unique(pos_).tolist():
            rule = self._states[p].rule
            per_rule[p] = (rule.id, rule.severity, rule.kind, renderer(rule))
        metas, provisional = self._registry.metas, ev._new_devices
        n_known = len(metas)
        kinds = batch.kind
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
        self._generation += 1

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
        """Restore clock rows (see ``state.py``)."""
        for device_id, text in rows:
            self._clocks.load(self._slot(device_id), json.loads(text))
        self._generation += 1

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
