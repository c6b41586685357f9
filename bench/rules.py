"""Rule engine throughput: vectorized engine vs the per-event reference vs ``rule-engine``.

Usage: ``.venv/bin/python bench/rules.py [--events 1000000] [--devices 100000] [--batch 10000]
[--late 0.01 0.1] [--max-delay 600]``

One process, one core. For 1, 10 and 100 rules (a mix of threshold and
threshold+for with hysteresis, scoped by kind and mostly by district) over
100k registered devices and two consecutive hours of 1M events each (five
kinds), it times ``evaluate`` + ``commit`` per micro-batch, and separately the
cost of building the batch's persisted rows (``state_rows`` + ``clock_rows`` +
``checkpoint_changes``). The first hour starts from empty state, so every
device above a threshold fires then; the second hour is the steady state.

*In order*: events arrive in ts order, so every device's events come after
what its rules consumed and the engine never replays. *Out of order* (100
rules): the same two hours, but a fraction of the events (``--late``: 1% and
10%) arrive late, each delayed by a uniform random 1 µs .. ``--max-delay``
(10 min), well within the engine's ``max_lateness`` (1 h, passed explicitly);
arrival is sorted by ts + delay and cut into two "hours" of the same sizes.
A delayed event is late for the engine when an event of its device with a
later or equal ts arrived in an earlier batch (about half of them with
10-minute delays and ten events per device-hour); its device is replayed from
a checkpoint, and the differences come out as corrections. Reported: events/s,
corrections/s (``len(ev.corrections)`` over the timed span), the late events
and replayed (batch, device) pairs (counted outside the timing from the
arrival order), and ``recent_events`` after each hour.

The baselines run on a prefix of the first in-order hour and are extrapolated
to events/s: the reference evaluator (same semantics, one event at a time; one
``run`` over the whole prefix, which it sorts per device) and the
``rule-engine`` package evaluating the equivalent stateless threshold
expression of every rule for every event (it has no ``for`` state, so it does
strictly less work). Writes ``bench/results/rules.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import rule_engine

from ioc.rules import DeviceMeta, Rule, RuleBatch, RuleEngine, Where
from ioc.rules.model import Condition
from ioc.rules.reference import ReferenceEvaluator

KINDS = ("water_level", "rainfall", "salinity", "pm25", "traffic_speed")
LEVELS = {  # (mean, spread) of generated readings per kind
    "water_level": (1.5, 0.3), "rainfall": (20.0, 25.0), "salinity": (3.0, 1.0),
    "pm25": (40.0, 15.0), "traffic_speed": (30.0, 12.0),
}
DISTRICTS = ("Vị Thanh", "Ngã Bảy", "Long Mỹ", "Vị Thủy", "Châu Thành", "Châu Thành A", "Phụng Hiệp")
RESULTS = Path(__file__).parent / "results" / "rules.json"
T0_US = 1_790_000_000_000_000
HOUR_US = 3_600_000_000
MAX_LATENESS_S = 3600.0


def make_devices(n: int) -> list[DeviceMeta]:
    return [DeviceMeta(f"hg-{i:06d}", f"Trạm {i}", DISTRICTS[i % len(DISTRICTS)]) for i in range(n)]


def make_events(n: int, n_devices: int, hour: int) -> tuple[RuleBatch, list[str]]:
    """Devices report their own kind (device i: KINDS[i % 5]) during hour ``hour``.

    Each device has its own level (mean ± spread, the same every hour) and
    readings wander around it (noise of a tenth of the spread), like real
    stations: most never cross a threshold, a few sit above it, some hover
    near it. Events are in ts order (arrival order is event-time order).
    """
    kind_of = np.arange(n_devices) % len(KINDS)
    mean = np.array([LEVELS[k][0] for k in KINDS])[kind_of]
    spread = np.array([LEVELS[k][1] for k in KINDS])[kind_of]
    level = np.random.default_rng(0).normal(mean, spread)
    rng = np.random.default_rng(1 + hour)
    dev = rng.integers(0, n_devices, n)
    value = np.abs(level[dev] + rng.normal(0, 1, n) * spread[dev] / 10)
    ts = T0_US + hour * HOUR_US + np.sort(rng.integers(0, HOUR_US, n))
    ids = np.array([f"hg-{i:06d}" for i in range(n_devices)])[dev]
    kinds = np.array(KINDS)[kind_of[dev]]
    return RuleBatch(ids, kinds, ts.astype(np.int64), value), kinds.tolist()


def concat(batches: list[RuleBatch]) -> RuleBatch:
    return RuleBatch(
        np.concatenate([np.asarray(b.device_id) for b in batches]),
        np.concatenate([np.asarray(b.kind) for b in batches]),
        np.concatenate([b.ts for b in batches]), np.concatenate([b.value for b in batches]),
    )


def delay_some(hours: list[RuleBatch], fraction: float, max_delay_s: float,
               seed: int = 7) -> list[RuleBatch]:
    """The events of ``hours`` with ``fraction`` of them (chosen at random) delayed by a
    uniform 1 µs .. ``max_delay_s``: arrival order is ts + delay (stable), cut into
    parts of the sizes of ``hours``."""
    events = concat(hours)
    n = len(events)
    rng = np.random.default_rng(seed)
    delay = np.zeros(n, dtype=np.int64)
    chosen = rng.choice(n, round(fraction * n), replace=False)
    delay[chosen] = rng.integers(1, round(max_delay_s * 1e6) + 1, len(chosen))
    arrived = events.take(np.argsort(events.ts + delay, kind="stable"))
    cuts = np.cumsum([len(h) for h in hours])[:-1]
    return [arrived.take(part) for part in np.split(np.arange(n), cuts)]


def lateness(hours: list[RuleBatch], size: int, n_devices: int) -> list[dict]:
    """Per hour, the events the engine gets late (ts at or before the newest ts of their
    device in earlier batches; each device reports one kind, read by every rule set
    here, so that is its stream clock) and the replayed (batch, device) pairs."""
    clock = np.full(n_devices, np.iinfo(np.int64).min, dtype=np.int64)
    out = []
    for events in hours:
        dev = np.array([int(d[3:]) for d in np.asarray(events.device_id).tolist()])
        late = replayed = 0
        for lo in range(0, len(events), size):
            d, t = dev[lo:lo + size], events.ts[lo:lo + size]
            is_late = t <= clock[d]
            late += int(is_late.sum())
            replayed += len(np.unique(d[is_late]))
            np.maximum.at(clock, d, t)
        out.append({"late_events": late, "replayed_devices": replayed})
    return out


def make_rules(n: int) -> list[Rule]:
    """Threshold rules above most devices' levels, with hysteresis; every other one has ``for: 5m``."""
    out = []
    for j in range(n):
        kind = KINDS[j % len(KINDS)]
        mean, spread = LEVELS[kind]
        below = kind == "traffic_speed"
        where = Where() if j % 8 == 7 else Where(districts=(DISTRICTS[j % len(DISTRICTS)],))
        sign = -1 if below else 1
        level = mean + sign * spread * (1 + j % 3 / 4)
        out.append(Rule(
            id=f"r{j:03d}", kind=kind, where=where,
            when=Condition("<" if below else ">", level),
            clear=Condition(">" if below else "<", level - sign * spread / 4),
            for_s=300.0 if j % 2 else 0.0,
        ))
    return out


def expression(rule: Rule) -> str:
    assert rule.when is not None and not isinstance(rule.when.value, tuple)
    text = f'kind == "{rule.kind}" and value {rule.when.op} {rule.when.value!r}'
    if rule.where.districts:
        text += f' and district == "{rule.where.districts[0]}"'
    return text


def bench_engine(
    rules: list[Rule], devices: list[DeviceMeta], hours: list[RuleBatch], size: int
) -> list[dict]:
    """One engine over consecutive hours: the first starts from empty state (every
    device above a threshold fires), later ones are the steady state."""
    engine = RuleEngine(rules, devices, max_lateness_s=MAX_LATENESS_S)
    out = []
    for events in hours:
        eval_s = rows_s = 0.0
        transitions = corrections = state_rows = clock_rows = checkpoints_taken = 0
        for lo in range(0, len(events), size):
            part = events.take(np.arange(lo, min(lo + size, len(events))))
            t0 = time.perf_counter()
            ev = engine.evaluate(part)
            engine.commit(ev)
            t1 = time.perf_counter()
            s, c, cp = ev.state_rows(), ev.clock_rows(), ev.checkpoint_changes()
            rows_s += time.perf_counter() - t1
            eval_s += t1 - t0
            transitions += len(ev.transitions)
            corrections += len(ev.corrections)
            state_rows += len(s)
            clock_rows += len(c)
            checkpoints_taken += len(cp.taken)
        n = len(events)
        out.append({
            "events_per_s": n / eval_s, "seconds": eval_s,
            "corrections_per_s": corrections / eval_s,
            "events_per_s_with_rows": n / (eval_s + rows_s), "rows_seconds": rows_s,
            "transitions": transitions, "corrections": corrections,
            "state_rows": state_rows, "clock_rows": clock_rows,
            "checkpoints_taken": checkpoints_taken, "recent_events": engine.recent_events,
        })
    return out


def bench_reference(rules: list[Rule], devices: list[DeviceMeta], events: RuleBatch, n: int) -> dict:
    ref = ReferenceEvaluator(rules, devices)
    part = events.take(np.arange(n))
    t0 = time.perf_counter()
    ref.run(part)
    return {"events_per_s": n / (time.perf_counter() - t0), "measured_events": n}


def bench_rule_engine(rules: list[Rule], events: RuleBatch, kinds: list[str], n: int) -> dict:
    compiled = [rule_engine.Rule(expression(r)) for r in rules]
    district = {f"hg-{i:06d}": DISTRICTS[i % len(DISTRICTS)] for i in range(200_000)}
    rows = [
        {"kind": kinds[i], "value": float(events.value[i]),
         "district": district[str(events.device_id[i])]}
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for row in rows:
        for rule in compiled:
            rule.matches(row)
    return {"events_per_s": n / (time.perf_counter() - t0), "measured_events": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--reference-events", type=int, default=20_000)
    ap.add_argument("--rule-engine-events", type=int, default=2_000)
    ap.add_argument("--late", type=float, nargs="*", default=[0.01, 0.1],
                    help="fractions of events arriving late (100 rules)")
    ap.add_argument("--max-delay", type=float, default=600.0, help="longest delay, seconds")
    args = ap.parse_args()
    devices = make_devices(args.devices)
    first, kinds = make_events(args.events, args.devices, 0)
    second, _ = make_events(args.events, args.devices, 1)
    results = []
    for n_rules in (1, 10, 100):
        rules = make_rules(n_rules)
        cold, warm = bench_engine(rules, devices, [first, second], args.batch)
        ref = bench_reference(rules, devices, first, min(args.reference_events, args.events))
        re_ = bench_rule_engine(rules, first, kinds, min(args.rule_engine_events, args.events))
        results.append({
            "rules": n_rules, "engine_cold": cold, "engine_warm": warm,
            "reference": ref, "rule_engine": re_,
            "speedup_vs_reference": cold["events_per_s"] / ref["events_per_s"],
            "speedup_vs_rule_engine": cold["events_per_s"] / re_["events_per_s"],
        })
    out_of_order = []
    rules = make_rules(100)
    for fraction in args.late:
        hours = delay_some([first, second], fraction, args.max_delay)
        cold, warm = bench_engine(rules, devices, hours, args.batch)
        late = lateness(hours, args.batch, args.devices)
        out_of_order.append({
            "rules": 100, "delayed_fraction": fraction, "max_delay_s": args.max_delay,
            "engine_cold": cold | late[0], "engine_warm": warm | late[1],
        })
    report = {
        "benchmark": "rules",
        "events": args.events, "devices": args.devices, "batch_size": args.batch,
        "max_lateness_s": MAX_LATENESS_S,
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine()},
        "note": "engine timed on all events of two consecutive hours (evaluate+commit, one "
                "core; the first hour starts from empty state); 'results': events in ts "
                "order; 'out_of_order': the same events with a fraction delayed by up to "
                "max_delay_s (late events replay their device; corrections/s over the same "
                "timed span; late_events and replayed_devices counted from the arrival order); "
                "reference and rule-engine timed on a prefix of the first hour and "
                "extrapolated to events/s; speedups use the first (slower) hour",
        "results": results,
        "out_of_order": out_of_order,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.events:,} events/hour, {args.devices:,} devices, batches of {args.batch:,}; "
          "events/s on one core (evaluate+commit; '+rows' adds building the persisted rows)")
    print("in order:")
    print(f"{'rules':>5} {'1st hour':>11} {'+rows':>11} {'2nd hour':>11} {'+rows':>11} "
          f"{'reference':>10} {'rule-engine':>12} {'×ref':>6} {'×r-e':>6} {'transitions':>14} "
          f"{'recent':>10}")
    for r in results:
        c, w = r["engine_cold"], r["engine_warm"]
        print(f"{r['rules']:>5} {c['events_per_s']:>11,.0f} {c['events_per_s_with_rows']:>11,.0f} "
              f"{w['events_per_s']:>11,.0f} {w['events_per_s_with_rows']:>11,.0f} "
              f"{r['reference']['events_per_s']:>10,.0f} {r['rule_engine']['events_per_s']:>12,.0f} "
              f"{r['speedup_vs_reference']:>6,.0f} {r['speedup_vs_rule_engine']:>6,.0f} "
              f"{c['transitions']:>7,}/{w['transitions']:<6,} {w['recent_events']:>10,}")
    print(f"out of order, 100 rules, delays up to {args.max_delay:g} s "
          f"(max_lateness {MAX_LATENESS_S:g} s); 1st hour / 2nd hour:")
    print(f"{'late':>5} {'1st hour':>11} {'2nd hour':>11} {'+rows':>11} {'corr/s':>15} "
          f"{'corrections':>15} {'late events':>15} {'replayed':>15} {'transitions':>14} "
          f"{'recent':>10}")
    for r in out_of_order:
        c, w = r["engine_cold"], r["engine_warm"]
        print(f"{r['delayed_fraction']:>5.0%} {c['events_per_s']:>11,.0f} "
              f"{w['events_per_s']:>11,.0f} {w['events_per_s_with_rows']:>11,.0f} "
              f"{c['corrections_per_s']:>7,.0f}/{w['corrections_per_s']:<7,.0f} "
              f"{c['corrections']:>7,}/{w['corrections']:<7,} "
              f"{c['late_events']:>7,}/{w['late_events']:<7,} "
              f"{c['replayed_devices']:>7,}/{w['replayed_devices']:<7,} "
              f"{c['transitions']:>7,}/{w['transitions']:<6,} {w['recent_events']:>10,}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
