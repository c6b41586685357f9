"""Property tests: the vectorized engine equals the per-event reference, whatever the batch cuts.

Rules of every shape and scope, all operators, messages. Events arriving in event-time order give
exactly the reference's transitions; in any other order within lateness, the alerts that the
transitions and corrections make are the reference's (``test_event_time.py`` has more of those).
"""

from __future__ import annotations

import json
import os

import numpy as np
from hypothesis import HealthCheck, given, note, settings
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
from ioc.rules.corrections import AlertRecord
from ioc.rules.model import OPS
from ioc.rules.reference import ReferenceEvaluator, reference_alerts
from tests.unit.rules.rules_testing import (
    AlertBook,
    Event,
    S,
    StoredRules,
    batch,
    bounds,
    by_device,
    correction_key,
    key,
    run_book,
)

DEVICES = [
    DeviceMeta("d0", "Trạm 0", "Vị Thanh", ("river",)),
    DeviceMeta("d1", "Trạm 1", "Ngã Bảy", ("river", "tide")),
    DeviceMeta("d2", None, "Vị Thanh", ()),
]
DEVICE_IDS = ["d0", "d1", "d2", "new-a", "new-b"]  # the last two are auto-registered
KINDS = ["w", "f"]
PROPS = settings(max_examples=int(os.environ.get("IOC_RULES_EXAMPLES", "150")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


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


def in_event_time(events: list[Event]) -> list[Event]:
    """The events in the order the reference evaluates each device's: (ts, kind, value)."""
    return sorted(events, key=lambda e: (e[2], e[1], e[3]))


def clean_cuts(events: list[Event], cuts: list[int]) -> list[int]:
    """The cuts of event-time ordered ``events`` that split no timestamp: no event of a batch
    is then at or before one of an earlier batch (no replay, transitions only)."""
    return [c for c in cuts if 0 < c < len(events) and events[c][2] > events[c - 1][2]]


def within_lateness(events: list[Event], lateness_s: float) -> list[Event]:
    """The events (in arrival order) no more than ``lateness_s`` older than their device's newest
    before them: the ones that count whatever the batch cuts."""
    newest: dict[str, int] = {}
    kept = []
    for e in events:
        if e[2] >= newest.get(e[0], e[2]) - round(lateness_s * S):
            kept.append(e)
            newest[e[0]] = max(e[2], newest.get(e[0], e[2]))
    return kept


def split_by_resolution(rules: list[Rule], records: list[AlertRecord]) -> list[AlertRecord]:
    """The alerts of ``auto_resolve`` rules: those of the others keep fires a late event shows
    were never made (an operator closes them; they get no corrections)."""
    auto = {r.id for r in rules if r.auto_resolve}
    return [r for r in records if r.rule_id in auto]


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, late=lateness)
def test_engine_matches_reference_under_any_cut(
    rules: list[Rule], events: list, cuts: list[int], late: float
) -> None:
    """Arriving in event-time order, cut anywhere between two timestamps: exactly the reference's
    transitions (values, messages, severities, event indexes), and no corrections."""
    note(f"{rules=} {events=} {cuts=} {late=}")
    ordered = in_event_time(events)
    b = batch(ordered)
    expected = by_device(key(t) for t in ReferenceEvaluator(rules, DEVICES).run(b))
    engine = RuleEngine(rules, DEVICES, late)
    got: list[tuple] = []
    for lo, hi in bounds(len(b), clean_cuts(ordered, cuts)):
        ev = engine.evaluate(b.take(np.arange(lo, hi)))
        assert ev.corrections == []
        got += by_device(key(t, lo) for t in ev.transitions)
        engine.commit(ev)
    assert by_device(got) == expected


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, late=lateness)
def test_batch_cuts_never_change_the_outcome(
    rules: list[Rule], events: list, cuts: list[int], late: float
) -> None:
    """Events in arrival order (ties, jitter) within lateness: the alerts of any cuts are those
    of one batch, and the reference's; ``auto_resolve: false`` rules miss none of its fires."""
    note(f"{rules=} {events=} {cuts=} {late=}")
    arrivals = within_lateness(events, late)
    expected = reference_alerts(rules, DEVICES, batch(arrivals))
    whole = run_book(RuleEngine(rules, DEVICES, late), arrivals)
    assert whole.records() == expected
    engine = RuleEngine(rules, DEVICES, late)
    book, fires = AlertBook(), set()
    for lo, hi in bounds(len(arrivals), cuts):
        ev = engine.evaluate(batch(arrivals[lo:hi]))
        book.apply(ev.transitions, ev.corrections)
        fires |= {(t.rule_id, t.device_id, t.ts_us) for t in ev.transitions if t.action == "fire"}
        engine.commit(ev)
    assert split_by_resolution(rules, book.records()) == split_by_resolution(rules, expected)
    manual = {r.id for r in rules if not r.auto_resolve}
    assert {(t.rule_id, t.device_id, t.ts_us)
            for t in ReferenceEvaluator(rules, DEVICES).run(batch(arrivals))
            if t.rule_id in manual and t.action == "fire"} <= fires


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists, crash=st.integers(0, 8))
def test_restart_from_persisted_rows_equals_uninterrupted_run(
    rules: list[Rule], events: list, cuts: list[int], crash: int
) -> None:
    """Rows stored batch by batch as the service does (rule state, checkpoints, horizons, the
    events; clocks derived from them), then kill -9: a new engine loaded from them continues
    exactly — the same transitions and corrections, batch for batch. Events come with jitter
    beyond lateness, so some are ignored."""
    note(f"{rules=} {events=} {cuts=} {crash=}")
    pieces = bounds(len(events), cuts)
    crash = min(crash, len(pieces))
    whole = RuleEngine(rules, DEVICES, 3.0)
    engine = RuleEngine(rules, DEVICES, 3.0)
    db = StoredRules()
    for i, (lo, hi) in enumerate(pieces):
        if i == crash:
            engine = db.restore(rules, DEVICES, 3.0)
        part = events[lo:hi]
        ev, expected = engine.evaluate(batch(part)), whole.evaluate(batch(part))
        # device slots are numbered in another order after a restart: compare device by device
        assert by_device(map(key, ev.transitions)) == by_device(map(key, expected.transitions))
        assert by_device(map(correction_key, ev.corrections)) == by_device(
            map(correction_key, expected.corrections))
        db.store(part, ev)
        engine.commit(ev)
        whole.commit(expected)
    assert sorted(engine.export_state()) == sorted(whole.export_state())
    assert sorted(engine.export_clocks()) == sorted(whole.export_clocks())


@PROPS
@given(rules=rule_sets(), events=streams(), cuts=cut_lists)
def test_state_rows_hold_exactly_the_changed_state(
    rules: list[Rule], events: list, cuts: list[int]
) -> None:
    """Upserting every batch's rows reproduces the full export: nothing missed, nothing stale,
    and no row that repeats the state already stored (replays included)."""
    note(f"{rules=} {events=} {cuts=}")
    engine = RuleEngine(rules, DEVICES, 3.0)
    table: dict[tuple[str, str], str] = {}
    for lo, hi in bounds(len(events), cuts):
        ev = engine.evaluate(batch(events[lo:hi]))
        rows = ev.state_rows()
        assert len({(r, d) for r, d, _ in rows}) == len(rows)
        for r, d, s in rows:
            default = json.dumps({"def": json.loads(s)["def"]}, separators=(",", ":"))
            assert table.get((r, d), default) != s
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
    """Batches in event-time order interleaved with wall-clock checks at ``latest ts + k
    seconds``, never later than the next event (the wall clock is not behind the events):
    exactly the reference's transitions, fed the same way."""
    note(f"{rules=} {events=} {checks=}")
    ordered = in_event_time(events)
    b = batch(ordered)
    ref = ReferenceEvaluator(rules, DEVICES)
    engine = RuleEngine(rules, DEVICES, 3.0)
    points = sorted({min(i, len(b)) for i, _ in checks} | {len(b)})
    points = [p for p in points if p in (0, len(b)) or p in clean_cuts(ordered, [p])]
    pending = dict(checks)
    expected, got, lo = [], [], 0
    for hi in points:
        part: RuleBatch = b.take(np.arange(lo, hi))
        expected += by_device(key(t, lo) for t in ref.run(part))
        ev = engine.evaluate(part)
        assert ev.corrections == []
        got += by_device(key(t, lo) for t in ev.transitions)
        engine.commit(ev)
        if hi in pending and hi:
            now = int(b.ts[:hi].max()) + pending[hi] * S
            if hi < len(b):
                now = min(now, int(b.ts[hi]))
            expected += by_device(key(t) for t in ref.check_absent(now))
            ev = engine.check_absent(now)
            got += by_device(key(t) for t in ev.transitions)
            engine.commit(ev)
        lo = hi
    assert got == expected
