"""GET /events/aggregate against a SQL reference, on plain PostgreSQL and on TimescaleDB.

The reference buckets by epoch arithmetic (not date_bin/time_bucket) from the raw events;
floating sums may differ in the last bits with the summation order, nothing else may.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import numpy as np
import pytest

from ioc.model import EventBatch
from tests.integration.api.conftest import Api

HOUR = 3600
DAY0 = (int(time.time()) // 86400 - 3) * 86400  # three UTC days ago, midnight UTC
ORIGIN = 946_684_800 - 7 * HOUR  # 2000-01-01T00:00:00+07:00
WIDTH = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "6h": 21600, "12h": 43200,
         "1d": 86400}
DEVICES = ["hg-vt-wl-001", "hg-vt-rf-001", "hg-cta-wl-001", "hg-nb-wl-001", "auto-agg-1"]


def dataset() -> EventBatch:
    """Two days of irregular readings (µs timestamps, some exactly on bucket edges), 2 kinds."""
    rng = np.random.default_rng(11)
    n = 40_000
    ts = (DAY0 * 1_000_000 + rng.integers(0, 2 * 86400 * 1_000_000, n)).astype(np.int64)
    ts[:500] = (DAY0 + rng.integers(0, 48, 500) * HOUR) * 1_000_000  # on hour/day edges
    dev = rng.integers(0, len(DEVICES), n)
    kinds = np.where(rng.random(n) < 0.8, "water_level", "salinity")
    return EventBatch(
        device_id=[DEVICES[i] for i in dev.tolist()], event_id=[f"a-{i}" for i in range(n)],
        kind=kinds.tolist(), ts=ts, value=np.round(rng.normal(1.5, 2.0, n), 6),
        unit=["m"] * n, attrs=[None] * n)


REFERENCE = """
WITH b AS (
    SELECT to_timestamp(floor((extract(epoch FROM e.ts) - $2) / $1) * $1 + $2) AS bucket,
           CASE WHEN $5 THEN d.district ELSE e.device_id END AS k, e.kind, e.value, e.ts,
           e.device_id, e.event_id
    FROM events e JOIN devices d ON d.id = e.device_id
    WHERE e.ts >= $3 AND e.ts < $4
)
SELECT bucket, k, kind, avg(value) AS avg, min(value) AS min, max(value) AS max,
       sum(value) AS sum, count(*) AS count,
       (array_agg(value ORDER BY ts DESC, device_id DESC, event_id DESC))[1] AS last
FROM b GROUP BY 1, 2, 3
"""


def reference(api: Api, bucket: str, group: str, start: dt.datetime, end: dt.datetime
              ) -> dict[tuple, dict[str, Any]]:
    rows = api.sql(REFERENCE, WIDTH[bucket], ORIGIN, start, end, group == "district")
    return {(r["bucket"], r["k"], r["kind"]): dict(r) for r in rows}


def answer(api: Api, bucket: str, agg: str, group: str, start: dt.datetime, end: dt.datetime,
           **extra: str) -> tuple[dict[tuple, dict[str, Any]], str]:
    r = api.get("/events/aggregate", params={"bucket": bucket, "agg": agg, "group": group,
                                             "from": start.isoformat(), "to": end.isoformat(),
                                             "tz": "UTC", **extra})
    assert r.status_code == 200, r.text
    key = "district" if group == "district" else "device_id"
    out = {}
    for row in r.json()["items"]:
        assert set(row) == {"bucket", key, "kind", *agg.split(",")}
        out[(dt.datetime.fromisoformat(row["bucket"]), row[key], row["kind"])] = row
    return out, r.headers["x-aggregate-source"]


def assert_same(got: dict, want: dict, aggs: list[str]) -> None:
    assert got.keys() == want.keys()
    for k, row in got.items():
        for agg in aggs:
            if agg in ("count", "min", "max", "last"):
                assert row[agg] == want[k][agg], (k, agg)
            else:
                assert math.isclose(row[agg], want[k][agg], rel_tol=1e-9, abs_tol=1e-9), (k, agg)


ALL = "avg,min,max,sum,count,last"
WITHOUT_LAST = "avg,min,max,sum,count"
UTC = dt.UTC
CASES = [  # bucket, group, start offset (s from DAY0), end offset
    ("1m", "device", 3 * HOUR, 5 * HOUR),
    ("5m", "device", 0, 2 * 86400),
    ("15m", "district", 7 * HOUR + 1800, 20 * HOUR),
    ("1h", "device", 0, 2 * 86400),
    ("6h", "district", 0, 2 * 86400),
    ("1d", "device", 0, 2 * 86400),
    ("1d", "district", 17 * HOUR, 41 * HOUR),  # exactly one Vietnamese day
    ("12h", "device", 3 * HOUR + 17, 40 * HOUR + 3),  # unaligned ends
]


def span(a: int, b: int) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromtimestamp(DAY0 + a, UTC), dt.datetime.fromtimestamp(DAY0 + b, UTC)


@pytest.fixture(scope="module")
def pg(api: Api) -> Api:
    api.store(dataset())
    return api


@pytest.mark.parametrize("bucket, group, a, b", CASES)
def test_matches_reference_on_postgres(pg: Api, bucket: str, group: str, a: int, b: int) -> None:
    start, end = span(a, b)
    got, source = answer(pg, bucket, ALL, group, start, end)
    assert source == "events"
    assert_same(got, reference(pg, bucket, group, start, end), ALL.split(","))


def test_day_buckets_are_vietnamese_days(pg: Api) -> None:
    start, end = span(0, 2 * 86400)
    got, _ = answer(pg, "1d", "count", "device", start, end, tz="Asia/Ho_Chi_Minh")
    assert {k[0].strftime("%H:%M%z") for k in got} == {"00:00+0700"}


def test_filters_and_validation(pg: Api) -> None:
    start, end = span(0, 86400)
    got, _ = answer(pg, "1h", "count", "device", start, end, device_id="hg-vt-wl-001",
                    kind="salinity")
    assert got and {(k[1], k[2]) for k in got} == {("hg-vt-wl-001", "salinity")}
    for params in ({"bucket": "2m"}, {"agg": "median"}, {"agg": ""}, {"group": "ward"}):
        assert pg.get("/events/aggregate", params=params).status_code == 422
    default = pg.get("/events/aggregate", params={"bucket": "1h"})
    assert default.status_code == 200 and default.json()["next_cursor"] is None
    # Without `from`, the day before `to`, never before the earliest instant taken; instants
    # at the ends of what a datetime holds are refused, not a server error.
    early = pg.get("/events/aggregate", params={"bucket": "1d", "to": "0001-01-02T12:00:00Z"})
    assert early.status_code == 200 and early.json()["items"] == []
    for to in ("0001-01-01T03:00:01Z", "9999-12-31T23:59:59.999999Z"):
        refused = pg.get("/events/aggregate", params={"bucket": "1d", "to": to})
        assert refused.status_code == 422 and "`to` must lie between" in refused.json()["detail"]


@pytest.fixture(scope="module")
def ts(tsdb_api: Api) -> Api:
    tsdb_api.store(dataset())
    refresh(tsdb_api)
    return tsdb_api


def refresh(api: Api) -> None:
    for view in ("events_1m", "events_1h"):
        api.sql(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")


@pytest.mark.timescaledb
@pytest.mark.parametrize("bucket, group, a, b", CASES)
def test_rollups_give_the_reference_numbers(ts: Api, pg: Api, bucket: str, group: str, a: int,
                                            b: int) -> None:
    start, end = span(a, b)
    want = reference(ts, bucket, group, start, end)
    got, source = answer(ts, bucket, WITHOUT_LAST, group, start, end)
    aligned_hour = bucket not in ("1m", "5m", "15m", "30m") and a % HOUR == 0 and b % HOUR == 0
    expected = "events_1h" if aligned_hour else "events_1m" if a % 60 == b % 60 == 0 else "events"
    assert source == expected
    assert_same(got, want, WITHOUT_LAST.split(","))
    with_last, source = answer(ts, bucket, ALL, group, start, end)
    assert source == "events"
    assert_same(with_last, want, ALL.split(","))
    on_postgres, _ = answer(pg, bucket, WITHOUT_LAST, group, start, end)
    assert_same(got, on_postgres, WITHOUT_LAST.split(","))


@pytest.mark.timescaledb
def test_late_events_bypass_stale_rollups(ts: Api) -> None:
    start, end = span(0, 86400)
    before, source = answer(ts, "1h", "count,sum", "device", start, end)
    assert source == "events_1h"
    late_ts = (DAY0 + 5 * HOUR + 123) * 1_000_000
    ts.store(EventBatch(device_id=["hg-vt-wl-001"], event_id=["late-1"], kind=["water_level"],
                        ts=np.array([late_ts], dtype=np.int64), value=np.array([1000.0]),
                        unit=["m"], attrs=[None]))
    after, source = answer(ts, "1h", "count,sum", "device", start, end)
    assert source == "events"
    assert_same(after, reference(ts, "1h", "device", start, end), ["count", "sum"])
    key = (dt.datetime.fromtimestamp(DAY0 + 5 * HOUR, UTC), "hg-vt-wl-001", "water_level")
    assert after[key]["count"] == before[key]["count"] + 1
    refresh(ts)
    refreshed, source = answer(ts, "1h", "count,sum", "device", start, end)
    assert source == "events_1h" and refreshed[key]["count"] == after[key]["count"]
