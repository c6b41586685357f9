"""GET /events: pages and cursor, filters, time zones, CSV/NDJSON exports, district scoping."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time

import numpy as np
import pytest

from ioc.model import EventBatch
from tests.integration.api.conftest import Api, readings

HOUR_US = 3_600_000_000
START = int(time.time() // 3600 - 48) * HOUR_US  # two days ago, on an hour
# Explicit, so that the default window (the last 24 h from a bucket boundary) and the time
# of day the suite runs at cannot decide what an aggregate sees.
SINCE = dt.datetime.fromtimestamp(START / 1e6 - 86400, dt.UTC).isoformat()
TRICKY = "'; DROP TABLE events; --"
ATTRS = '{"station": "Cầu Cái Nhúc", "note": "a,b \\"quoted\\"\\nnext line"}'


@pytest.fixture(scope="module")
def seeded(api: Api) -> Api:
    api.store(readings("hg-vt-wl-001", START, 600, attrs=ATTRS))
    api.store(readings("hg-vt-rf-001", START, 200, step_s=180, kind="rainfall", unit="mm"))
    api.store(readings("hg-cta-wl-001", START, 300, step_s=120))
    api.store(readings("hg-nb-wl-001", START, 300, step_s=120))
    # A device whose district holds SQL metacharacters, and kinds that look like LIKE patterns.
    api.sql("INSERT INTO devices (id, kind, district, registered_by) VALUES ($1, 'x', $2, 'api')",
            "hg-odd-001", TRICKY)
    api.store(readings("hg-odd-001", START, 10, kind="odd.kind"))
    return api


def all_pages(api: Api, role: str = "admin", **params: object) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        r = api.get("/events", role, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_page_shape_order_and_time_zone(seeded: Api) -> None:
    r = seeded.get("/events", params={"device_id": "hg-vt-wl-001", "limit": 2})
    body = r.json()
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"]
    first, second = body["items"]
    assert set(first) == {"event_id", "device_id", "kind", "ts", "value", "unit", "attrs"}
    last_us = START + 599 * 60_000_000
    want = dt.datetime.fromtimestamp(last_us / 1e6, dt.UTC)
    assert first["ts"] == want.astimezone(dt.timezone(dt.timedelta(hours=7))).isoformat()
    assert first["ts"].endswith("+07:00") and first["ts"] > second["ts"]
    assert first["attrs"] == json.loads(ATTRS) and first["unit"] == "m"

    utc = seeded.get("/events", params={"device_id": "hg-vt-wl-001", "limit": 1, "tz": "UTC"})
    assert utc.json()["items"][0]["ts"] == want.isoformat()
    asc = seeded.get("/events", params={"device_id": "hg-vt-wl-001", "limit": 1, "order": "asc"})
    assert asc.json()["items"][0]["event_id"].endswith("-0000000")
    assert seeded.get("/events", params={"tz": "Mars/Olympus"}).status_code == 422


def test_every_row_once_in_both_orders(seeded: Api) -> None:
    want = {r["event_id"] for r in seeded.sql("SELECT event_id FROM events")}
    for order in ("desc", "asc"):
        items = all_pages(seeded, order=order, limit=97)
        ids = [i["event_id"] for i in items]
        assert len(ids) == len(set(ids)) == len(want) and set(ids) == want
        keys = [(i["ts"], i["device_id"], i["event_id"]) for i in items]
        assert keys == sorted(keys, reverse=order == "desc")


def test_cursor_is_stable_under_concurrent_inserts(seeded: Api) -> None:
    """Rows stored before paging starts appear exactly once while others are inserted
    everywhere in the range (newer, older and between the page boundaries)."""
    before = {r["event_id"] for r in seeded.sql(
        "SELECT event_id FROM events WHERE device_id = 'hg-nb-wl-001'")}
    stop = threading.Event()
    inserted = 0

    def writer() -> None:
        nonlocal inserted
        rng = np.random.default_rng(7)
        k = 0
        while not stop.is_set():
            n = 50
            ts = START + rng.integers(-HOUR_US, 12 * HOUR_US, n)
            ts[:10] = int(time.time() * 1e6) + np.arange(10)  # also at the newest end
            seeded.store(EventBatch(
                device_id=["hg-nb-wl-001"] * n, event_id=[f"late-{k}-{i}" for i in range(n)],
                kind=["water_level"] * n, ts=ts.astype(np.int64), value=rng.random(n),
                unit=["m"] * n, attrs=[None] * n))
            inserted += n
            k += 1
            time.sleep(0.02)

    # Oldest first, a listing with no end would follow the writer forever: end it at now.
    until = dt.datetime.now(dt.UTC).isoformat()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for order in ("desc", "asc"):
            ids = [i["event_id"] for i in all_pages(seeded, device_id="hg-nb-wl-001", limit=23,
                                                    order=order, to=until)]
            assert len(ids) == len(set(ids)), "a row was repeated"
            assert before <= set(ids), f"rows missed: {sorted(before - set(ids))[:5]}"
    finally:
        stop.set()
        thread.join()
    assert inserted > 0


def test_filters(seeded: Api) -> None:
    one = all_pages(seeded, device_id="hg-cta-wl-001", limit=1000)
    assert len(one) == 300 and {i["device_id"] for i in one} == {"hg-cta-wl-001"}
    two = all_pages(seeded, device_id="hg-cta-wl-001,hg-vt-rf-001", limit=1000)
    repeated = all_pages(seeded, device_id=["hg-cta-wl-001", "hg-vt-rf-001"], limit=1000)
    assert len(two) == len(repeated) == 500
    rain = all_pages(seeded, kind="rainfall", limit=1000)
    assert len(rain) == 200 and {i["kind"] for i in rain} == {"rainfall"}
    vt = all_pages(seeded, district="Vị Thanh", limit=1000)
    assert {i["device_id"] for i in vt} == {"hg-vt-wl-001", "hg-vt-rf-001"} and len(vt) == 800
    cta = all_pages(seeded, district="Châu Thành A", limit=1000)
    assert {i["device_id"] for i in cta} == {"hg-cta-wl-001"}
    frm = dt.datetime.fromtimestamp(START / 1e6 + 600, dt.UTC)
    to = frm + dt.timedelta(minutes=10)
    window = all_pages(seeded, device_id="hg-vt-wl-001", **{"from": frm.isoformat(),
                                                           "to": to.isoformat()})
    assert len(window) == 10  # [from, to): every minute, the end excluded
    local = frm.astimezone(dt.timezone(dt.timedelta(hours=7))).isoformat()
    assert len(all_pages(seeded, device_id="hg-vt-wl-001", **{"from": local, "to": to.isoformat()})) == 10
    naive = seeded.get("/events", params={"from": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["error"] == "invalid"
    assert seeded.get("/events", params={"from": to.isoformat(), "to": frm.isoformat()}).status_code == 422


@pytest.mark.parametrize("value", [TRICKY, "%", "_", "hg-%", "Vị_Thanh", "\\", "' OR '1'='1"])
def test_sql_metacharacters_are_plain_values(seeded: Api, value: str) -> None:
    count = seeded.sql("SELECT count(*) FROM events")[0][0]
    for param in ("device_id", "kind", "district"):
        r = seeded.get("/events", params={param: value})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        if param == "district" and value == TRICKY:
            assert {i["device_id"] for i in items} == {"hg-odd-001"} and len(items) == 10
        else:
            assert items == []
        assert seeded.get("/events/aggregate", params={param: value}).status_code == 200
    assert seeded.sql("SELECT count(*) FROM events")[0][0] == count


def test_unicode_districts_round_trip(seeded: Api) -> None:
    r = seeded.get("/events/aggregate", params={"district": "Châu Thành A,Vị Thanh",
                                                "group": "district", "bucket": "1d",
                                                "from": SINCE})
    assert {row["district"] for row in r.json()["items"]} == {"Châu Thành A", "Vị Thanh"}
    devices = seeded.get("/devices", params={"district": "Châu Thành A"}).json()["items"]
    assert [d["id"] for d in devices] == ["hg-cta-wl-001"]


def test_csv_and_ndjson_exports(seeded: Api) -> None:
    params = {"device_id": "hg-vt-wl-001", "order": "asc"}
    pages = all_pages(seeded, limit=10000, **params)
    r = seeded.get("/events", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["event_id", "device_id", "kind", "ts", "value", "unit", "attrs"]
    assert len(rows) == 601
    assert [row[0] for row in rows[1:]] == [p["event_id"] for p in pages]
    assert all(json.loads(row[6]) == json.loads(ATTRS) for row in rows[1:])
    assert [row[3] for row in rows[1:]] == [p["ts"] for p in pages]
    assert [float(row[4]) for row in rows[1:]] == [p["value"] for p in pages]

    nd = seeded.get("/events", params=params, headers={"Accept": "application/x-ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in nd.text.splitlines()] == pages
    by_accept = seeded.get("/events", params=params, headers={"Accept": "text/csv"})
    assert by_accept.text == r.text


def test_agency_limited_to_a_district(seeded: Api) -> None:
    mine = all_pages(seeded, "agency_vt", limit=1000)
    assert {i["device_id"] for i in mine} == {"hg-vt-wl-001", "hg-vt-rf-001"}
    export = seeded.get("/events", "agency_vt", params={"format": "csv"})
    assert {row[1] for row in list(csv.reader(io.StringIO(export.text)))[1:]} == {
        "hg-vt-wl-001", "hg-vt-rf-001"}
    agg = seeded.get("/events/aggregate", "agency_vt",
                     params={"group": "district", "bucket": "1d", "from": SINCE})
    assert {row["district"] for row in agg.json()["items"]} == {"Vị Thanh"}
    for params in ({"district": "Ngã Bảy"}, {"district": "Vị Thanh,Châu Thành A"},
                   {"device_id": "hg-nb-wl-001"}, {"device_id": "hg-vt-wl-001,hg-odd-001"}):
        for path in ("/events", "/events/aggregate"):
            r = seeded.get(path, "agency_vt", params=params)
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (path, params)
        csv_r = seeded.get("/events", "agency_vt", params={**params, "format": "csv"})
        assert csv_r.status_code == 403
    everything = all_pages(seeded, "agency_all", limit=10000)
    assert len({i["device_id"] for i in everything}) == 5


def test_bad_cursors(seeded: Api) -> None:
    body = seeded.get("/events", params={"limit": 1}).json()
    mismatch = seeded.get("/events", params={"cursor": body["next_cursor"], "order": "asc"})
    assert mismatch.status_code == 422
    for cursor in ("not base64!", "e30", "WzEsMiwzXQ"):
        r = seeded.get("/events", params={"cursor": cursor})
        assert r.status_code == 422 and r.json()["error"] == "invalid"


def test_nul_characters_are_refused_not_crashing(seeded: Api) -> None:
    for path, param in (("/events", "kind"), ("/events", "device_id"), ("/events/aggregate",
                        "district"), ("/devices", "kind"), ("/dead-letters", "reason")):
        r = seeded.get(path, params={param: "water\x00level"})
        assert r.status_code == 422 and r.json()["error"] == "invalid", (path, param)
