"""The compiled threshold pass (ioc/fast/threshold.py) against its reference, the engine's numpy
path (condition masks, the devices that can change, the threshold kernel, the state diff): for
rules of every shape, events in any order within lateness and any batch cuts, the same
transitions, corrections and rule state after every batch, with the accelerators on and off."""

from __future__ import annotations

from hypothesis import given, note, settings

from ioc.rules import Rule, RuleEngine
from tests.unit.fast import accelerated
from tests.unit.rules.rules_testing import batch, bounds, correction_key, key
from tests.unit.rules.test_rules_properties import (
    DEVICES,
    cut_lists,
    lateness,
    rule_sets,
    streams,
)


def run(rules: list[Rule], events: list, cuts: list[int], late: float, on: bool) -> list:
    """Per batch: its transitions, its corrections and every rule's state after it."""
    out = []
    with accelerated(on):
        engine = RuleEngine(rules, DEVICES, late)
        for lo, hi in bounds(len(events), cuts):
            ev = engine.evaluate(batch(events[lo:hi]))
            engine.commit(ev)
            out.append(([key(t) for t in ev.transitions],
                        [correction_key(c) for c in ev.corrections],
                        [{k: v.tolist() for k, v in rs.arrays.items()} for rs in engine._states]))
    return out


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, late=lateness)
def test_the_compiled_pass_gives_the_numpy_paths_transitions_and_state(
        rules: list[Rule], events: list, cuts: list[int], late: float) -> None:
    note(f"{rules=} {events=} {cuts=} {late=}")
    assert run(rules, events, cuts, late, True) == run(rules, events, cuts, late, False)

