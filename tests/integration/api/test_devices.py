"""GET /devices, /devices/{id} (last values, online) and /devices/{id}/completeness."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from ioc.model import EventBatch
from tests.integration.api.conftest import Api, readings

MIN_US = 60_000_000
NOW = int(time.time()) * 1_000_000  # reset when the devices are seeded: "online" is relative to it
VN = dt.timezone(dt.timedelta(hours=7))


def show(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).astimezone(VN).isoformat()


@pytest.fixture(scope="module")
def seeded(api: Api) -> Api:
    global NOW
    NOW = int(time.time()) * 1_000_000
    # 1-minute device seen 30 s ago: online. 5-minute device last seen 20 min ago: offline.
    api.store(readings("hg-nb-wl-001", NOW - 30 * MIN_US - 30_000_000, 31))
    api.store(readings("hg-vt-wl-001", NOW - 120 * MIN_US, 21, step_s=300))
    # Two kinds from one station; the older kind still has its last value.
    api.store(readings("hg-vt-rf-001", NOW - 60 * MIN_US, 4, step_s=900, kind="rainfall",
                       unit="mm"))
    api.store(readings("hg-vt-rf-001", NOW - 50 * MIN_US, 2, kind="temperature", unit="C",
                       value0=29.5))
    # Auto-registered devices (no interval): online within 15 minutes.
    api.store(readings("auto-fresh-1", NOW - 5 * MIN_US, 1, kind="pm25"))
    api.store(readings("auto-stale-1", NOW - 20 * MIN_US, 1, kind="pm25"))
    return api


def by_id(api: Api, role: str = "admin", **params: object) -> dict[str, dict]:
    r = api.get("/devices", role, params=params)
    assert r.status_code == 200, r.text
    return {d["id"]: d for d in r.json()["items"]}


def test_list_fields_last_values_and_online(seeded: Api) -> None:
    devices = by_id(seeded)
    assert set(devices) == {"hg-vt-wl-001", "hg-vt-rf-001", "hg-cta-wl-001", "hg-nb-wl-001",
                            "auto-fresh-1", "auto-stale-1"}
    wl = devices["hg-vt-wl-001"]
    assert {k: wl[k] for k in ("name", "kind", "district", "ward", "lat", "lon", "interval",
                               "tags")} == {
        "name": "Trạm Cầu Cái Nhúc", "kind": "water_level", "district": "Vị Thanh",
        "ward": "Phường 1", "lat": 9.7842, "lon": 105.4701, "interval": 300.0,
        "tags": ["river", "tide"]}
    last_us = NOW - 20 * MIN_US
    assert wl["last_seen"] == show(last_us) and wl["online"] is False
    assert wl["last_values"] == {"water_level": {
        "value": readings("x", 0, 21).value[-1].item(), "ts": show(last_us)}}
    assert devices["hg-nb-wl-001"]["online"] is True
    rf = devices["hg-vt-rf-001"]["last_values"]
    assert set(rf) == {"rainfall", "temperature"}
    assert rf["rainfall"]["ts"] == show(NOW - 15 * MIN_US)
    temperature = readings("x", 0, 2, kind="temperature", value0=29.5).value[-1].item()
    assert rf["temperature"] == {"value": temperature, "ts": show(NOW - 49 * MIN_US)}
    assert devices["auto-fresh-1"]["online"] is True and devices["auto-fresh-1"]["interval"] is None
    assert devices["auto-stale-1"]["online"] is False
    never = devices["hg-cta-wl-001"]
    assert never["last_seen"] is None and never["online"] is False and never["last_values"] == {}


def test_filters_and_paging(seeded: Api) -> None:
    assert set(by_id(seeded, district="Vị Thanh")) == {"hg-vt-wl-001", "hg-vt-rf-001"}
    assert set(by_id(seeded, kind="rainfall")) == {"hg-vt-rf-001"}
    assert set(by_id(seeded, tag="river")) == {"hg-vt-wl-001", "hg-cta-wl-001"}
    assert set(by_id(seeded, tag="river,tide")) == {"hg-vt-wl-001"}
    assert set(by_id(seeded, online="true")) == {"hg-nb-wl-001", "auto-fresh-1", "hg-vt-rf-001"}
    assert "hg-vt-rf-001" not in by_id(seeded, online="false")
    seen, cursor = [], None
    while True:
        body = seeded.get("/devices", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
                          ).json()
        seen += [d["id"] for d in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(by_id(seeded))


def test_one_device(seeded: Api) -> None:
    one = seeded.get("/devices/hg-vt-rf-001").json()
    assert one == by_id(seeded)["hg-vt-rf-001"]
    missing = seeded.get("/devices/nope-1")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert seeded.get("/devices/hg-vt-rf-001", "agency_vt").status_code == 200
    other = seeded.get("/devices/hg-nb-wl-001", "agency_vt")
    assert other.status_code == 403 and other.json()["error"] == "forbidden"
    assert seeded.get("/devices/auto-fresh-1", "agency_vt").status_code == 403


def test_completeness_counts_and_gaps(api: Api) -> None:
    start = (NOW // (3600 * 1_000_000) - 30) * 3600 * 1_000_000  # an hour boundary, 30 h ago
    ts = [start + i * 5 * MIN_US for i in range(24)]  # 2 hours of a 5-minute device
    keep = [t for i, t in enumerate(ts) if not 6 <= i <= 11]  # 30 minutes lost
    n = len(keep)
    api.store(EventBatch(
        device_id=["hg-cta-wl-001"] * (n + 1), event_id=[f"c-{i}" for i in range(n + 1)],
        kind=["water_level"] * (n + 1), ts=np.array([*keep, keep[0]], dtype=np.int64),
        value=np.ones(n + 1), unit=["m"] * (n + 1), attrs=[None] * (n + 1)))  # one repeat ts
    params = {"from": show(start), "to": show(start + 120 * MIN_US)}
    r = api.get("/devices/hg-cta-wl-001/completeness", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expected"] == 24 and body["received"] == 18 and body["ratio"] == 0.75
    assert body["kind"] == "water_level" and body["interval"] == 300.0
    assert body["gaps"] == [{"from": show(ts[5]), "to": show(ts[12]), "seconds": 2100.0}]
    assert body["from"] == show(start)
    # A range with nothing: one gap over all of it.
    empty = api.get("/devices/hg-cta-wl-001/completeness", params={
        "from": show(start - 240 * MIN_US), "to": show(start - 120 * MIN_US)}).json()
    assert empty["received"] == 0 and empty["ratio"] == 0.0 and len(empty["gaps"]) == 1
    # Without `from`, the day before `to`, never before the earliest instant taken.
    early = api.get("/devices/hg-cta-wl-001/completeness", params={"to": "0001-01-02T05:00:00Z"})
    assert early.status_code == 200 and early.json()["received"] == 0, early.text
    too_early = api.get("/devices/hg-cta-wl-001/completeness", params={"to": "0001-01-01T03:00Z"})
    assert too_early.status_code == 422
    auto = api.get("/devices/auto-fresh-1/completeness")
    assert auto.status_code == 422 and "interval" in auto.json()["detail"]
    assert api.get("/devices/nope-1/completeness").status_code == 404
