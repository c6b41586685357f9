"""Backtest: what a rule would have done over stored history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from ioc.rules.engine import RuleBatch, RuleEngine, Transition
from ioc.rules.model import DeviceMeta, Rule


def backtest(
    rule: Rule, batch: RuleBatch, devices: Iterable[DeviceMeta], until_us: int | None = None
) -> list[Transition]:
    """Transitions of ``rule`` over ``batch`` replayed in ts order through a fresh engine.

    History is sorted by ts (stably, so equal timestamps keep their order),
    so no event is late or out of order (lateness cannot apply). ``event_index`` refers to positions
    in the given ``batch``. With ``until_us``, absence still ongoing at that
    instant fires too (as the timer would have). A disabled rule is
    evaluated as if enabled.
    """
    order = np.argsort(batch.ts, kind="stable")
    engine = RuleEngine([replace(rule, enabled=True)], devices)
    ev = engine.evaluate(batch.take(order))
    engine.commit(ev)
    out = [
        _reindex(t, int(order[t.event_index])) if t.event_index is not None else t
        for t in ev.transitions
    ]
    if until_us is not None:
        out.extend(engine.check_absent(until_us).transitions)
    return out


def _reindex(t: Transition, index: int) -> Transition:
    return Transition(
        t.rule_id, t.device_id, t.action, t.ts_us, t.value, t.severity, t.message, t.kind, index
    )
