"""Alert message templates: ``str.format`` over a fixed set of fields.

Templates are checked when a rule is loaded (unknown fields, bad format
specs) so that rendering at fire time cannot fail. ``ts`` is an aware
datetime in Vietnam time (UTC+07:00, no DST), so ``{ts:%H:%M %d/%m}`` reads
naturally on the operators' wall screen.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from string import Formatter

from ioc.rules.model import MESSAGE_FIELDS, DeviceMeta, Rule

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).astimezone(VIETNAM_TZ)
DEFAULT_MESSAGE = "{rule_id}: {kind} = {value:g} tại {device_name}"
DEFAULT_ABSENT_MESSAGE = "{rule_id}: không nhận được dữ liệu từ {device_name}"
_SAMPLE = {
    "value": 1.5,
    "ts": datetime(2026, 1, 1, tzinfo=VIETNAM_TZ),
    "device_id": "hg-vt-wl-001",
    "device_name": "Trạm mẫu",
    "district": "Vị Thanh",
    "kind": "water_level",
    "rule_id": "rule",
}


def template_problems(template: str, *, absent: bool) -> list[str]:
    """Why ``template`` cannot be rendered (empty when it can).

    Absence alerts have no reading, so ``{value}`` is refused for them rather
    than rendering ``nan``.
    """
    allowed = set(MESSAGE_FIELDS) - ({"value"} if absent else set())
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as e:
        return [f"invalid template: {e}"]
    problems = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name not in allowed:
            hint = " (absent rules have no value)" if absent and name == "value" else ""
            problems.append(
                f"unknown field {{{name}}}{hint}; use {', '.join(sorted(allowed))}"
            )
    if not problems:
        try:
            template.format(**_SAMPLE)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            problems.append(f"invalid template: {e}")
    return problems


def render(rule: Rule, device: DeviceMeta, kind: str, ts_us: int, value: float) -> str:
    """The alert text for one transition of ``rule`` on ``device``."""
    template = rule.message or (DEFAULT_ABSENT_MESSAGE if rule.absent else DEFAULT_MESSAGE)
    return template.format(
        value=value,
        ts=_EPOCH + timedelta(microseconds=ts_us),
        device_id=device.id,
        device_name=device.name or device.id,
        district=device.district or "",
        kind=kind,
        rule_id=rule.id,
    )


def renderer(rule: Rule) -> Callable[[DeviceMeta, str, int, float], str]:
    """``render`` bound to ``rule``: the same text, for rendering many transitions.

    The per-rule work (choosing the template) is done once, and the ``ts``
    datetime is built only when the template can refer to it (its text
    contains ``ts``), which the default templates do not.
    """
    template = rule.message or (DEFAULT_ABSENT_MESSAGE if rule.absent else DEFAULT_MESSAGE)
    fmt = template.format
    rule_id = rule.id
    if "ts" in template:
        def with_ts(device: DeviceMeta, kind: str, ts_us: int, value: float) -> str:
            return fmt(
                value=value, ts=_EPOCH + timedelta(microseconds=ts_us), device_id=device.id,
                device_name=device.name or device.id, district=device.district or "",
                kind=kind, rule_id=rule_id,
            )
        return with_ts

    def without_ts(device: DeviceMeta, kind: str, ts_us: int, value: float) -> str:
        return fmt(
            value=value, device_id=device.id, device_name=device.name or device.id,
            district=device.district or "", kind=kind, rule_id=rule_id,
        )
    return without_ts
