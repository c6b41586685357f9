"""GET/POST /api/v1/alerts and /api/v1/silences on a real uvicorn server and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.alerts.conftest import (
    BASE_US,
    NB_DEVICES,
    NGA_BAY,
    VI_THANH,
    VT_DEVICES,
    Api,
    clear,
    fire,
    make_alerts,
    record,
    serve,
)

MINUTE_US = 60_000_000


@pytest.fixture(scope="module")
async def api(database: str, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    alerts = make_alerts(pool)
    # 15 Vị Thanh + 3 Ngã Bảy alerts, a minute apart; the first two Vị Thanh ones cleared.
    await record(alerts, pool, [
        fire("api-flood", d, BASE_US + i * MINUTE_US, severity="critical" if i % 3 else "warning")
        for i, d in enumerate(VT_DEVICES + NB_DEVICES)])
    await record(alerts, pool, [clear("api-flood", d, BASE_US + 30 * MINUTE_US)
                                for d in VT_DEVICES[:2]])
    async with serve(database, pool, alerts) as running:
        yield running


async def get(api: Api, path: str, role: str = "admin", **params: object) -> tuple[int, dict]:
    async with api.client(role) as client:
        r = await client.get(path, params=params)
    return r.status_code, r.json()


async def pages(api: Api, role: str = "admin", **params: object) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        status, body = await get(api, "/alerts", role, **params,
                                 **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_list_pages_newest_first_with_every_state_by_default(api: Api) -> None:
    items = await pages(api, limit=4, rule_id="api-flood")
    assert len(items) == 18 and len({a["id"] for a in items}) == 18
    assert [a["id"] for a in items] == sorted((a["id"] for a in items), reverse=True)
    assert {a["state"] for a in items} == {"firing", "resolved"}
    first = items[-1]
    assert set(first) == {"id", "rule_id", "device_id", "district", "kind", "severity", "state",
                          "message", "value", "count", "started_at", "last_seen_at",
                          "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
                          "silenced"}
    assert first["started_at"] == "2026-09-21T21:13:20+07:00"
    assert first["resolved_at"] == "2026-09-21T21:43:20+07:00"


async def test_list_filters(api: Api) -> None:
    def devices(items: list[dict]) -> list[str]:
        return sorted(a["device_id"] for a in items)

    assert devices(await pages(api, state="resolved", rule_id="api-flood")) == VT_DEVICES[:2]
    assert len(await pages(api, state="open", rule_id="api-flood")) == 16
    assert devices(await pages(api, district=NGA_BAY)) == NB_DEVICES
    warnings = await pages(api, severity="warning", rule_id="api-flood")
    assert {a["severity"] for a in warnings} == {"warning"} and len(warnings) == 6
    start = dt.datetime.fromtimestamp((BASE_US + 5 * MINUTE_US) / 1e6, dt.UTC)
    window = await pages(api, **{"from": start.isoformat(),
                                 "to": (start + dt.timedelta(minutes=3)).isoformat()})
    assert devices(window) == VT_DEVICES[5:8]
    assert await pages(api, rule_id="no-such-rule") == []
    status, body = await get(api, "/alerts", state="sleeping")
    assert status == 422 and body["error"] == "invalid"
    status, body = await get(api, "/alerts", cursor="abc")
    assert status == 400 and body["error"] == "bad_request"


async def test_agency_key_sees_only_its_districts(api: Api) -> None:
    items = await pages(api, "agency_vt")
    assert items and {a["district"] for a in items} == {VI_THANH}
    status, body = await get(api, "/alerts", "agency_vt", district=NGA_BAY)
    assert status == 403 and body["error"] == "forbidden"
    nb = (await pages(api, district=NGA_BAY))[0]
    assert (await get(api, f"/alerts/{nb['id']}", "agency_vt"))[0] == 404
    assert (await get(api, f"/alerts/{nb['id']}", "agency_all"))[0] == 200
    assert (await get(api, "/alerts", "ingest"))[0] == 403


async def test_ack_and_resolve_over_http(api: Api) -> None:
    alert = next(a for a in await pages(api, state="firing", district=NGA_BAY))
    path = f"/alerts/{alert['id']}"
    async with api.client("agency_all") as agency:
        assert (await agency.post(path + "/ack")).status_code == 403
    async with api.client("operator") as op:
        r = await op.post(path + "/ack", json={"note": "đã cử đội kiểm tra"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "test-operator"
        again = await op.post(path + "/ack")
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        assert again.json()["detail"]["state"] == "acknowledged"
        r = await op.post(path + "/resolve")  # no body at all
        assert r.status_code == 200 and r.json()["state"] == "resolved"
        assert (await op.post(path + "/resolve", json={"note": None})).status_code == 409
        assert (await op.post("/alerts/999999999/ack")).status_code == 404
        assert (await op.post(path + "/ack", json={"note": "x" * 3000})).status_code == 422
    status, detail = await get(api, path)
    assert status == 200 and detail["resolved_by"] == "test-operator"
    assert [(a["action"], a["actor"], a["note"]) for a in detail["audit"]] == [
        ("firing", "system", None), ("acknowledged", "test-operator", "đã cử đội kiểm tra"),
        ("resolved", "test-operator", None)]
    assert (await get(api, "/alerts/999999999"))[0] == 404


async def test_a_storm_group_is_acknowledged_at_once_with_an_audit_row_per_alert(
        api: Api, pool: asyncpg.Pool) -> None:
    devices = [f"api-storm-{i:03d}" for i in range(300)]
    await record(api.alerts, pool, [fire("api-storm", d, BASE_US + i) for i, d in enumerate(devices)])
    await record(api.alerts, pool, [clear("api-storm", d, BASE_US + MINUTE_US) for d in devices[:5]])
    rows = await pool.fetch("SELECT id, device_id FROM alerts WHERE rule_id = 'api-storm' ORDER BY id")
    ids = [r["id"] for r in rows]
    feed_before = await pool.fetchval("SELECT max(id) FROM alert_feed")
    async with api.client("agency_all") as agency:
        assert (await agency.post("/alerts/acknowledge", json={"ids": ids})).status_code == 403
    async with api.client("operator") as op:
        assert (await op.post(f"/alerts/{ids[5]}/ack")).status_code == 200
        assert (await op.post("/alerts/acknowledge", json={"ids": []})).status_code == 422
        r = await op.post("/alerts/acknowledge", json={
            "ids": [*reversed(ids), 999_999_999, ids[7]], "note": "lũ: đã báo các phường"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledged"] == ids[6:]
    assert body["not_firing"] == [{"id": i, "state": "resolved"} for i in ids[:5]] + [
        {"id": ids[5], "state": "acknowledged"}]
    assert body["not_found"] == [999_999_999]
    audit = await pool.fetch(
        "SELECT alert_id, actor, note FROM alert_audit WHERE action = 'acknowledged'"
        " AND alert_id = ANY($1::int8[]) ORDER BY alert_id", ids[6:])
    assert [(a["alert_id"], a["actor"], a["note"]) for a in audit] == [
        (i, "test-operator", "lũ: đã báo các phường") for i in ids[6:]]
    feed = await pool.fetch("SELECT alert_id, change FROM alert_feed WHERE id > $1 ORDER BY id",
                            feed_before)
    assert [(f["alert_id"], f["change"]) for f in feed] == (
        [(ids[5], "acknowledged")] + [(i, "acknowledged") for i in ids[6:]])
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE rule_id = 'api-storm'"
                               " AND state = 'acknowledged' AND acknowledged_by = 'test-operator'") == 295


async def test_silences_crud(api: Api) -> None:
    async with api.client("operator") as op:
        r = await op.post("/silences", json={
            "matchers": {"district": VI_THANH, "rule_id": "api-flood"}, "duration": "2h",
            "comment": "bảo trì trạm bơm"})
        assert r.status_code == 201, r.text
        silence = r.json()
        assert silence["active"] and silence["created_by"] == "test-operator"
        start = dt.datetime.fromisoformat(silence["starts_at"])
        assert dt.datetime.fromisoformat(silence["ends_at"]) - start == dt.timedelta(hours=2)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        r = await op.post("/silences", json={
            "matchers": {"district": NGA_BAY}, "starts_at": later.isoformat(),
            "ends_at": (later + dt.timedelta(hours=1)).isoformat()})
        assert r.status_code == 201 and not r.json()["active"]
        nb_id = r.json()["id"]
        for bad in ({"matchers": {}, "duration": "1h"},
                    {"matchers": {"colour": "red"}, "duration": "1h"},
                    {"matchers": {"severity": "loud"}, "duration": "1h"},
                    {"matchers": {"district": VI_THANH}},
                    {"matchers": {"district": VI_THANH}, "duration": "soon"},
                    {"matchers": {"district": VI_THANH}, "ends_at": "2020-01-01T00:00:00+07:00"},
                    {"matchers": {"district": VI_THANH}, "starts_at": "9999-12-31T23:00:00Z",
                     "duration": "2h"}):
            r = await op.post("/silences", json=bad)
            assert r.status_code == 422 and r.json()["error"] == "invalid", bad
    async with api.client("agency_vt") as agency:
        r = await agency.post("/silences", json={"matchers": {"district": VI_THANH},
                                                 "duration": "1h"})
        assert r.status_code == 403
        listed = (await agency.get("/silences")).json()["items"]
        assert [s["id"] for s in listed] == [silence["id"]]  # not the Ngã Bảy one
        assert (await agency.get(f"/silences/{nb_id}")).status_code == 404
    async with api.client("admin") as admin:
        assert {s["id"] for s in (await admin.get("/silences")).json()["items"]} >= {
            silence["id"], nb_id}
        assert (await admin.delete(f"/silences/{nb_id}")).status_code == 204
        assert (await admin.delete(f"/silences/{nb_id}")).status_code == 404
        assert (await admin.get(f"/silences/{nb_id}")).status_code == 404


async def test_openapi_documents_the_alert_routes(api: Api) -> None:
    async with api.client() as client:
        spec = (await client.get(api.url + "/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/ack",
                 "/api/v1/alerts/{alert_id}/resolve", "/api/v1/alerts/stream",
                 "/api/v1/silences", "/api/v1/silences/{silence_id}"):
        assert path in paths, path
    assert "409" in paths["/api/v1/alerts/{alert_id}/ack"]["post"]["responses"]
    assert "text/event-stream" in paths["/api/v1/alerts/stream"]["get"]["responses"]["200"]["content"]
