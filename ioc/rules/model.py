"""Typed rules: the validated, immutable form of one entry of ``config/rules.yaml``.

Durations are kept in seconds (as written) and converted to integer
microseconds once, by the engine, so that every comparison on event time is
exact integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPS = (">", ">=", "<", "<=", "==", "!=", "between", "outside")
RANGE_OPS = ("between", "outside")
SEVERITIES = ("info", "warning", "critical")
MESSAGE_FIELDS = ("value", "ts", "device_id", "device_name", "district", "kind", "rule_id")


@dataclass(frozen=True, slots=True)
class Condition:
    """``value op threshold``; for ``between``/``outside`` the threshold is ``(lo, hi)``, inclusive."""

    op: str
    value: float | tuple[float, float]

    def holds(self, x: float) -> bool:
        """Scalar evaluation, used by the reference evaluator and for documentation by example."""
        op, v = self.op, self.value
        if isinstance(v, tuple):
            inside = v[0] <= x <= v[1]
            return inside if op == "between" else (x < v[0] or x > v[1])
        return {
            ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v, "==": x == v, "!=": x != v,
        }[op]


@dataclass(frozen=True, slots=True)
class Where:
    """Device scope; every given key must match (AND). ``tags``: the device has *all* of them."""

    districts: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.districts or self.device_ids or self.tags)


@dataclass(frozen=True, slots=True)
class Rate:
    """Change per ``per_s`` between consecutive readings: (v - v_prev) / (t - t_prev) * per."""

    per_s: float
    cond: Condition


@dataclass(frozen=True, slots=True)
class Absent:
    """No event (of the rule's kind, if any) from a device for ``for_s`` seconds."""

    for_s: float


@dataclass(frozen=True, slots=True)
class Count:
    """At least ``at_least`` matching events within the window (t - within, t]."""

    at_least: int
    within_s: float


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    """What rules need to know about a device: scope (district, tags, id) and message fields."""

    id: str
    name: str | None = None
    district: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. Exactly one of ``when``, ``rate``, ``absent`` is set; ``count`` needs ``when``."""

    id: str
    kind: str | None = None
    where: Where = field(default_factory=Where)
    when: Condition | None = None
    for_s: float = 0.0
    clear: Condition | None = None
    rate: Rate | None = None
    absent: Absent | None = None
    count: Count | None = None
    severity: str = "warning"
    message: str | None = None
    auto_resolve: bool = True
    enabled: bool = True
    description: str | None = None

    @property
    def condition(self) -> Condition | None:
        """The condition that makes an event match (on the value, or on the rate)."""
        return self.rate.cond if self.rate else self.when


def where_matches(where: Where, device: DeviceMeta) -> bool:
    """Scalar scope test (the engine does the same with arrays over all devices)."""
    if where.districts and device.district not in where.districts:
        return False
    if where.device_ids and device.id not in where.device_ids:
        return False
    return all(t in device.tags for t in where.tags)
