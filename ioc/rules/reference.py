"""Reference evaluator: the engine's semantics, one event and one rule at a time.

Plain Python, written for obviousness, not speed. Tests compare the
vectorized engine against it on random streams, and the benchmark uses it
as the naive baseline. Semantics are documented in ``engine.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ioc.rules.engine import RuleBatch, Transition
from ioc.rules.messages import render
from ioc.rules.model import DeviceMeta, Rule, where_matches


@dataclass(slots=True)
class _State:
    firing: bool = False
    run_start: int | None = None
    prev: tuple[int, float] | None = None
    window: list[int] = field(default_factory=list)


class ReferenceEvaluator:
    """Feeds events in arrival order through every rule's state machine."""

    def __init__(
        self, rules: Iterable[Rule], devices: Iterable[DeviceMeta] = (), max_lateness_s: float = 3600.0
    ) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.devices = {d.id: d for d in devices}
        self.lateness_us = round(max_lateness_s * 1e6)
        self.latest: dict[str, int] = {}
        self.clocks: dict[tuple[str, str], int] = {}
        self.states: dict[tuple[str, str], _State] = {}

    def run(self, batch: RuleBatch) -> list[Transition]:
        out: list[Transition] = []
        for i in range(len(batch)):
            out += self.feed(
                str(batch.device_id[i]), str(batch.kind[i]), int(batch.ts[i]), float(batch.value[i]), i
            )
        return out

    def feed(self, device_id: str, kind: str, ts: int, value: float, index: int) -> list[Transition]:
        """Transitions caused by one event."""
        device = self.devices.setdefault(device_id, DeviceMeta(device_id))
        prev_latest = self.latest.get(device_id)
        if prev_latest is not None and ts < prev_latest - self.lateness_us:
            return []
        self.latest[device_id] = ts if prev_latest is None else max(prev_latest, ts)
        out: list[Transition] = []
        for rule in self.rules:
            if (rule.kind is not None and rule.kind != kind) or not where_matches(rule.where, device):
                continue
            clock = prev_latest if rule.kind is None else self.clocks.get((device_id, kind))
            if clock is not None and (ts <= clock if rule.rate else ts < clock):
                continue
            state = self.states.setdefault((rule.id, device_id), _State())
            for action, t, v in self._step(rule, state, ts, value, clock):
                out.append(self._transition(rule, device, action, t, v, kind, index))
        old = self.clocks.get((device_id, kind))
        self.clocks[(device_id, kind)] = ts if old is None else max(old, ts)
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
                clock = (
                    self.latest.get(device_id) if rule.kind is None
                    else self.clocks.get((device_id, rule.kind))
                )
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
