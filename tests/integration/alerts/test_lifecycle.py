"""Alert lifecycle on a real PostgreSQL: dedup, repeats, clears, hand changes, audit and feed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest

from ioc.alerts import AlertNotFound, AlertStateConflict
from ioc.storage import alerts as stored
from tests.integration.alerts.conftest import (
    BASE_US,
    NGA_BAY,
    UNPLACED,
    VI_THANH,
    clear,
    fire,
    make_alerts,
    record,
)
from tests.support.alert_model import Alert, Book, one_at_a_time


async def alerts_of(pool: asyncpg.Pool, rule: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM alerts WHERE rule_id = $1 ORDER BY id", rule)


async def audit_of(pool: asyncpg.Pool, alert_id: int) -> list[tuple[str, str, str | None]]:
    rows = await pool.fetch(
        "SELECT action, actor, note FROM alert_audit WHERE alert_id = $1 ORDER BY id", alert_id)
    return [(r["action"], r["actor"], r["note"]) for r in rows]


async def feed_of(pool: asyncpg.Pool, rule: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT f.change FROM alert_feed f JOIN alerts a ON a.id = f.alert_id"
        " WHERE a.rule_id = $1 ORDER BY f.id", rule)
    return [r["change"] for r in rows]


async def test_fire_copies_rule_and_device_fields(pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    await record(alerts, pool, [fire("lc-fire", "hg-vt-wl-001", BASE_US + 123_457, value=1.93),
                                fire("lc-fire", UNPLACED, severity="warning")])
    first, second = await alerts_of(pool, "lc-fire")
    assert (first["device_id"], first["district"], first["severity"], first["kind"]) == (
        "hg-vt-wl-001", VI_THANH, "critical", "water_level")
    assert first["state"] == "firing" and first["count"] == 1 and first["value"] == 1.93
    assert first["message"] == "Mực nước 1.93 m tại hg-vt-wl-001" and not first["silenced"]
    started_us = round(first["started_at"].timestamp() * 1e6)
    assert started_us == BASE_US + 123_457 and first["last_seen_at"] == first["started_at"]
    assert second["district"] is None and second["severity"] == "warning"
    assert await audit_of(pool, first["id"]) == [("firing", "system", None)]
    assert await feed_of(pool, "lc-fire") == ["fired", "fired"]


async def test_repeat_while_open_bumps_count_not_a_new_alert(pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    await record(alerts, pool, [fire("lc-repeat", "hg-vt-wl-002")])
    await record(alerts, pool, [fire("lc-repeat", "hg-vt-wl-002", BASE_US + 5_000_000, value=2.1)])
    (alert,) = await alerts_of(pool, "lc-repeat")
    assert alert["count"] == 2 and alert["value"] == 2.1
    assert round(alert["last_seen_at"].timestamp() * 1e6) == BASE_US + 5_000_000
    assert round(alert["started_at"].timestamp() * 1e6) == BASE_US
    assert await audit_of(pool, alert["id"]) == [("firing", "system", None)]
    assert await feed_of(pool, "lc-repeat") == ["fired", "repeated"]


async def test_clear_resolves_at_event_ts_and_refire_is_a_new_alert(pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    await record(alerts, pool, [fire("lc-clear", "hg-vt-wl-003")])
    await record(alerts, pool, [clear("lc-clear", "hg-vt-wl-003", BASE_US + 90_000_000)])
    await record(alerts, pool, [fire("lc-clear", "hg-vt-wl-003", BASE_US + 120_000_000)])
    old, new = await alerts_of(pool, "lc-clear")
    assert old["state"] == "resolved" and old["resolved_by"] == "system"
    assert round(old["resolved_at"].timestamp() * 1e6) == BASE_US + 90_000_000
    assert new["state"] == "firing" and new["count"] == 1
    assert await audit_of(pool, old["id"]) == [("firing", "system", None),
                                               ("resolved", "system", None)]
    assert await feed_of(pool, "lc-clear") == ["fired", "resolved", "fired"]


async def test_one_batch_fires_clears_and_fires_again_in_order(pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    dev = "hg-vt-wl-004"
    await record(alerts, pool, [
        fire("lc-batch", dev, BASE_US), fire("lc-batch", "hg-nb-wl-001", BASE_US),
        clear("lc-batch", dev, BASE_US + 1), fire("lc-batch", dev, BASE_US + 2),
        clear("lc-batch", "hg-vt-wl-005", BASE_US + 3),  # nothing open: no change
    ])
    rows = await alerts_of(pool, "lc-batch")
    assert [(r["device_id"], r["state"]) for r in rows] == [
        (dev, "resolved"), ("hg-nb-wl-001", "firing"), (dev, "firing")]
    assert rows[1]["district"] == NGA_BAY
    assert await feed_of(pool, "lc-batch") == ["fired", "fired", "resolved", "fired"]


async def test_writer_connections_record_the_same(pool: asyncpg.Pool,
                                                  writer_pool: asyncpg.Pool) -> None:
    """The pipeline's connections decode timestamps as int microseconds: same rows, same JSON."""
    alerts = make_alerts(pool)
    await record(alerts, writer_pool, [fire("lc-writer", "hg-vt-wl-006", BASE_US + 7,
                                            value=float("nan"))])
    await record(alerts, writer_pool, [clear("lc-writer", "hg-vt-wl-006", BASE_US + 9)])
    (alert,) = await alerts_of(pool, "lc-writer")
    assert alert["value"] is None and alert["state"] == "resolved"
    assert round(alert["started_at"].timestamp() * 1e6) == BASE_US + 7
    data = await pool.fetchval(
        "SELECT data::text FROM alert_feed WHERE alert_id = $1 AND change = 'resolved'", alert["id"])
    assert '"value":null' in data and '"started_at":"2026-09-21T21:13:20.000007+07:00"' in data


async def test_ack_and_resolve_by_hand(pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    await record(alerts, pool, [fire("lc-hand", "hg-vt-wl-007")])
    (alert,) = await alerts_of(pool, "lc-hand")
    acked = await alerts.ack(alert["id"], "op-lan", "đang xử lý")
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "op-lan"
    with pytest.raises(AlertStateConflict) as err:
        await alerts.ack(alert["id"], "op-minh", None)
    assert err.value.state == "acknowledged"
    resolved = await alerts.resolve(alert["id"], "op-lan", "nước đã rút")
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == "op-lan"
    with pytest.raises(AlertStateConflict):
        await alerts.resolve(alert["id"], "op-lan", None)
    with pytest.raises(AlertStateConflict):
        await alerts.ack(alert["id"], "op-lan", None)
    with pytest.raises(AlertNotFound):
        await alerts.ack(10**12, "op-lan", None)
    assert await audit_of(pool, alert["id"]) == [
        ("firing", "system", None), ("acknowledged", "op-lan", "đang xử lý"),
        ("resolved", "op-lan", "nước đã rút")]
    assert await feed_of(pool, "lc-hand") == ["fired", "acknowledged", "resolved"]
    # The conflicts changed nothing; a clear after a manual resolve changes nothing either.
    await record(alerts, pool, [clear("lc-hand", "hg-vt-wl-007")])
    assert len(await audit_of(pool, alert["id"])) == 3
    assert await feed_of(pool, "lc-hand") == ["fired", "acknowledged", "resolved"]


async def test_fifty_concurrent_writers_keep_the_invariants(
        pool: asyncpg.Pool, writer_pool: asyncpg.Pool) -> None:
    """50 tasks on separate connections fire, clear, ack and resolve one (rule, device)."""
    alerts = make_alerts(pool)
    rule, dev = "lc-race", "hg-vt-wl-008"
    fires = Counter[str]()

    async def worker(seed: int) -> None:
        rnd = random.Random(seed)
        for step in range(30):
            await asyncio.sleep(rnd.random() * 0.3)
            op = rnd.choices(["fire", "clear", "ack", "resolve"], [6, 1, 4, 2])[0]
            ts = BASE_US + seed * 1000 + step
            if op in ("fire", "clear"):
                # Half the workers use the pipeline's connection codecs.
                target = writer_pool if seed % 2 else pool
                t = fire(rule, dev, ts) if op == "fire" else clear(rule, dev, ts)
                await record(alerts, target, [t])
                fires[op] += 1
                continue
            open_id = await pool.fetchval(
                "SELECT id FROM alerts WHERE rule_id = $1 AND state <> 'resolved'", rule)
            if open_id is None:
                continue
            try:
                if op == "ack":
                    await alerts.ack(open_id, f"op-{seed}", None)
                else:
                    await alerts.resolve(open_id, f"op-{seed}", None)
                fires[op + "_ok"] += 1
            except AlertStateConflict:
                fires[op + "_conflict"] += 1

    await asyncio.gather(*(worker(seed) for seed in range(50)))
    # Each kind of change happened, and so did the races the database has to referee.
    assert min(fires[k] for k in ("fire", "clear", "ack_ok", "resolve_ok", "ack_conflict",
                                  "resolve_conflict")) > 0, fires

    rows = await alerts_of(pool, rule)
    assert sum(r["state"] != "resolved" for r in rows) <= 1
    # Every fire either opened an alert or bumped the open one: none lost, none doubled.
    assert sum(r["count"] for r in rows) == fires["fire"]
    valid = {("firing",), ("firing", "acknowledged"), ("firing", "resolved"),
             ("firing", "acknowledged", "resolved")}
    audit = await pool.fetch(
        "SELECT alert_id, array_agg(action ORDER BY id) AS path FROM alert_audit"
        " WHERE alert_id = ANY($1::int8[]) GROUP BY alert_id", [r["id"] for r in rows])
    paths = {r["alert_id"]: tuple(r["path"]) for r in audit}
    assert len(paths) == len(rows)
    for r in rows:
        assert paths[r["id"]] in valid, (r["id"], paths[r["id"]])
        assert paths[r["id"]][-1] == r["state"]
        assert (r["acknowledged_at"] is not None) == ("acknowledged" in paths[r["id"]])
    actions = Counter(a for p in paths.values() for a in p)
    assert actions["acknowledged"] == fires["ack_ok"]
    manual = sum(1 for r in rows if r["state"] == "resolved" and r["resolved_by"] != "system")
    assert manual == fires["resolve_ok"]
    feed = Counter(await feed_of(pool, rule))
    assert feed["fired"] == len(rows) and feed["repeated"] == fires["fire"] - len(rows)
    assert feed["acknowledged"] == actions["acknowledged"]
    assert feed["resolved"] == actions["resolved"]


async def test_ten_thousand_transitions_in_one_batch_keep_the_invariants(pool: asyncpg.Pool) -> None:
    """A storm in one batch: 2,500 devices firing and clearing at random, a quarter of them open
    before it. The alerts are those of applying the transitions one at a time; one audit row per
    change of state, feed rows in transition order with increasing ids."""
    alerts = make_alerts(pool)
    rng = random.Random(22)
    rule = "lc-storm"
    devices = [f"storm-{i:04d}" for i in range(2500)]
    before = [fire(rule, d, BASE_US) for d in devices[::4]]
    book: Book = {}
    one_at_a_time(book, before)
    await record(alerts, pool, before)
    ts = iter(range(BASE_US + 1, BASE_US + 20_000))
    batch = [fire(rule, d, next(ts)) if rng.random() < 0.5 else clear(rule, d, next(ts))
             for d in rng.choices(devices, k=10_000)]
    expected = one_at_a_time(book, batch)
    feed_before = await pool.fetchval("SELECT coalesce(max(id), 0) FROM alert_feed")
    await record(alerts, pool, batch)

    rows = await alerts_of(pool, rule)
    got: Book = {}
    for r in rows:
        got.setdefault((rule, r["device_id"]), []).append(Alert(
            *(_us(r[c]) for c in ("started_at", "count", "last_seen_at", "resolved_at"))))
    assert got == book
    assert all(sum(r["state"] != "resolved" for r in rows if r["device_id"] == d) <= 1
               for d in devices)
    audit = Counter(r["action"] for r in await pool.fetch(
        "SELECT u.action FROM alert_audit u JOIN alerts a ON a.id = u.alert_id WHERE a.rule_id = $1",
        rule))
    assert audit == Counter({"firing": len(rows), "resolved": sum(r["resolved_at"] is not None
                                                                  for r in rows)})
    feed = await pool.fetch(
        "SELECT f.id, a.device_id, f.change FROM alert_feed f JOIN alerts a ON a.id = f.alert_id"
        " WHERE f.id > $1 ORDER BY f.id", feed_before)
    assert [(r["device_id"], r["change"]) for r in feed if r["change"] != "repeated"] == [
        (key[1], change) for key, change in expected if change != "repeated"]
    assert sum(r["change"] == "repeated" for r in feed) <= sum(c == "repeated" for _, c in expected)


def _us(value: object) -> int | None:
    """Counts as they are; timestamps as Unix microseconds."""
    if value is None or isinstance(value, int):
        return value
    assert isinstance(value, dt.datetime)
    return round(value.timestamp() * 1e6)


async def test_open_alerts_are_found_by_index_in_a_table_full_of_resolved_ones(
        pool: asyncpg.Pool) -> None:
    """The update of a batch's open alerts, prepared and run while ``alerts`` was empty (its
    plan cached), then 20,000 resolved alerts written since: it still looks the keys up in the
    one-open index, instead of scanning the table on every batch of a flood."""
    keys = ", ".join(f"'plan-{i}'" for i in range(30))
    params = (f"array_fill('lc-plan'::text, '{{30}}'), ARRAY[{keys}], array_fill(1, '{{30}}'),"
              f" array_fill({BASE_US}::int8, '{{30}}'), array_fill(2.0::float8, '{{30}}'),"
              " array_fill('m'::text, '{30}'), array_fill(NULL::int8, '{30}'), 'system'")
    async with pool.acquire() as conn:
        await conn.execute("PREPARE lc_continue AS " + stored._CONTINUE)
        for _ in range(8):
            async with conn.transaction():
                await conn.fetch(f"EXECUTE lc_continue({params})")
        await conn.execute(
            "INSERT INTO alerts (rule_id, device_id, kind, severity, message, started_at,"
            " last_seen_at, state, resolved_at, resolved_by)"
            " SELECT 'lc-plan', 'plan-' || i % 500, 'water_level', 'critical', 'm', now(), now(),"
            " 'resolved', now(), 'system' FROM generate_series(1, 20000) i")
        async with conn.transaction():
            await stored.lock_alert_writes(conn)
            [plan] = json.loads(await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE lc_continue({params})"))
        await conn.execute("DEALLOCATE lc_continue")
    scans = [n for n in _nodes(plan["Plan"])
             if n.get("Relation Name") == "alerts" and n["Node Type"].endswith("Scan")]
    assert scans and {n.get("Index Name") for n in scans} == {"alerts_one_open"}


def _nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
