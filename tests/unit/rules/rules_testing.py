"""Helpers shared by the rules tests: comparable transitions and batch cutting."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ioc.rules import RuleBatch, RuleEngine, Transition

S = 1_000_000  # one second in microseconds


def key(t: Transition, offset: int = 0) -> tuple:
    """Everything observable about a transition, NaN made comparable, index made global."""
    value = "nan" if math.isnan(t.value) else t.value
    index = None if t.event_index is None else t.event_index + offset
    return (t.rule_id, t.device_id, t.action, t.ts_us, value, t.severity, t.message, t.kind, index)


def batch(events: Sequence[tuple[str, str, int, float]]) -> RuleBatch:
    """A batch from ``(device_id, kind, ts_us, value)`` tuples."""
    return RuleBatch(
        [e[0] for e in events], [e[1] for e in events],
        np.array([e[2] for e in events], dtype=np.int64),
        np.array([e[3] for e in events], dtype=np.float64),
    )


def run_cut(engine: RuleEngine, b: RuleBatch, cuts: Sequence[int] = ()) -> list[tuple]:
    """Evaluate ``b`` cut at ``cuts`` (committing each piece); transitions with global indices."""
    out: list[tuple] = []
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(b)), len(b)]
    for lo, hi in itertools.pairwise(bounds):
        ev = engine.evaluate(b.take(np.arange(lo, hi)))
        out += [key(t, lo) for t in ev.transitions]
        engine.commit(ev)
    return out
