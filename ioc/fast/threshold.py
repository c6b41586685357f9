"""A threshold rule over its device-grouped stream in one compiled pass: which events match and
clear, the devices whose state can change, the fires and clears, and the state updates.

Reference: the numpy path in ``RuleEngine._evaluate_rule`` (``ioc/rules/engine.py``):
``_hot_events`` (condition masks, then only the devices that match or are firing or pending),
``kernels.threshold`` (last-marker scans for the run starts and the firing state) and
``RuleState.diff`` (the devices whose state changed). It is the engine's most used rule type,
and those steps make an array per step where this reads each event once and writes only the
transitions and the changed devices. The same outputs for every input
(``tests/unit/fast/test_threshold.py``).

The signature is given, so that numba compiles (or loads from its cache) when the module is
imported at start, not when the first batch waits for its rules.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NONE = np.iinfo(np.int64).min  # "no timestamp", as ioc/rules/segments.py
# Condition operators, as ioc/rules/kernels.py condition_mask reads them.
OPS = {">": 0, ">=": 1, "<": 2, "<=": 3, "==": 4, "!=": 5, "between": 6, "outside": 7}
NO_CLEAR = -1


def threshold_scan(
    value: np.ndarray, ts: np.ndarray, slot: np.ndarray, start: np.ndarray,
    when: tuple[int, float, float], clear: tuple[int, float, float],
    firing: np.ndarray, run_start: np.ndarray | None, for_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fires and clears (masks over the stream), then the devices whose state changed with
    their firing state and, with a sustained ``for`` (``run_start``: the stored run start per
    slot), the start of the run still matching (``NONE`` if none).

    ``when`` and ``clear`` are (operator code from :data:`OPS`, threshold, upper bound of a
    range); ``clear`` with :data:`NO_CLEAR` means "when no longer holds". ``firing`` is the
    stored state per slot.
    """
    n = len(value)
    fire = np.zeros(n, np.bool_)
    clr = np.zeros(n, np.bool_)
    slots = np.empty(n, np.int64)
    new_firing = np.empty(n, np.bool_)
    new_run = np.empty(n, np.int64)
    has_for = run_start is not None
    runs = run_start if run_start is not None else np.empty(0, np.int64)
    k = _threshold_scan(value, ts, slot, start, when[0], when[1], when[2], clear[0], clear[1],
                        clear[2], firing, runs, has_for, for_us, fire, clr, slots, new_firing,
                        new_run)
    return fire, clr, slots[:k], new_firing[:k], new_run[:k]


@njit("b1(f8, i8, f8, f8)", cache=True, nogil=True, _nrt=False, inline="always")
def _holds(x, op, v, hi):
    if op == 0:
        return x > v
    if op == 1:
        return x >= v
    if op == 2:
        return x < v
    if op == 3:
        return x <= v
    if op == 4:
        return x == v
    if op == 5:
        return x != v
    inside = x >= v and x <= hi
    return inside if op == 6 else not inside


@njit("i8(f8[:], i8[:], i8[:], b1[:], i8, f8, f8, i8, f8, f8, b1[:], i8[:], b1, i8,"
      " b1[:], b1[:], i8[:], b1[:], i8[:])", cache=True, nogil=True, _nrt=False)
def _threshold_scan(value, ts, slot, start, when_op, when_v, when_hi, clear_op, clear_v,
                    clear_hi, firing, runs, has_for, for_us, fire, clr, slots, new_firing,
                    new_run):
    n = len(value)
    k = 0
    state = False
    run = 0
    for i in range(n):
        s = slot[i]
        if start[i]:
            state = firing[s]
            if has_for:
                run = runs[s] if runs[s] != NONE else ts[i]
        x = value[i]
        m = _holds(x, when_op, when_v, when_hi)
        if clear_op == NO_CLEAR:
            c = not m
        else:
            c = _holds(x, clear_op, clear_v, clear_hi)
            m = m and not c
        if has_for and not m:
            # The next matching run starts at the next event.
            run = ts[i + 1] if i + 1 < n else ts[i]
        eligible = m and (not has_for or ts[i] - run >= for_us)
        fire[i] = eligible and not state
        clr[i] = c and state
        if eligible:
            state = True
        elif c:
            state = False
        if i + 1 == n or start[i + 1]:
            end_run = run if m else NONE
            if state != firing[s] or (has_for and end_run != runs[s]):
                slots[k] = s
                new_firing[k] = state
                new_run[k] = end_run
                k += 1
    return k
