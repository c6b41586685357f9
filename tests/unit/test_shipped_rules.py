"""The shipped rules against two simulated days of Hậu Giang: alerts, but no alert storms."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path

import numpy as np

from ioc.devices import load_devices_file
from ioc.ingest.decode import DecodeLimits, decode
from ioc.model import RawMessage
from ioc.rules import DeviceMeta, RuleBatch, RuleEngine, load_rules_file
from ioc.simulator.stream import generate_payloads

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_shipped_rules_fire_without_storms() -> None:
    devices = load_devices_file(CONFIG / "devices.yaml")
    rules = load_rules_file(CONFIG / "rules.yaml")
    start = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)  # dry season: salinity intrusion
    items = generate_payloads(devices, 200_000, start, step_s=60, seed=3)
    events = decode([RawMessage(p, "kafka", key=d.encode()) for d, p in items],
                    DecodeLimits(max_event_age_s=1e9, max_future_skew_s=1e9)).events
    hours = (events.ts.max() - events.ts.min()) / 3.6e9
    engine = RuleEngine(rules, [DeviceMeta(d.id, d.name, d.district, d.tags) for d in devices])
    fires: collections.Counter[str] = collections.Counter()
    for i in range(0, len(events), 5000):
        b = events.take(np.arange(i, min(i + 5000, len(events))))
        ev = engine.evaluate(RuleBatch(b.device_id, b.kind, b.ts, b.value))
        engine.commit(ev)
        fires.update(t.rule_id for t in ev.transitions if t.action == "fire")
    assert fires["salinity-high"] > 0, "March should bring salinity alerts"
    per_device_hour = sum(fires.values()) / (len(devices) * hours)
    assert per_device_hour < 0.05, (per_device_hour, fires.most_common(5))
    for rule_id, n in fires.items():
        assert n < hours * 2, f"{rule_id} fired {n} times in {hours:.0f} h: a storm"
