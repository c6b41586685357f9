"""Migrations: idempotent, race-free between instances, flavour detected and recorded."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ioc.storage.migrations import MigrationError, discover, migrate
from tests.conftest import new_database


async def test_migrate_twice_changes_nothing(pg_server) -> None:
    dsn = new_database(pg_server, "twice", migrated=False)
    conn = await asyncpg.connect(dsn)
    try:
        first = await migrate(conn)
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        second = await migrate(conn)
        again = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    finally:
        await conn.close()
    assert first.flavour == "postgres"
    assert first.applied == [m.path.name for m in discover("postgres")]
    assert second.applied == []
    assert sorted(r[0] for r in tables) == sorted(r[0] for r in again)
    expected = {"devices", "events", "dead_letters", "rules", "rule_state", "alerts",
                "alert_audit", "silences", "api_keys", "outbox", "schema_migrations"}
    assert expected <= {r[0] for r in tables}


async def test_concurrent_migrates_apply_once(pg_server) -> None:
    dsn = new_database(pg_server, "concurrent", migrated=False)
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        reports = await asyncio.gather(*(migrate(c) for c in conns))
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        for c in conns:
            await c.close()
    applied = [r.applied for r in reports]
    assert sum(1 for a in applied if a) == 1, applied
    assert [r["version"] for r in rows] == [m.version for m in discover("postgres")]


async def test_timescaledb_on_refused_without_extension(pg_server) -> None:
    dsn = new_database(pg_server, "tsdb_on", migrated=False)
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(MigrationError, match="TimescaleDB"):
            await migrate(conn, timescaledb="on")
    finally:
        await conn.close()


async def test_changed_migration_file_is_refused(pg_server, tmp_path) -> None:
    dsn = new_database(pg_server, "changed", migrated=False)
    (tmp_path / "001_one.sql").write_text("CREATE TABLE one (id int);")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, directory=tmp_path)
        (tmp_path / "001_one.sql").write_text("CREATE TABLE one (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, directory=tmp_path)
    finally:
        await conn.close()


def test_discover_picks_the_flavour_file() -> None:
    pg = [m.path.name for m in discover("postgres")]
    ts = [m.path.name for m in discover("timescaledb")]
    assert "002_events.postgres.sql" in pg and "002_events.timescaledb.sql" not in pg
    assert "002_events.timescaledb.sql" in ts and "002_events.postgres.sql" not in ts


@pytest.mark.timescaledb
async def test_timescaledb_path(tsdb_server) -> None:
    dsn = new_database(tsdb_server, "tsdb_path", migrated=False)
    conn = await asyncpg.connect(dsn)
    try:
        report = await migrate(conn, retention_s=30 * 86400)
        assert report.flavour == "timescaledb"
        hypertables = await conn.fetch("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert [r[0] for r in hypertables] == ["events"]
        caggs = await conn.fetch(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1")
        assert [r[0] for r in caggs] == ["events_1h", "events_1m"]
        jobs = {r[0] for r in await conn.fetch("SELECT proc_name FROM timescaledb_information.jobs")}
        assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs
        again = await migrate(conn, retention_s=30 * 86400)
        assert again.applied == [] and again.flavour == "timescaledb"
    finally:
        await conn.close()
