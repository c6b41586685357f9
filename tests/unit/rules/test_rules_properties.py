"""Property tests: the vectorized engine equals the per-event reference, whatever the batch cuts."""

from __future__ import annotations

import itertools
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ioc.rules import (
    Absent,
    Condition,
    Count,
    DeviceMeta,
    Rate,
    Rule,
    RuleBatch,
    RuleEngine,
    Where,
)
from ioc.rules.model import OPS
from ioc.rules.reference import ReferenceEvaluator
from tests.unit.rules.rules_testing import S, batch, key, run_cut

DEVICES = [
    DeviceMeta("d0", "Trạm 0", "Vị Thanh", ("river",)),
    DeviceMeta("d1", "Trạm 1", "Ngã Bảy", ("river", "tide")),
    DeviceMeta("d2", None, "Vị Thanh", ()),
]
DEVICE_IDS = ["d0", "d1", "d2", "new-a", "new-b"]  # the last two are auto-registered
KINDS = ["w", "f"]
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(OPS))
    if op in ("between", "outside"):
        lo = draw(st.integers(0, 3))
        return Condition(op, (float(lo), float(lo + draw(st.integers(0, 2)))))
    return Condition(op, float(draw(st.integers(0, 4))))


wheres = st.sampled_from([
    Where(), Where(), Where(), Where(districts=("Vị Thanh",)), Where(tags=("river",)),
    Where(tags=("river", "tide")), Where(device_ids=("d1", "new-a")),
])


@st.composite
def event_rules(draw: st.DrawFn, i: int) -> Rule:
    """Any rule type but absent, with random parameters."""
    shape = draw(st.sampled_from(["when", "for", "count", "rate", "rate-for"]))
    common = {
        "id": f"r{i}", "kind": draw(st.sampled_from([*KINDS, None])), "where": draw(wheres),
        "auto_resolve": draw(st.booleans()), "severity": draw(st.sampled_from(["info", "critical"])),
        "clear": draw(st.none() | conditions()), "message": "{rule_id} {device_name} {value} {ts:%S}",
    }
    for_s = float(draw(st.integers(1, 4)))
    if shape == "when":
        return Rule(when=draw(conditions()), **common)
    if shape == "for":
        return Rule(when=draw(conditions()), for_s=for_s, **common)
    if shape == "count":
        count = Count(draw(st.integers(1, 4)), float(draw(st.integers(1, 6))))
        return Rule(when=draw(conditions()), count=count, **common)
    rate = Rate(float(draw(st.sampled_from([1, 2, 60]))), draw(conditions()))
    return Rule(rate=rate, for_s=for_s if shape == "rate-for" else 0.0, **common)


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, str, int, float]]:
    """Events with ties, gaps, reordering and (depending on lateness) late arrivals."""
    devices = draw(st.lists(st.sampled_from(DEVICE_IDS), min_size=1, max_size=3, unique=True))
    min_size = draw(st.sampled_from([0, 40]))  # long streams make `for` and `count` fire
    steps = draw(st.lists(st.sampled_from([0, 1, 1, 1, 2, 3, 7]), min_size=min_size, max_size=80))
    t = 1_700_000_000 * S
    events = []
    for step in steps:
        t += step * S
        jitter = draw(st.sampled_from([0, 0, 0, 0, 0, -1, -2, -5, -20])) * S
        events.append((
            draw(st.sampled_from(devices)), draw(st.sampled_from(KINDS)), t + jitter,
            float(draw(st.integers(0, 4))),
        ))
    return events


cut_lists = st.lists(st.integers(0, 80), max_size=8)
lateness = st.sampled_from([0.0, 3.0, 3600.0])


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    return [draw(event_rules(i)) for i in range(draw(st.integers(1, 5)))]


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, late=lateness)
def test_engine_matches_reference_under_any_cut(
    rules: list[Rule], events: list, cuts: list[int], late: float
) -> None:
    b = batch(events)
    expected = [key(t) for t in ReferenceEvaluator(rules, DEVICES, late).run(b)]
    assert run_cut(RuleEngine(rules, DEVICES, late), b, cuts) == expected


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, late=lateness)
def test_batch_cuts_never_change_the_outcome(
    rules: list[Rule], events: list, cuts: list[int], late: float
) -> None:
    b = batch(events)
    whole = run_cut(RuleEngine(rules, DEVICES, late), b)
    assert run_cut(RuleEngine(rules, DEVICES, late), b, cuts) == whole


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, crash=st.integers(0, 80))
def test_restart_from_persisted_rows_equals_uninterrupted_run(
    rules: list[Rule], events: list, cuts: list[int], crash: int
) -> None:
    """Rows upserted batch by batch, then kill -9: a new engine loaded from them continues exactly."""
    b = batch(events)
    whole = run_cut(RuleEngine(rules, DEVICES, 3.0), b)
    crash = min(crash, len(b))
    first = RuleEngine(rules, DEVICES, 3.0)
    state_table: dict[tuple[str, str], str] = {}
    clock_table: dict[str, str] = {}
    got: list[tuple] = []
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < crash), crash]
    for lo, hi in itertools.pairwise(bounds):
        ev = first.evaluate(b.take(np.arange(lo, hi)))
        got += [key(t, lo) for t in ev.transitions]
        state_table.update({(r, d): s for r, d, s in ev.state_rows()})
        clock_table.update(dict(ev.clock_rows()))
        first.commit(ev)
    second = RuleEngine(rules, DEVICES, 3.0)
    assert second.load_state((r, d, s) for (r, d), s in state_table.items()) == []
    second.load_clocks(clock_table.items())
    rest = run_cut(second, b.take(np.arange(crash, len(b))))
    got += [(*k[:-1], k[-1] + crash) for k in rest]
    assert got == whole


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists)
def test_state_rows_hold_exactly_the_changed_state(
    rules: list[Rule], events: list, cuts: list[int]
) -> None:
    """Upserting every batch's rows reproduces the full export: nothing missed, nothing stale."""
    b = batch(events)
    engine = RuleEngine(rules, DEVICES, 3.0)
    table: dict[tuple[str, str], str] = {}
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(b)), len(b)]
    for lo, hi in itertools.pairwise(bounds):
        ev = engine.evaluate(b.take(np.arange(lo, hi)))
        rows = ev.state_rows()
        assert len({(r, d) for r, d, _ in rows}) == len(rows)
        for r, d, s in rows:
            assert table.get((r, d), json.dumps({"def": json.loads(s)["def"]})) != s
        table.update({(r, d): s for r, d, s in rows})
        engine.commit(ev)
    non_default = {k: v for k, v in table.items() if set(json.loads(v)) != {"def"}}
    assert non_default == {(r, d): s for r, d, s in engine.export_state()}


absent_rules = st.lists(
    st.builds(
        lambda i, kind, for_s, where, auto: Rule(
            id=f"a{i}", kind=kind, absent=Absent(float(for_s)), where=where, auto_resolve=auto
        ),
        st.integers(0, 2), st.sampled_from([*KINDS, None]), st.integers(1, 8), wheres, st.booleans(),
    ),
    min_size=1, max_size=3, unique_by=lambda r: r.id,
)


@PROPS
@given(
    rules=absent_rules, events=streams(),
    checks=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 30))),
)
def test_absence_matches_reference_with_timer_checks(
    rules: list[Rule], events: list, checks: list[tuple[int, int]]
) -> None:
    """Batches interleaved with wall-clock checks at ``latest ts + k seconds``."""
    b = batch(events)
    ref = ReferenceEvaluator(rules, DEVICES, 3.0)
    engine = RuleEngine(rules, DEVICES, 3.0)
    points = sorted({min(i, len(b)) for i, _ in checks} | {len(b)})
    pending = dict(checks)
    expected, got, lo = [], [], 0
    for hi in points:
        part: RuleBatch = b.take(np.arange(lo, hi))
        expected += [key(t, lo) for t in ref.run(part)]
        ev = engine.evaluate(part)
        got += [key(t, lo) for t in ev.transitions]
        engine.commit(ev)
        if hi in pending and hi:
            now = int(b.ts[:hi].max()) + pending[hi] * S
            expected += [key(t) for t in ref.check_absent(now)]
            ev = engine.check_absent(now)
            got += [key(t) for t in ev.transitions]
            engine.commit(ev)
        lo = hi
    assert got == expected
