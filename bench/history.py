"""History API latency: aggregates and CSV export over 30 days of events, through `ioc run`.

    .venv/bin/python bench/history.py [--events 10000000] [--devices 2000] [--days 30]
                                      [--timescaledb] [--rounds 40]

Loads the events server-side (INSERT ... SELECT generate_series: no client in the way), then,
on TimescaleDB, compresses chunks older than 7 days and refreshes the continuous aggregates as
their policies would. Measures over HTTP (keep-alive client, auth off) p50/p95 of: a 24-hour
5-minute aggregate of one device and of one district, a 7-day hourly aggregate of a district,
a device list, a 100-event page of one device, and CSV export rows/s. Writes
bench/results/history[-timescaledb].json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_result
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.storage.migrations import migrate_url
from ioc.storage.pool import connect
from tests.support.service import ServiceProcess

DISTRICTS = ["Vị Thanh", "Ngã Bảy", "Long Mỹ", "Huyện Long Mỹ", "Vị Thủy", "Châu Thành",
             "Châu Thành A", "Phụng Hiệp"]
KINDS = ["water_level", "rainfall", "salinity", "pm25", "traffic_count"]
GOALS = {"device_24h_5m_p95_ms": 50, "district_24h_5m_p95_ms": 200, "export_rows_per_s": 200_000}


async def load(dsn: str, flavour: str, events: int, devices: int, days: int, end: dt.datetime
               ) -> dict[str, float]:
    """Devices over 8 districts; events spread evenly over devices and time, one day a statement."""
    conn = await connect(dsn)
    timings: dict[str, float] = {}
    try:
        await conn.execute(
            "INSERT INTO devices (id, name, kind, district, \"interval\", tags, registered_by)"
            " SELECT format('hg-%s-%s', i % 8, i), format('Trạm %s', i), ($1::text[])[i % 5 + 1],"
            " ($2::text[])[i % 8 + 1], make_interval(secs => $3::float8),"
            " ARRAY['bench'], 'api' FROM generate_series(0, $4::int - 1) i",
            KINDS, DISTRICTS, days * 86400 * devices / events, devices)
        start = end - dt.timedelta(days=days)
        if flavour == "postgres":
            await conn.execute("SELECT ioc_ensure_partitions($1, $2)", start, end)
        per_day = events // days
        step = 86400.0 / per_day
        t0 = time.perf_counter()
        for day in range(days):
            await conn.execute(
                """
                INSERT INTO events (ts, device_id, event_id, kind, value, unit, attrs)
                SELECT $1::timestamptz + make_interval(secs => n * $2::float8),
                       format('hg-%s-%s', d % 8, d), format('b-%s-%s', $3::int, n),
                       ($4::text[])[d % 5 + 1],
                       round((1 + sin(n / 50.0) + (d % 7) / 10.0)::numeric, 3)::float8, 'm',
                       CASE WHEN n % 10 = 0 THEN '{"station": "Cầu Cái Nhúc"}'::jsonb END
                FROM generate_series(0, $5::int - 1) n, LATERAL (SELECT n % $6::int AS d) x
                """,
                start + dt.timedelta(days=day), step, day, KINDS, per_day, devices)
        timings["load_s"] = time.perf_counter() - t0
        timings["load_rows_per_s"] = per_day * days / timings["load_s"]
        # What the service's latest-values fold (ioc/ingest/latest.py) keeps while ingesting.
        await conn.execute(
            "INSERT INTO device_latest (device_id, kind, ts, value)"
            " SELECT DISTINCT ON (device_id, kind) device_id, kind, ts, value FROM events"
            " ORDER BY device_id, kind, ts DESC")
        if flavour == "timescaledb":
            t0 = time.perf_counter()
            await conn.execute("SELECT count(compress_chunk(c, true)) FROM show_chunks("
                               "'events', older_than => now() - interval '7 days') c")
            timings["compress_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for view in ("events_1m", "events_1h"):
                await conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            timings["refresh_s"] = time.perf_counter() - t0
        await conn.execute("VACUUM ANALYZE")
        timings["table_mb"] = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(relid)) / 1048576.0 FROM "
            "pg_partition_tree('events') WHERE isleaf") if flavour == "postgres" else \
            await conn.fetchval("SELECT hypertable_size('events') / 1048576.0")
    finally:
        await conn.close()
    return {k: round(float(v), 2) for k, v in timings.items()}


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2), "n": len(ms)}


def measure(client: httpx.Client, rounds: int, make_params: Any, path: str = "/events/aggregate"
            ) -> dict[str, Any]:
    samples, sources, rows = [], set(), 0
    for i in range(rounds + 3):
        params = make_params()
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        if i >= 3:  # the first calls warm the connection and caches
            samples.append(elapsed)
            sources.add(r.headers.get("x-aggregate-source", "-"))
            rows = len(r.json().get("items", [None]))
    return {**percentiles(samples), "source": sorted(sources), "rows_last": rows}


def run_queries(url: str, devices: int, days: int, end: dt.datetime, rounds: int
                ) -> dict[str, Any]:
    rng = random.Random(5)
    end_h = end.replace(minute=0, second=0, microsecond=0)

    def window(hours: int) -> dict[str, str]:
        stop = end_h - dt.timedelta(hours=rng.randrange(1, days * 24 - hours))
        return {"from": (stop - dt.timedelta(hours=hours)).isoformat(), "to": stop.isoformat()}

    def device() -> str:
        d = rng.randrange(devices)
        return f"hg-{d % 8}-{d}"

    out: dict[str, Any] = {}
    with httpx.Client(base_url=url + "/api/v1", timeout=600) as client:
        out["device_24h_5m"] = measure(client, rounds, lambda: {
            "device_id": device(), "bucket": "5m", **window(24)})
        out["district_24h_5m"] = measure(client, rounds, lambda: {
            "district": rng.choice(DISTRICTS), "group": "district", "bucket": "5m", **window(24)})
        out["district_7d_1h"] = measure(client, rounds, lambda: {
            "district": rng.choice(DISTRICTS), "group": "district", "bucket": "1h",
            **window(24 * 7)})
        out["district_24h_5m_per_device"] = measure(client, max(5, rounds // 4), lambda: {
            "district": rng.choice(DISTRICTS), "bucket": "5m", **window(24)})
        out["device_page_100"] = measure(client, rounds, lambda: {"device_id": device()},
                                         path="/events")
        out["devices_list"] = measure(client, max(5, rounds // 4), dict, path="/devices")
        out["device_one"] = measure(client, rounds, dict, path=f"/devices/{device()}")
        export_params = {"format": "csv", **window(48)}
        t0 = time.perf_counter()
        lines = 0
        with client.stream("GET", "/events", params=export_params) as r:
            for chunk in r.iter_bytes(1 << 16):
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - t0
        out["export_csv_48h"] = {"rows": lines - 1, "seconds": round(elapsed, 2),
                                 "rows_per_s": round((lines - 1) / elapsed)}
    return out


async def prepare(pg: EmbeddedPostgres, args: argparse.Namespace, end: dt.datetime
                  ) -> tuple[str, str, dict[str, float]]:
    dsn = pg.create_database("bench_history")
    report = await migrate_url(dsn, timescaledb="on" if args.timescaledb else "off")
    loaded = await load(dsn, report.flavour, args.events, args.devices, args.days, end)
    return dsn, report.flavour, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--timescaledb", action="store_true")
    args = parser.parse_args()

    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with EmbeddedPostgres(timescaledb=args.timescaledb) as pg, \
            tempfile.TemporaryDirectory() as tmp:
        dsn, flavour, loaded = asyncio.run(prepare(pg, args, end))
        print(f"loaded {args.events} events ({flavour}): {loaded}", flush=True)
        service = ServiceProcess(Path(tmp), {"IOC_DATABASE_URL": dsn, "IOC_AUTH": "off",
                                             "IOC_DEVICES_FILE": str(Path(tmp) / "none.yaml"),
                                             "IOC_LOG_LEVEL": "WARNING"})
        service.start(timeout=120)
        try:
            results = run_queries(service.url, args.devices, args.days, end, args.rounds)
        finally:
            service.stop()

    met = {
        "device_24h_5m_p95_ms": results["device_24h_5m"]["p95_ms"] <= GOALS["device_24h_5m_p95_ms"],
        "district_24h_5m_p95_ms":
            results["district_24h_5m"]["p95_ms"] <= GOALS["district_24h_5m_p95_ms"],
        "export_rows_per_s": results["export_csv_48h"]["rows_per_s"] >= GOALS["export_rows_per_s"],
    }
    name = "history-timescaledb" if flavour == "timescaledb" else "history"
    path = write_result(name, {
        "events": args.events, "devices": args.devices, "days": args.days, "flavour": flavour,
        "rounds": args.rounds, "load": loaded, "results": results, "goals": GOALS,
        "goals_met": met,
    })
    for key, value in results.items():
        print(f"{key:28s} {value}")
    print(f"goals met: {met}\nwrote {path}")


if __name__ == "__main__":
    main()
