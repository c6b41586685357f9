"""Rules in event time (issue #21): whatever the arrival order and the batch cuts of events within
lateness, the alerts — transitions and corrections applied by the alert book — are those of
evaluating each device's events sorted, as the reference evaluator does."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from unittest import mock

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ioc.rules import (
    Absent,
    Condition,
    Count,
    DeviceMeta,
    Evaluation,
    Rate,
    Rule,
    RuleEngine,
    Transition,
    backtest,
    history,
)
from ioc.rules.corrections import alert_records
from ioc.rules.history import FOLD_AT
from ioc.rules.reference import ReferenceEvaluator, reference_alerts
from tests.unit.rules import test_rules_properties as props
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

PROPS = settings(max_examples=int(os.environ.get("IOC_RULES_EXAMPLES", "60")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0 = 1_700_000_000 * S
KINDS = ("w", "f")
DEVICE_IDS = ("d0", "d1", "d2", "d3")
DEVICES = [DeviceMeta(d) for d in DEVICE_IDS]


# -- rules ----------------------------------------------------------------------------------


def _rule(draw: st.DrawFn, i: int, shape: str, auto_resolve: bool) -> Rule:
    kind = draw(st.sampled_from(KINDS))
    level = float(draw(st.integers(1, 8)))
    common = {"id": f"{shape}{i}", "auto_resolve": auto_resolve}
    if shape == "threshold":
        return Rule(kind=kind, when=Condition(">", level), **common)
    if shape == "kindless":
        return Rule(when=Condition(">", level), **common)
    if shape == "for":
        return Rule(kind=draw(st.sampled_from([*KINDS, None])), when=Condition(">", level),
                    for_s=float(draw(st.integers(1, 20))),
                    clear=Condition("<", level - draw(st.integers(0, 3))), **common)
    if shape == "count":
        return Rule(kind=kind, when=Condition(">=", level),
                    count=Count(draw(st.integers(1, 4)), float(draw(st.integers(2, 30)))), **common)
    if shape == "rate":
        op = draw(st.sampled_from([">", "<"]))
        return Rule(kind=kind, rate=Rate(float(draw(st.sampled_from([1, 10, 60]))),
                                         Condition(op, float(draw(st.integers(-6, 6))))), **common)
    assert shape == "absent"
    return Rule(kind=draw(st.sampled_from([*KINDS, None])),
                absent=Absent(float(draw(st.integers(3, 30)))), **common)


SHAPES = ("threshold", "kindless", "for", "count", "rate", "absent")


@st.composite
def rule_sets(draw: st.DrawFn, auto_resolve: bool = True) -> list[Rule]:
    """One to five rules of the shapes the issue names, random parameters."""
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=5))
    return [_rule(draw, i, shape, auto_resolve) for i, shape in enumerate(shapes)]


# -- events and their arrival -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Events in event-time order, the order they arrive in, batch cuts, lateness, timer."""

    events: list[Event]
    arrivals: list[Event]
    cuts: list[int]
    lateness_s: float
    now_us: int | None


@st.composite
def histories(draw: st.DrawFn, span_s: int = 120, max_events: int = 80) -> list[Event]:
    """Events of 2–4 devices and two kinds over ``span_s`` seconds: ties, gaps, bursts."""
    devices = draw(st.lists(st.sampled_from(DEVICE_IDS), min_size=2, max_size=4, unique=True))
    raw = draw(st.lists(st.tuples(st.sampled_from(devices), st.sampled_from(KINDS),
                                  st.integers(0, span_s), st.integers(0, 9)),
                        min_size=draw(st.sampled_from([25, 50, 8, 0])), max_size=max_events))
    return sorted((d, k, T0 + t * S, float(v)) for d, k, t, v in raw)


@st.composite
def cases(draw: st.DrawFn, span_s: int = 120, bounded: bool = False, wild: bool = False) -> Case:
    """Either any permutation under a lateness longer than the history, or a bounded disorder
    (each event delayed by at most the lateness) under a short lateness, so that checkpoints
    age, horizons move and replays start from every kind of checkpoint. ``bounded``: always
    the latter; ``wild``: or any permutation under a short lateness (events beyond it)."""
    events = draw(histories(span_s))
    n = len(events)
    mode = 0 if bounded else draw(st.integers(0, 3 if wild else 2))
    if mode >= 2:
        lateness = float(span_s * 10 if mode == 2 else draw(st.sampled_from([1, 5, 12, 30])))
        arrivals = draw(st.permutations(events))
    else:
        lateness = float(draw(st.sampled_from([1, 5, 12, 30])))
        delays = draw(st.lists(st.integers(0, int(lateness)), min_size=n, max_size=n))
        ties = draw(st.permutations(range(n)))
        order = sorted(range(n), key=lambda i: (events[i][2] + delays[i] * S, ties[i]))
        arrivals = [events[i] for i in order]
    cuts = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=12))
    now = None
    if n and draw(st.booleans()):
        now = max(e[2] for e in events) + draw(st.integers(0, 40)) * S
    return Case(events, arrivals, cuts, lateness, now)


def reference(rules: list[Rule], case: Case) -> list:
    return reference_alerts(rules, DEVICES, batch(case.events), now_us=case.now_us)


# -- (a) any arrival order, any cuts ------------------------------------------------------------


@PROPS
@given(rules=rule_sets(), case=cases())
def test_any_arrival_order_and_cuts_give_the_reference_alerts(rules: list[Rule], case: Case) -> None:
    note(f"{rules=}\n{case=}")
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    book = run_book(engine, case.arrivals, case.cuts, case.now_us)
    assert book.records() == reference(rules, case)


# -- (b) equal timestamps in different batches ------------------------------------------------


@st.composite
def tied_cases(draw: st.DrawFn) -> Case:
    """Few distinct timestamps, arriving in ts order with ties in any order and cut anywhere,
    under a lateness down to zero (a tie of the newest event is still within it)."""
    events = draw(histories(span_s=3))
    ties = draw(st.permutations(range(len(events))))
    order = sorted(range(len(events)), key=lambda i: (events[i][2], ties[i]))
    cuts = draw(st.lists(st.integers(1, max(1, len(events) - 1)), max_size=30))
    now = max((e[2] for e in events), default=T0) + draw(st.integers(0, 40)) * S
    return Case(events, [events[i] for i in order], cuts, float(draw(st.sampled_from([0, 1, 2]))),
                now)


@PROPS
@given(rules=rule_sets(), case=tied_cases())
def test_equal_timestamps_in_different_batches_give_the_reference_alerts(
    rules: list[Rule], case: Case
) -> None:
    note(f"{rules=}\n{case=}")
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    book = run_book(engine, case.arrivals, case.cuts, case.now_us)
    assert book.records() == reference(rules, case)


@PROPS
@given(rules=rule_sets(), case=cases(),
       checks=st.lists(st.tuples(st.integers(0, 12), st.integers(-20, 40)), max_size=6),
       last=st.integers(0, 40))
def test_absence_timer_between_batches_gives_the_reference_alerts(
    rules: list[Rule], case: Case, checks: list[tuple[int, int]], last: int
) -> None:
    """The absence timer runs between batches at wall-clock instants (never going back), the
    last after every batch: a silence it reported that later events show was shorter is
    withdrawn, a real one is kept, and the alerts are the reference's as of the last instant."""
    note(f"{rules=}\n{case=}\n{checks=} {last=}")
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    book = AlertBook()
    pieces = bounds(len(case.arrivals), case.cuts)
    at = {min(i, len(pieces) - 1): offset for i, offset in checks} if pieces else {}
    at[len(pieces)] = last
    now, newest = T0, T0
    for i, (lo, hi) in enumerate([*pieces, (0, 0)]):
        part = case.arrivals[lo:hi]
        ev = engine.evaluate(batch(part))
        book.apply(ev.transitions, ev.corrections)
        engine.commit(ev)
        newest = max([newest, *(e[2] for e in part)])
        if i in at:
            now = max(now, newest + at[i] * S)
            ev = engine.check_absent(now)
            book.apply(ev.transitions, ev.corrections)
            engine.commit(ev)
    assert book.records() == reference_alerts(rules, DEVICES, batch(case.events), now_us=now)


# -- (c) restart from the stored rows ---------------------------------------------------------


def _emitted(ev: Evaluation) -> tuple[list[tuple], list[tuple]]:
    """Transitions and corrections device by device (a restart numbers devices differently)."""
    return by_device(map(key, ev.transitions)), by_device(map(correction_key, ev.corrections))


@PROPS
@given(rules=rule_sets(), case=cases(wild=True), crash=st.integers(0, 12))
def test_restart_from_stored_rows_continues_like_an_uninterrupted_run(
    rules: list[Rule], case: Case, crash: int
) -> None:
    """Rows stored batch by batch as the service does, then kill -9 at a batch boundary: an
    engine restored from them emits what the uninterrupted one emits, batch for batch, and the
    alert book ends the same."""
    note(f"{rules=}\n{case=}\n{crash=}")
    pieces = bounds(len(case.arrivals), case.cuts)
    crash = min(crash, len(pieces))
    whole = RuleEngine(rules, DEVICES, case.lateness_s)
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    db = StoredRules()
    book, whole_book = AlertBook(), AlertBook()
    for i, (lo, hi) in enumerate(pieces):
        if i == crash:
            engine = db.restore(rules, DEVICES, case.lateness_s)
        part = case.arrivals[lo:hi]
        ev, expected = engine.evaluate(batch(part)), whole.evaluate(batch(part))
        assert _emitted(ev) == _emitted(expected), f"batch {i} of {len(pieces)}, crash {crash}"
        db.store(part, ev)
        book.apply(ev.transitions, ev.corrections)
        whole_book.apply(expected.transitions, expected.corrections)
        engine.commit(ev)
        whole.commit(expected)
    if crash == len(pieces):
        engine = db.restore(rules, DEVICES, case.lateness_s)
    if case.now_us is not None:
        ev, expected = engine.check_absent(case.now_us), whole.check_absent(case.now_us)
        assert _emitted(ev) == _emitted(expected)
        book.apply(ev.transitions, ev.corrections)
        whole_book.apply(expected.transitions, expected.corrections)
    assert book.records() == whole_book.records()


# -- (d) lateness -----------------------------------------------------------------------------


def _newest_and_step(pieces: list[list[Event]]) -> tuple[dict[str, int], dict[str, int]]:
    """Per device, its newest event in ``pieces`` and its largest step from one batch's newest
    event to the next (from its oldest, for its first batch)."""
    newest: dict[str, int] = {}
    step: dict[str, int] = {}
    for piece in pieces:
        seen: dict[str, tuple[int, int]] = {}
        for d, _, ts, _ in piece:
            lo, hi = seen.get(d, (ts, ts))
            seen[d] = (min(lo, ts), max(hi, ts))
        for d, (lo, hi) in seen.items():
            prev = newest.get(d, lo)
            step[d] = max(step.get(d, 0), hi - prev)
            newest[d] = max(prev, hi)
    return newest, step


@st.composite
def stale_cases(draw: st.DrawFn) -> tuple[Case, list[Event]]:
    """Events arriving in event-time order, cut between timestamps (no replay drops a
    checkpoint), under a short lateness, and stale events put into random batches: each more
    than ``1.5 × lateness`` older than its device's newest event before that batch, and than
    the step between two of the device's batches (checkpoints are taken at batch ends)."""
    events = draw(histories())
    arrivals = sorted(events, key=lambda e: (e[2], e[1], e[3]))
    cuts = [c for c in draw(st.lists(st.integers(1, max(1, len(events) - 1)), max_size=12))
            if c < len(arrivals) and arrivals[c][2] > arrivals[c - 1][2]]
    lateness = float(draw(st.sampled_from([1, 5, 12, 30])))
    pieces = [arrivals[lo:hi] for lo, hi in bounds(len(arrivals), cuts)]
    stale_events: list[Event] = []
    for _ in range(draw(st.integers(0, 8)) if len(pieces) > 1 else 0):
        k = draw(st.integers(1, len(pieces) - 1))
        newest, step = _newest_and_step(pieces[:k])
        device = draw(st.sampled_from(sorted(newest)))
        ts = (newest[device] - round(lateness * S) * 3 // 2 - step[device]
              - draw(st.integers(1, 600)) * S // 10)
        stale = (device, draw(st.sampled_from(KINDS)), ts, float(draw(st.integers(0, 9))))
        pieces[k].insert(draw(st.integers(0, len(pieces[k]))), stale)
        stale_events.append(stale)
    case = Case(events, [e for p in pieces for e in p], list(itertools.accumulate(map(len, pieces))),
                lateness, None)
    return case, stale_events


@PROPS
@given(rules=rule_sets(), stale=stale_cases())
def test_events_more_than_one_and_a_half_lateness_old_are_ignored(
    rules: list[Rule], stale: tuple[Case, list[Event]]
) -> None:
    """A device's horizon trails its newest event by at most ``1.5 × lateness`` (plus the step
    between two of its batches): older events change nothing."""
    case, _ = stale
    note(f"{rules=}\n{stale=}")
    book = run_book(RuleEngine(rules, DEVICES, case.lateness_s), case.arrivals, case.cuts)
    assert book.records() == reference(rules, case)


@PROPS
@given(rules=rule_sets(), case=cases(bounded=True), data=st.data())
def test_events_within_lateness_count_and_those_below_the_horizon_do_not(
    rules: list[Rule], case: Case, data: st.DataObject
) -> None:
    """Under disorder within lateness (late events replay, checkpoints are dropped), after every
    batch each device's horizon is at least ``max_lateness`` behind its newest event, so every
    event within lateness counts (the alerts are the reference's over them); events older than
    the horizon, put into the next batch, change nothing."""
    note(f"{rules=}\n{case=}")
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    lateness_us = round(case.lateness_s * S)
    book = AlertBook()
    newest: dict[str, int] = {}
    for lo, hi in bounds(len(case.arrivals), case.cuts):
        part = list(case.arrivals[lo:hi])
        stale_devices = data.draw(st.lists(st.sampled_from(sorted(newest)), max_size=3)) if newest else []
        for device in stale_devices:
            horizon = engine.horizon_of(device)
            assert horizon is not None and horizon <= newest[device] - lateness_us
            stale = (device, data.draw(st.sampled_from(KINDS)),
                     horizon - data.draw(st.integers(1, 30 * S)), 9.0)
            part.insert(data.draw(st.integers(0, len(part))), stale)
        ev = engine.evaluate(batch(part))
        book.apply(ev.transitions, ev.corrections)
        engine.commit(ev)
        for d, _, ts, _ in part:
            newest[d] = max(ts, newest.get(d, ts))
    if case.now_us is not None:
        ev = engine.check_absent(case.now_us)
        book.apply(ev.transitions, ev.corrections)
    assert book.records() == reference(rules, case)


def test_horizon_keeps_up_when_every_batch_repeats_the_newest_timestamp() -> None:
    """A station sending two kinds at each instant in separate messages, read by a kind-less
    rule: each batch holds the second kind of the previous instant and the first of the next."""
    engine = RuleEngine([Rule("any", when=Condition(">", 5.0))], DEVICES, 30.0)
    for k in range(100):
        engine.commit(engine.evaluate(batch([("d0", "w", T0 + k * 10 * S, 1.0),
                                             ("d0", "f", T0 + (k + 1) * 10 * S, 1.0)])))
    newest = T0 + 1000 * S
    horizon = engine.horizon_of("d0")
    assert horizon is not None and horizon >= newest - 45 * S - 10 * S
    # Events below the horizon go at the next fold (every FOLD_AT batches of events).
    assert engine.recent_events <= 2 * FOLD_AT + 40


# -- (e) auto_resolve: false --------------------------------------------------------------------


def _fires(transitions: list[Transition]) -> set[tuple[str, str, int]]:
    return {(t.rule_id, t.device_id, t.ts_us) for t in transitions if t.action == "fire"}


@PROPS
@given(rules=rule_sets(auto_resolve=False), case=cases())
def test_auto_resolve_false_emits_every_fire_of_the_sorted_evaluation(
    rules: list[Rule], case: Case
) -> None:
    """Alerts an operator closes get no corrections: every fire the sorted evaluation makes is
    emitted as a transition, at once or when a late event shows it was missed. Arriving in
    event-time order, exactly those are."""
    note(f"{rules=}\n{case=}")
    ref = ReferenceEvaluator(rules, DEVICES)
    expected = ref.run(batch(case.events))
    if case.now_us is not None:
        expected += ref.check_absent(case.now_us)
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    emitted: list[Transition] = []
    for lo, hi in bounds(len(case.arrivals), case.cuts):
        ev = engine.evaluate(batch(case.arrivals[lo:hi]))
        assert ev.corrections == []
        emitted += ev.transitions
        engine.commit(ev)
    if case.now_us is not None:
        emitted += engine.check_absent(case.now_us).transitions
    assert all(t.action == "fire" for t in emitted)
    assert _fires(expected) <= _fires(emitted)
    in_order = sorted(case.events, key=lambda e: (e[2], e[1], e[3]))
    engine = RuleEngine(rules, DEVICES, case.lateness_s)
    emitted = []
    for lo, hi in bounds(len(in_order), case.cuts):
        ev = engine.evaluate(batch(in_order[lo:hi]))
        emitted += ev.transitions
        engine.commit(ev)
    if case.now_us is not None:
        emitted += engine.check_absent(case.now_us).transitions
    assert _fires(emitted) == _fires(expected)


# -- (f) backtest -------------------------------------------------------------------------------


@PROPS
@given(rules=rule_sets(), case=cases())
def test_backtest_of_each_rule_gives_the_reference_alerts(rules: list[Rule], case: Case) -> None:
    note(f"{rules=}\n{case=}")
    history = batch(case.arrivals)
    transitions = [t for rule in rules
                   for t in backtest(rule, history, DEVICES, until_us=case.now_us)]
    assert alert_records(transitions) == reference(rules, case)


@settings(max_examples=int(os.environ.get("IOC_RULES_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rules=props.rule_sets(), events=props.streams(),
       cuts=st.lists(st.integers(0, 80), min_size=4, max_size=30), late=props.lateness)
def test_replays_read_folded_chunks_as_fresh_ones(rules: list[Rule], events: list,
                                                  cuts: list[int], late: float) -> None:
    """Recent events folded every two batches (so that replays read folded chunks, joined on
    first read, and later folds keep, drop or compact them): the alerts of any cuts are still
    the reference's."""
    note(f"{rules=} {events=} {cuts=} {late=}")
    arrivals = props.within_lateness(events, late)
    expected = props.split_by_resolution(
        rules, reference_alerts(rules, props.DEVICES, batch(arrivals)))
    with mock.patch.object(history, "FOLD_AT", 2):
        engine = RuleEngine(rules, props.DEVICES, late)
        book = AlertBook()
        for lo, hi in bounds(len(arrivals), cuts):
            ev = engine.evaluate(batch(arrivals[lo:hi]))
            book.apply(ev.transitions, ev.corrections)
            engine.commit(ev)
    assert props.split_by_resolution(rules, book.records()) == expected
