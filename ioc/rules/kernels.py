"""Vectorized per-rule kernels over one device-grouped stream of consumed events.

A :class:`Stream` holds the events one rule kind consumes in a batch,
grouped by device slot and, within a device, in event-time order (the engine
sorts each batch, and replays a device whose events come late). Every kernel is a handful
of whole-array operations: run starts and firing state are carried forward
with ``np.maximum.accumulate`` over "last marker" indices, segment by segment,
starting from the state stored for each device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ioc.fast.threshold import NO_CLEAR, OPS, threshold_scan
from ioc.rules.model import Condition
from ioc.rules.segments import NONE, last_marker, segment_ends, segment_starts, shift_in_segment
from ioc.rules.state import RuleState, StateUpdate


@dataclass(slots=True)
class Stream:
    """Consumed events of one kind (or all kinds), grouped by device slot.

    ``index`` points into the batch; ``prev`` is the latest ts of the same
    stream and device before each event (``NONE`` if there was none);
    ``start`` marks each device's first event here.
    """

    index: np.ndarray
    slot: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    prev: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def take(self, mask: np.ndarray) -> Stream:
        """The events where ``mask`` holds (the stream itself when it holds everywhere)."""
        at = np.flatnonzero(mask)
        if len(at) == len(mask):
            return self
        slot = self.slot[at]
        return Stream(
            self.index[at], slot, self.ts[at], self.value[at], self.prev[at],
            segment_starts(slot),
        )


@dataclass(slots=True)
class Outcome:
    """What one rule did on a stream: transitions (positions in it) and new state per device.

    ``fire_ts`` and ``value`` replace the events' ts (absence fires) and
    values (rates) in the transitions they report.
    """

    fire: np.ndarray
    clear: np.ndarray
    slots: np.ndarray
    state: dict[str, np.ndarray]
    fire_ts: np.ndarray | None = None
    value: np.ndarray | None = None


def condition_mask(cond: Condition, values: np.ndarray) -> np.ndarray:
    """Where ``cond`` holds, for a whole column at once."""
    v = cond.value
    if isinstance(v, tuple):
        inside = (values >= v[0]) & (values <= v[1])
        return inside if cond.op == "between" else ~inside
    return {
        ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
        "==": np.equal, "!=": np.not_equal,
    }[cond.op](values, v)


def run_starts(match: np.ndarray, ts: np.ndarray, start: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """For each matching event, the ts of the first event of its unbroken matching run.

    A run that was already open when the batch began continues from the
    stored start; elsewhere the run begins right after the latest break.
    """
    brk = ~match
    f = last_marker(brk | start)
    nxt = np.minimum(f + 1, len(ts) - 1)
    carried = np.where(stored != NONE, stored, ts[f])
    return np.where(brk[f], ts[nxt], carried)


def toggle(
    eligible: np.ndarray, clear: np.ndarray, start: np.ndarray, stored: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fire/clear transitions of a two-state machine, and the state after each event.

    ``eligible`` sets firing, ``clear`` resets it (never both at once);
    anything else keeps it. The state after each event comes from its latest
    eligible/clear event in the segment, or from ``stored`` before that.
    """
    f = last_marker(eligible | clear | start)
    after = np.where(eligible[f], True, np.where(clear[f], False, stored))
    before = shift_in_segment(after, start, False)
    before[start] = stored[start]
    return eligible & ~before, clear & before, after


def threshold(rs: RuleState, s: Stream, match: np.ndarray, clear: np.ndarray) -> Outcome:
    """``when`` (optionally sustained ``for``) with hysteresis ``clear``."""
    ends = segment_ends(s.start)
    firing = rs.arrays["firing"][s.slot]
    state: dict[str, np.ndarray] = {}
    eligible = match
    if "run_start" in rs.arrays:
        run = run_starts(match, s.ts, s.start, rs.arrays["run_start"][s.slot])
        eligible = match & (s.ts - run >= round(rs.rule.for_s * 1e6))
        state["run_start"] = np.where(match[ends], run[ends], NONE)
    fire, clr, after = toggle(eligible, clear, s.start, firing)
    state["firing"] = after[ends]
    return Outcome(fire, clr, s.slot[ends], state)


def _coded(cond: Condition | None) -> tuple[int, float, float]:
    """A condition as the compiled scan reads it (operator code, threshold, upper bound)."""
    if cond is None:
        return NO_CLEAR, 0.0, 0.0
    v = cond.value
    if isinstance(v, tuple):
        return OPS["between" if cond.op == "between" else "outside"], float(v[0]), float(v[1])
    return OPS[cond.op], float(v), 0.0


def threshold_compiled(pos: int, rs: RuleState, s: Stream) -> tuple[Outcome, StateUpdate | None]:
    """A threshold rule over its whole stream in one compiled pass (``ioc/fast/threshold.py``):
    the transitions as masks over ``s`` and the update of the devices whose state changed.
    The same as ``RuleEngine._evaluate_rule``'s numpy path: :func:`condition_mask` and the
    devices that can change, :func:`threshold`, then ``RuleState.diff``."""
    stored_run = rs.arrays.get("run_start")
    fire, clr, slots, firing, run = threshold_scan(
        s.value, s.ts, s.slot, s.start, _coded(rs.rule.when), _coded(rs.rule.clear),
        rs.arrays["firing"], stored_run, round(rs.rule.for_s * 1e6))
    out = Outcome(fire, clr, slots, {})
    if not len(slots):
        return out, None
    values = {"firing": firing} if stored_run is None else {"run_start": run, "firing": firing}
    return out, StateUpdate(pos, slots, values)


def count(rs: RuleState, s: Stream, match: np.ndarray, clear: np.ndarray) -> Outcome:
    """``count``: eligible when the matching event is the N-th within (t - within, t].

    Consumed events are ts-sorted per device, so "N matches in the window"
    is "the match N-1 places back is inside the window". The last N-1 match
    timestamps of each device are carried between batches.
    """
    lag = rs.window
    if not lag:
        return threshold(rs, s, match, clear)
    ends = segment_ends(s.start)
    slots = s.slot[ends]
    stored = rs.arrays["window"][slots]
    seg = np.cumsum(s.start) - 1
    flat = stored.ravel()
    keep = flat != NONE
    mi = np.flatnonzero(match)
    cts = np.concatenate([flat[keep], s.ts[mi]])
    cseg = np.concatenate([np.repeat(np.arange(len(slots)), lag)[keep], seg[mi]])
    cpos = np.concatenate([np.full(int(keep.sum()), -1), mi])
    order = np.argsort(cseg, kind="stable")
    cts, cseg, cpos = cts[order], cseg[order], cpos[order]
    back = np.arange(len(cts)) - lag
    safe = np.maximum(back, 0)
    within_us = round(rs.rule.count.within_s * 1e6)  # type: ignore[union-attr]
    ok = (back >= 0) & (cseg[safe] == cseg) & (cts[safe] > cts - within_us) & (cpos >= 0)
    eligible = np.zeros(len(s), dtype=np.bool_)
    eligible[cpos[ok]] = True
    new_window = stored.copy()
    if len(cts):
        cends = segment_ends(segment_starts(cseg))
        pos = cends[:, None] - np.arange(lag - 1, -1, -1)[None, :]
        safe_pos = np.maximum(pos, 0)
        same = (pos >= 0) & (cseg[safe_pos] == cseg[cends][:, None])
        new_window[cseg[cends]] = np.where(same, cts[safe_pos], NONE)
    fire, clr, after = toggle(eligible, clear, s.start, rs.arrays["firing"][s.slot])
    return Outcome(fire, clr, slots, {"firing": after[ends], "window": new_window})


def rate(rs: RuleState, s: Stream, clear_cond: Condition | None) -> Outcome:
    """``rate``: (v - v_prev) / (t - t_prev) * per against the device's previous reading.

    ``s`` holds only events strictly later than every earlier one, so
    t - t_prev > 0. A device's first reading only sets the previous value.
    """
    ends = segment_ends(s.start)
    slots = s.slot[ends]
    pt = shift_in_segment(s.ts, s.start, NONE)
    pv = shift_in_segment(s.value, s.start, 0.0)
    pt[s.start] = rs.arrays["prev_t"][s.slot[s.start]]
    pv[s.start] = rs.arrays["prev_v"][s.slot[s.start]]
    valid = pt != NONE
    per_us = rs.rule.rate.per_s * 1e6  # type: ignore[union-attr]
    dt = np.where(valid, s.ts - pt, 1).astype(np.float64)
    r = (s.value - pv) / dt * per_us
    rated = Stream(s.index, s.slot, s.ts, r, s.prev, s.start).take(valid)
    match = condition_mask(rs.rule.rate.cond, rated.value)  # type: ignore[union-attr]
    clear = condition_mask(clear_cond, rated.value) if clear_cond else ~match
    if clear_cond:
        match &= ~clear
    inner = threshold(rs, rated, match, clear)
    state = rs.gather(slots)
    state["prev_t"] = s.ts[ends]
    state["prev_v"] = s.value[ends]
    at = np.searchsorted(slots, inner.slots)
    for name, values in inner.state.items():
        state[name][at] = values
    fire = np.zeros(len(s), dtype=np.bool_)
    clr = np.zeros(len(s), dtype=np.bool_)
    where_valid = np.flatnonzero(valid)
    fire[where_valid[inner.fire]] = True
    clr[where_valid[inner.clear]] = True
    return Outcome(fire, clr, slots, state, value=r)


def absent(rs: RuleState, s: Stream) -> Outcome:
    """``absent`` in event time: a silence of ``for`` between two readings fires and clears.

    A device already firing (from the wall-clock timer) clears at its next
    reading; a gap found between readings fires at ``prev + for`` and clears
    at the reading that ends it.
    """
    ends = segment_ends(s.start)
    for_us = round(rs.rule.absent.for_s * 1e6)  # type: ignore[union-attr]
    known = s.prev != NONE
    gap = known & (np.where(known, s.ts, 0) - np.where(known, s.prev, 0) >= for_us)
    was_firing = s.start & rs.arrays["firing"][s.slot]
    fire = gap & ~was_firing
    return Outcome(
        fire, was_firing | fire, s.slot[ends], {"firing": np.zeros(len(ends), dtype=np.bool_)},
        fire_ts=np.where(fire, s.prev + for_us, 0),
    )
