"""Engine semantics on small hand-written streams (each checks one documented rule)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ioc.rules import (
    DeviceMeta,
    RuleEngine,
    StaleEvaluationError,
    backtest,
    load_rules_text,
)
from ioc.rules.corrections import AlertRecord
from ioc.rules.reference import reference_alerts
from tests.unit.rules.rules_testing import (
    AlertBook,
    S,
    StoredRules,
    batch,
    run_book,
    run_cut,
)

DEVICES = [
    DeviceMeta("vt-1", "Trạm Cầu Cái Nhúc", "Vị Thanh", ("river", "tide")),
    DeviceMeta("nb-1", "Trạm Ngã Bảy", "Ngã Bảy", ("river",)),
]


def rules(yaml_rules: str) -> list:
    return load_rules_text("rules:\n" + yaml_rules)


def acts(transitions: list[tuple]) -> list[tuple]:
    """(rule, device, action, ts in seconds, event index)."""
    return [(t[0], t[1], t[2], t[3] // S, t[8]) for t in transitions]


def run(yaml_rules: str, events: list, lateness: float = 3600.0, cuts: tuple = ()) -> list[tuple]:
    return acts(run_cut(RuleEngine(rules(yaml_rules), DEVICES, lateness), batch(events), cuts))


FLOOD = """
  - id: flood
    kind: water_level
    where: {district: "Vị Thanh"}
    when: {op: ">", value: 1.8}
    for: 5m
    clear: {op: "<", value: 1.7}
    message: "Mực nước {value:.2f} m tại {device_name} lúc {ts:%H:%M}"
"""


def wl(t_min: float, v: float, dev: str = "vt-1") -> tuple:
    return (dev, "water_level", int(t_min * 60 * S), v)


def test_for_fires_once_held_long_enough_and_clears_with_hysteresis() -> None:
    events = [wl(0, 1.9), wl(3, 1.95), wl(5, 2.0), wl(6, 2.1), wl(7, 1.75), wl(8, 1.6), wl(9, 1.9)]
    assert run(FLOOD, events) == [
        ("flood", "vt-1", "fire", 300, 2), ("flood", "vt-1", "clear", 480, 5),
    ]


def test_message_template_uses_reading_device_and_vietnam_time() -> None:
    engine = RuleEngine(rules(FLOOD), DEVICES)
    ev = engine.evaluate(batch([wl(0, 1.9), wl(5, 2.0)]))
    assert ev.transitions[0].message == "Mực nước 2.00 m tại Trạm Cầu Cái Nhúc lúc 07:05"
    assert (ev.transitions[0].severity, ev.transitions[0].kind) == ("warning", "water_level")


def test_non_matching_event_breaks_the_run() -> None:
    events = [wl(0, 1.9), wl(3, 1.5), wl(4, 1.9), wl(8, 1.9), wl(9, 1.9)]
    assert run(FLOOD, events) == [("flood", "vt-1", "fire", 540, 4)]


def test_pending_run_survives_batch_boundary() -> None:
    events = [wl(0, 1.9), wl(3, 1.95), wl(5, 2.0)]
    assert run(FLOOD, events, cuts=(1, 2)) == [("flood", "vt-1", "fire", 300, 2)]


def test_scope_by_district_excludes_other_devices() -> None:
    assert run(FLOOD, [wl(0, 3.0, "nb-1"), wl(9, 3.0, "nb-1")]) == []


@pytest.mark.parametrize(
    ("op", "value", "readings", "fired_at"),
    [
        (">", 2, [2, 3], [1]), (">=", 2, [1, 2], [1]), ("<", 2, [2, 1], [1]),
        ("<=", 2, [3, 2], [1]), ("==", 2, [1, 2], [1]), ("!=", 2, [2, 1], [1]),
        ("between", [1, 2], [0, 1, 3, 2], [1, 3]), ("outside", [1, 2], [1, 2, 3, 1, 0.5], [2, 4]),
    ],
)
def test_threshold_ops(op: str, value: object, readings: list[float], fired_at: list[int]) -> None:
    rule = f"""
  - id: t
    when: {{op: "{op}", value: {json.dumps(value)}}}
"""
    events = [("vt-1", "x", i * S, float(v)) for i, v in enumerate(readings)]
    assert [t[4] for t in run(rule, events) if t[2] == "fire"] == fired_at


def test_rate_is_change_per_period_between_consecutive_readings() -> None:
    rule = """
  - id: salt
    kind: salinity
    rate: {per: 1h, op: ">", value: 1.0}
"""
    engine = RuleEngine(rules(rule), DEVICES)
    events = [("vt-1", "salinity", 0, 2.0), ("vt-1", "salinity", 1800 * S, 2.4),
              ("vt-1", "salinity", 1800 * S, 9.0), ("vt-1", "salinity", 3600 * S, 3.0),
              ("vt-1", "salinity", 7200 * S, 3.5)]
    ev = engine.evaluate(batch(events))
    # 0.8/h, then a same-ts reading (ignored: no rate), then +0.6 in 30 min = 1.2/h, then 0.5/h
    assert [(t.action, t.event_index, round(t.value, 6)) for t in ev.transitions] == [
        ("fire", 3, 1.2), ("clear", 4, 0.5),
    ]


def test_count_fires_at_nth_match_within_window_inclusive_of_right_edge_only() -> None:
    rule = """
  - id: fire
    kind: camera.fire
    when: {op: ">=", value: 0.8}
    count: {at_least: 2, within: 1m}
"""
    cam = [("vt-1", "camera.fire", s * S, v) for s, v in [(0, 0.9), (60, 0.95), (100, 0.3), (110, 0.85)]]
    # 0 and 60 are exactly 1m apart: outside (t-1m, t]; 60 and 110 are inside, the 0.3 between is ignored
    assert run(rule, cam) == [("fire", "vt-1", "fire", 110, 3)]
    assert run(rule, cam, cuts=(1, 2, 3)) == [("fire", "vt-1", "fire", 110, 3)]


def test_count_window_is_persisted_as_state() -> None:
    rule = """
  - id: fire
    kind: camera.fire
    when: {op: ">=", value: 0.8}
    count: {at_least: 3, within: 1m}
"""
    engine = RuleEngine(rules(rule), DEVICES)
    ev = engine.evaluate(batch([("vt-1", "camera.fire", 5 * S, 0.9)]))
    (row,) = ev.state_rows()
    assert json.loads(row[2])["window"] == [5 * S]
    engine.commit(ev)
    ev = engine.evaluate(batch([("vt-1", "camera.fire", 6 * S, 0.2)]))
    assert ev.state_rows() == []


def test_late_events_are_ignored_and_out_of_order_ones_count() -> None:
    rule = """
  - id: hot
    when: {op: ">", value: 5}
"""
    # ts 100 first; ts 40 is 60 s older (beyond 1.5 × the 30 s lateness: ignored); ts 90 is
    # within lateness: it counts, in event time, and the alert it makes is raised as a correction
    engine = RuleEngine(rules(rule), DEVICES, 30)
    seen = []
    for event in [("vt-1", "a", 100 * S, 1.0), ("vt-1", "a", 40 * S, 9.0), ("vt-1", "a", 90 * S, 9.0)]:
        ev = engine.evaluate(batch([event]))
        seen.append(([t.action for t in ev.transitions],
                     [(c.action, c.new and (c.new.start_us // S, c.new.end_us, c.new.fires))
                      for c in ev.corrections]))
        engine.commit(ev)
    assert seen == [([], []), ([], []), ([], [("raise", (90, 100 * S, 1))])]
    # another kind's reading within lateness still counts, at once: its stream has no later event
    assert run(rule.replace("when", "kind: b\n    when"), [
        ("vt-1", "a", 100 * S, 1.0), ("vt-1", "b", 90 * S, 9.0),
    ], lateness=30, cuts=(1,)) == [("hot", "vt-1", "fire", 90, 1)]


def test_auto_resolve_false_emits_no_clear_but_re_arms() -> None:
    rule = """
  - id: hot
    when: {op: ">", value: 5}
    auto_resolve: false
"""
    events = [("vt-1", "a", i * S, v) for i, v in enumerate([9.0, 1.0, 9.0])]
    assert run(rule, events) == [("hot", "vt-1", "fire", 0, 0), ("hot", "vt-1", "fire", 2, 2)]


OFFLINE = """
  - id: offline
    absent: {for: 10m}
"""


def test_absent_fires_once_per_silence_and_clears_on_next_event() -> None:
    engine = RuleEngine(rules(OFFLINE), DEVICES)
    ev = engine.evaluate(batch([wl(0, 1.0)]))
    engine.commit(ev)
    assert engine.check_absent(9 * 60 * S).transitions == []
    ev = engine.check_absent(11 * 60 * S)
    (t,) = ev.transitions
    assert (t.device_id, t.action, t.ts_us, t.event_index) == ("vt-1", "fire", 600 * S, None)
    assert math.isnan(t.value) and "Trạm Cầu Cái Nhúc" in t.message
    engine.commit(ev)
    assert engine.check_absent(20 * 60 * S).transitions == []  # once per silence
    ev = engine.evaluate(batch([wl(21, 1.0)]))
    assert [(t.action, t.ts_us) for t in ev.transitions] == [("clear", 21 * 60 * S)]


def test_absent_gap_in_event_time_fires_and_clears() -> None:
    assert run(OFFLINE, [wl(0, 1.0), wl(5, 1.0), wl(30, 1.0)]) == [
        ("offline", "vt-1", "fire", 15 * 60, 2), ("offline", "vt-1", "clear", 30 * 60, 2),
    ]


def test_evaluate_is_pure_and_commit_refuses_stale_evaluations() -> None:
    engine = RuleEngine(rules(FLOOD), DEVICES)
    first = engine.evaluate(batch([wl(0, 1.9), wl(5, 2.0)]))
    again = engine.evaluate(batch([wl(0, 1.9), wl(5, 2.0)]))
    assert first.transitions == again.transitions and len(first.transitions) == 1
    engine.commit(first)
    with pytest.raises(StaleEvaluationError):
        engine.commit(again)
    assert engine.evaluate(batch([wl(6, 2.0)])).transitions == []  # already firing


def test_unknown_devices_are_registered_on_commit_only() -> None:
    engine = RuleEngine(rules("  - id: any\n    when: {op: '>', value: 0}\n"), DEVICES)
    ev = engine.evaluate(batch([("auto-1", "x", 0, 1.0)]))
    assert [t.device_id for t in ev.transitions] == ["auto-1"]
    assert [d.id for d in engine.devices] == ["vt-1", "nb-1"]
    engine.commit(ev)
    assert engine.devices[-1] == DeviceMeta("auto-1")


def test_upsert_devices_changes_scope() -> None:
    engine = RuleEngine(rules(FLOOD.replace("    for: 5m\n", "")), DEVICES)
    engine.upsert_devices([DeviceMeta("nb-1", "Trạm Ngã Bảy", "Vị Thanh")])
    assert [t.device_id for t in engine.evaluate(batch([wl(0, 2.0, "nb-1")])).transitions] == ["nb-1"]


def test_set_rules_keeps_state_of_unchanged_rules_and_resets_changed_ones() -> None:
    engine = RuleEngine(rules(FLOOD + OFFLINE), DEVICES)
    engine.commit(engine.evaluate(batch([wl(0, 1.9)])))
    reworded = FLOOD.replace("Mực nước", "Nước") + OFFLINE.replace("10m", "20m")
    assert engine.set_rules(rules(reworded)) == ["offline"]
    ev = engine.evaluate(batch([wl(5, 2.0)]))
    assert [(t.rule_id, t.message.split()[0]) for t in ev.transitions] == [("flood", "Nước")]


def test_state_rows_skip_unchanged_state_and_restore_ignores_other_definitions() -> None:
    engine = RuleEngine(rules(FLOOD), DEVICES)
    ev = engine.evaluate(batch([wl(0, 1.9)]))
    (row,) = ev.state_rows()
    assert row[:2] == ("flood", "vt-1") and json.loads(row[2])["run_start"] == 0
    engine.commit(ev)
    assert engine.evaluate(batch([wl(1, 1.95)])).state_rows() == []  # run still pending
    other = RuleEngine(rules(FLOOD.replace("5m", "6m")), DEVICES)
    assert other.load_state([row]) == ["flood"]
    assert other.export_state() == []


def test_clock_rows_carry_latest_and_kind_clocks() -> None:
    engine = RuleEngine(rules(FLOOD), DEVICES)
    ev = engine.evaluate(batch([wl(2, 1.0), ("vt-1", "rain", 3 * 60 * S, 5.0)]))
    assert ev.clock_rows() == [
        ("vt-1", json.dumps({"latest": 180 * S, "kinds": {"water_level": 120 * S}},
                            separators=(",", ":")))
    ]


def test_backtest_replays_history_in_ts_order() -> None:
    (rule,) = rules(FLOOD)
    history = batch([wl(5, 2.0), wl(0, 1.9), wl(8, 1.6)])
    out = backtest(rule, history, DEVICES)
    assert [(t.action, t.ts_us // S, t.event_index) for t in out] == [
        ("fire", 300, 0), ("clear", 480, 2),
    ]


def test_backtest_absent_until_reports_ongoing_silence() -> None:
    (rule,) = rules(OFFLINE)
    out = backtest(rule, batch([wl(0, 1.0)]), DEVICES, until_us=60 * 60 * S)
    assert [(t.action, t.ts_us // S) for t in out] == [("fire", 600)]


def test_large_batch_matches_small_cuts_with_many_devices() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    events = [(f"dev-{d}", "water_level", int(t) * S, float(v)) for d, t, v in zip(
        rng.integers(0, 300, n), np.sort(rng.integers(0, 3000, n)) + rng.integers(-30, 1, n),
        rng.uniform(1.5, 2.1, n), strict=True)]
    rule = rules(FLOOD.replace('    where: {district: "Vị Thanh"}\n', "").replace("5m", "20s"))
    # every event is at most 30 s older than one before it: within a 30 s lateness, all count
    whole = run_book(RuleEngine(rule, DEVICES, 30), events).records()
    assert len(whole) > 50
    assert whole == reference_alerts(rule, DEVICES, batch(events))
    assert run_book(RuleEngine(rule, DEVICES, 30), events, cuts=range(0, n, 437)).records() == whole


@pytest.mark.parametrize("dict_max", [-1, 10**6], ids=["vectorized", "dict"])
def test_device_lookup_survives_hash_collisions(
    monkeypatch: pytest.MonkeyPatch, dict_max: int
) -> None:
    monkeypatch.setattr("ioc.rules.registry.DICT_LOOKUP_MAX_DEVICES", dict_max)
    monkeypatch.setattr("ioc.rules.registry._hashes", lambda ids: np.zeros(len(ids), np.uint64))
    engine = RuleEngine(rules("  - id: any\n    when: {op: '>', value: 5}\n"), DEVICES)
    ev = engine.evaluate(batch([("nb-1", "x", 0, 9.0), ("vt-1", "x", 0, 1.0), ("new", "x", 0, 9.0)]))
    assert [t.device_id for t in ev.transitions] == ["nb-1", "new"]
    engine.commit(ev)
    ev = engine.evaluate(batch([("new", "x", S, 1.0), ("vt-1", "x", S, 9.0)]))
    # ordered by device (registration order), then event time
    assert [(t.device_id, t.action) for t in ev.transitions] == [("vt-1", "fire"), ("new", "clear")]


# -- event time: small cases the property tests found -----------------------------------------

HOT = "  - id: hot\n    kind: a\n    when: {op: '>', value: 5}\n"


def test_a_devices_first_batch_sets_its_horizon() -> None:
    """Before, a device counted events of any age until its newest event moved a lateness on."""
    engine = RuleEngine(rules(HOT), DEVICES, 1)
    book = run_book(engine, [("vt-1", "a", 100 * S, 1.0), ("vt-1", "a", 97 * S, 9.0)], cuts=(1,))
    assert book.records() == []
    assert engine.horizon_of("vt-1") == 99 * S


def test_lateness_is_measured_from_the_newest_event_of_any_kind() -> None:
    """Events of a kind no rule reads move the horizon too (before, only consumed ones did)."""
    engine = RuleEngine(rules(HOT), DEVICES, 1)
    arrivals = [("vt-1", "b", 100 * S, 1.0), ("vt-1", "b", 110 * S, 1.0), ("vt-1", "a", 97 * S, 9.0)]
    assert run_book(engine, arrivals, cuts=(1, 2)).records() == []


def test_a_replay_keeps_the_newest_event_of_a_kind_no_rule_reads() -> None:
    engine = RuleEngine(rules(HOT), DEVICES)
    engine.commit(engine.evaluate(batch([("vt-1", "a", 10 * S, 1.0)])))
    ev = engine.evaluate(batch([("vt-1", "a", 5 * S, 1.0), ("vt-1", "b", 20 * S, 1.0)]))
    assert ev.clock_rows() == [("vt-1", '{"latest":20000000,"kinds":{"a":10000000}}')]


def test_a_replay_writes_only_the_state_it_changed() -> None:
    engine = RuleEngine(rules(HOT), DEVICES)
    engine.commit(engine.evaluate(batch([("vt-1", "a", 10 * S, 1.0)])))
    ev = engine.evaluate(batch([("vt-1", "a", 5 * S, 1.0)]))
    assert (ev.state_rows(), ev.transitions, ev.corrections) == ([], [], [])


def test_restart_takes_kind_clocks_below_the_horizon_from_the_base_checkpoint() -> None:
    """A stored event the horizon made rules ignore must not become its kind's clock again."""
    yaml_rules = rules("  - id: gone\n    kind: f\n    absent: {for: 3s}\n" + HOT)
    db, engine = StoredRules(), RuleEngine(yaml_rules, DEVICES, 1)
    arrivals = [("vt-1", "f", 95 * S, 1.0), ("vt-1", "a", 100 * S, 1.0),
                ("vt-1", "a", 110 * S, 1.0), ("vt-1", "f", 98 * S, 1.0)]  # the last is ignored
    for event in arrivals:
        ev = engine.evaluate(batch([event]))
        db.store([event], ev)
        engine.commit(ev)
    restored = db.restore(yaml_rules, DEVICES, 1)
    assert restored.export_clocks() == engine.export_clocks()
    fired = [(t.action, t.ts_us) for t in restored.check_absent(120 * S).transitions]
    assert fired == [(t.action, t.ts_us) for t in engine.check_absent(120 * S).transitions]
    assert fired == [("fire", 98 * S)]


def test_a_reading_within_the_silence_the_timer_reported_withdraws_that_alert() -> None:
    """The timer reported an absence (ts 58) that a checkpoint then held as open, so the
    correction of a later reading at 57 named the alert before it; now the fire is in the
    replay's old transitions and that alert is withdrawn."""
    absent = rules("  - id: gone\n    kind: w\n    absent: {for: 3s}\n")
    engine, book = RuleEngine(absent, DEVICES), AlertBook()
    for step in ([("vt-1", "w", 55 * S, 0.0)], 59 * S, [("vt-1", "w", 0, 0.0)],
                 [("vt-1", "w", 57 * S, 0.0)]):
        ev = engine.check_absent(step) if isinstance(step, int) else engine.evaluate(batch(step))
        book.apply(ev.transitions, ev.corrections)
        engine.commit(ev)
        if step == [("vt-1", "w", 57 * S, 0.0)]:
            assert [(c.action, c.old and c.old.start_us) for c in ev.corrections] == [
                ("withdraw", 58 * S)]
    assert book.records() == [AlertRecord("gone", "vt-1", 3 * S, 55 * S, 1)]
