"""Backtest: what a rule would have done over stored history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ioc.rules.engine import RuleBatch, RuleEngine, Transition
from ioc.rules.model import DeviceMeta, Rule


def backtest(
    rule: Rule, batch: RuleBatch, devices: Iterable[DeviceMeta], until_us: int | None = None
) -> list[Transition]:
    """Transitions of ``rule`` over ``batch`` through a fresh engine, as one batch.

    The engine evaluates each device's events in event-time order whatever their order in
    ``batch``, and a fresh engine has no horizon, so every event counts: the result is what
    the live service stores for the same events. ``event_index`` refers to positions in the
    given ``batch``. With ``until_us``, absence still ongoing at that instant fires too (as
    the timer would have). A disabled rule is evaluated as if enabled.
    """
    engine = RuleEngine([replace(rule, enabled=True)], devices)
    ev = engine.evaluate(batch)
    engine.commit(ev)
    out = list(ev.transitions)
    if until_us is not None:
        out.extend(engine.check_absent(until_us).transitions)
    return out
