"""Small, exact payload sets for delivery tests: every event has a known, unique event_id."""

from __future__ import annotations

import datetime as dt
import json

DISTRICTS = ("vt", "nb", "lm", "vth", "ct", "cta", "ph")


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{DISTRICTS[i % 7]}-wl-{i:03d}" for i in range(count)]


def water_levels(n: int, prefix: str, devices: int = 40) -> list[tuple[str, str, bytes]]:
    """(device_id, event_id, payload) with ts in +07:00 like the field gateways send."""
    tz = dt.timezone(dt.timedelta(hours=7))
    start = dt.datetime.now(tz).replace(microsecond=0) - dt.timedelta(hours=2)
    ids = device_ids(prefix, devices)
    out = []
    for i in range(n):
        device = ids[i % devices]
        event_id = f"{prefix}-{i:08d}"
        ts = (start + dt.timedelta(milliseconds=100 * i)).isoformat(timespec="milliseconds")
        body = {"event_id": event_id, "device_id": device, "kind": "water_level", "ts": ts,
                "value": round(1.2 + (i % 50) / 100, 3), "unit": "m",
                "attrs": {"station": "Cầu Cái Nhúc", "seq": i}}
        out.append((device, event_id, json.dumps(body, ensure_ascii=False).encode()))
    return out


def as_mqtt(items: list[tuple[str, str, bytes]]) -> list[tuple[str, bytes]]:
    return [(f"ioc/v1/events/{device}", payload) for device, _, payload in items]


def as_kafka(items: list[tuple[str, str, bytes]]) -> list[tuple[str, bytes]]:
    return [(device, payload) for device, _, payload in items]
