"""Reference evaluator: the engine's semantics, one event and one rule at a time.

Plain Python, written for obviousness, not speed. It takes every event at once and
evaluates each device's events in event-time order — ``(ts, kind, value)``, so that
equal timestamps are ordered the same way whatever order they arrived in — which is
what the engine must give for any arrival order and any batch cuts of the same events
(within lateness). Tests compare the vectorized engine against it, and the benchmark
uses it as the naive baseline. Semantics are documented in ``engine.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ioc.rules.corrections import AlertRecord, alert_records
from ioc.rules.engine import RuleBatch
from ioc.rules.messages import render
from ioc.rules.model import DeviceMeta, Rule, where_matches
from ioc.rules.transitions import Transition


@dataclass(slots=True)
class _State:
    firing: bool = False
    run_start: int | None = None
    prev: tuple[int, float] | None = None
    window: list[int] = field(default_factory=list)


class ReferenceEvaluator:
    """Feeds each device's events in event-time order through every rule's state machine."""

    def __init__(self, rules: Iterable[Rule], devices: Iterable[DeviceMeta] = ()) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.devices = {d.id: d for d in devices}
        self.clocks: dict[tuple[str, str | None], int] = {}
        self.states: dict[tuple[str, str], _State] = {}

    def run(self, batch: RuleBatch) -> list[Transition]:
        """Transitions of all of ``batch``'s events, device by device in event-time order.

        ``event_index`` is the event's position in ``batch``. Call once per evaluator: a
        second call would treat its events as later than every event of the first.
        """
        per_device: dict[str, list[tuple[int, str, float, int]]] = defaultdict(list)
        for i in range(len(batch)):
            per_device[str(batch.device_id[i])].append(
                (int(batch.ts[i]), str(batch.kind[i]), float(batch.value[i]), i))
        out: list[Transition] = []
        for device_id, events in per_device.items():
            for ts, kind, value, i in sorted(events):
                out += self.feed(device_id, kind, ts, value, i)
        return out

    def feed(self, device_id: str, kind: str, ts: int, value: float, index: int) -> list[Transition]:
        """Transitions caused by one event, which must not be earlier than the device's last."""
        device = self.devices.setdefault(device_id, DeviceMeta(device_id))
        out: list[Transition] = []
        for rule in self.rules:
            if (rule.kind is not None and rule.kind != kind) or not where_matches(rule.where, device):
                continue
            clock = self.clocks.get((device_id, rule.kind))
            if rule.rate and clock is not None and ts <= clock:
                continue
            state = self.states.setdefault((rule.id, device_id), _State())
            for action, t, v in self._step(rule, state, ts, value, clock):
                out.append(self._transition(rule, device, action, t, v, kind, index))
        for stream in (None, kind):
            self.clocks[(device_id, stream)] = max(ts, self.clocks.get((device_id, stream), ts))
        return out

    def _step(
        self, rule: Rule, state: _State, ts: int, value: float, clock: int | None
    ) -> list[tuple[str, int, float]]:
        if rule.absent is not None:
            for_us = round(rule.absent.for_s * 1e6)
            events = []
            if state.firing:
                events.append(("clear", ts, value))
            elif clock is not None and ts - clock >= for_us:
                events += [("fire", clock + for_us, float("nan")), ("clear", ts, value)]
            state.firing = False
            return [e for e in events if e[0] == "fire" or rule.auto_resolve]
        x = value
        if rule.rate is not None:
            prev, state.prev = state.prev, (ts, value)
            if prev is None:
                return []
            x = (value - prev[1]) / float(ts - prev[0]) * (rule.rate.per_s * 1e6)
        cond = rule.condition
        assert cond is not None
        match = cond.holds(x)
        clear = rule.clear.holds(x) if rule.clear else not match
        match = match and not clear
        eligible = match
        if rule.for_s:
            if not match:
                state.run_start = None
            elif state.run_start is None:
                state.run_start = ts
            eligible = match and ts - state.run_start >= round(rule.for_s * 1e6)  # type: ignore[operator]
        if rule.count is not None and match:
            state.window.append(ts)
            within_us = round(rule.count.within_s * 1e6)
            eligible = sum(1 for w in state.window if w > ts - within_us) >= rule.count.at_least
        if eligible and not state.firing:
            state.firing = True
            return [("fire", ts, x)]
        if clear and state.firing:
            state.firing = False
            return [("clear", ts, x)] if rule.auto_resolve else []
        return []

    def check_absent(self, now_us: int) -> list[Transition]:
        """Absence fires as of ``now_us``, for devices whose stream clock is known."""
        out = []
        for rule in self.rules:
            if rule.absent is None:
                continue
            for_us = round(rule.absent.for_s * 1e6)
            for device_id, device in self.devices.items():
                if not where_matches(rule.where, device):
                    continue
                clock = self.clocks.get((device_id, rule.kind))
                state = self.states.setdefault((rule.id, device_id), _State())
                if clock is not None and not state.firing and clock <= now_us - for_us:
                    state.firing = True
                    t = clock + for_us
                    out.append(self._transition(rule, device, "fire", t, float("nan"), "", None))
        return out

    def _transition(
        self, rule: Rule, device: DeviceMeta, action: str, ts: int, value: float, kind: str,
        index: int | None,
    ) -> Transition:
        k = rule.kind or kind
        return Transition(
            rule.id, device.id, action, ts, value, rule.severity,
            render(rule, device, k, ts, value), k, index,
        )


def reference_alerts(
    rules: Iterable[Rule], devices: Iterable[DeviceMeta], batch: RuleBatch,
    now_us: int | None = None,
) -> list[AlertRecord]:
    """The alerts that evaluating every event of ``batch`` in event time gives.

    With ``now_us``, the absence timer runs once at that instant after all events.
    """
    ref = ReferenceEvaluator(rules, devices)
    transitions = ref.run(batch)
    if now_us is not None:
        transitions += ref.check_absent(now_us)
    return alert_records(transitions)
