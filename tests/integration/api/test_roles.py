"""Every history route x every role: status codes, and a limited agency against another district."""

from __future__ import annotations

import time

import pytest

from tests.integration.api.conftest import Api, readings

READ = [
    ("GET", "/events", {}),
    ("GET", "/events", {"format": "csv"}),
    ("GET", "/events", {"format": "ndjson"}),
    ("GET", "/events/aggregate", {"bucket": "1h"}),
    ("GET", "/devices", {}),
    ("GET", "/devices/hg-vt-wl-001", {}),
    ("GET", "/devices/hg-vt-wl-001/completeness", {}),
]
OPERATE = [
    ("GET", "/dead-letters", {}),
    ("POST", "/dead-letters/999999/replay", {}),  # 404 once allowed
]
OTHER_DISTRICT = [
    ("GET", "/events", {"district": "Ngã Bảy"}),
    ("GET", "/events", {"device_id": "hg-nb-wl-001", "format": "csv"}),
    ("GET", "/events/aggregate", {"district": "Ngã Bảy"}),
    ("GET", "/events/aggregate", {"device_id": "hg-nb-wl-001"}),
    ("GET", "/devices", {"district": "Ngã Bảy"}),
    ("GET", "/devices/hg-nb-wl-001", {}),
    ("GET", "/devices/hg-nb-wl-001/completeness", {}),
]

EXPECTED = {
    "admin": {"read": 200, "operate": None, "other": 200},
    "operator": {"read": 200, "operate": None, "other": 200},
    "agency_vt": {"read": 200, "operate": 403, "other": 403},
    "agency_all": {"read": 200, "operate": 403, "other": 200},
    "ingest": {"read": 403, "operate": 403, "other": 403},
    None: {"read": 401, "operate": 401, "other": 401},
}


@pytest.fixture(scope="module")
def seeded(api: Api) -> Api:
    now = int(time.time()) * 1_000_000
    api.store(readings("hg-vt-wl-001", now - 3_600_000_000, 60))
    api.store(readings("hg-nb-wl-001", now - 3_600_000_000, 60))
    return api


def call(api: Api, role: str | None, method: str, path: str, params: dict):
    if method == "GET":
        return api.get(path, role, params=params)
    return api.post(path, role)


@pytest.mark.parametrize("role", list(EXPECTED), ids=lambda r: r or "no-key")
def test_role_matrix(seeded: Api, role: str | None) -> None:
    want = EXPECTED[role]
    for group, routes in (("read", READ), ("operate", OPERATE), ("other", OTHER_DISTRICT)):
        for method, path, params in routes:
            r = call(seeded, role, method, path, params)
            expected = want[group]
            if expected is None:  # allowed: the route's own answer
                expected = 404 if method == "POST" else 200
            assert r.status_code == expected, (role, method, path, params, r.text[:300])
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/json"
                assert r.json()["error"] in ("unauthorized", "forbidden", "not_found")


def test_invalid_key_is_401(seeded: Api) -> None:
    for method, path, params in READ + OPERATE:
        r = seeded.get(path, None, params=params, headers={"Authorization": "Bearer ioc_nope"}) \
            if method == "GET" else seeded.post(path, None)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers.get("www-authenticate") == "Bearer"


def test_limited_agency_sees_only_its_district(seeded: Api) -> None:
    events = seeded.get("/events", "agency_vt", params={"limit": 1000}).json()["items"]
    assert events and {e["device_id"] for e in events} == {"hg-vt-wl-001"}
    devices = seeded.get("/devices", "agency_vt").json()["items"]
    assert {d["district"] for d in devices} == {"Vị Thanh"}
    agg = seeded.get("/events/aggregate", "agency_vt", params={"bucket": "1d"}).json()["items"]
    assert {row["device_id"] for row in agg} == {"hg-vt-wl-001"}
    assert seeded.get("/devices", "agency_vt", params={"district": "Vị Thanh"}).status_code == 200
