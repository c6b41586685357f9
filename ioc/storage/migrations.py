"""Numbered plain-SQL migrations, applied once each, under an advisory lock.

Files are ``NNN_name.sql`` (both flavours) or ``NNN_name.<flavour>.sql`` where flavour is
``timescaledb`` or ``postgres``. The flavour is detected on the first run and recorded in
``schema_meta``; later runs keep it, so a database never mixes the two layouts.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from ioc.storage.pool import connect

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
LOCK_KEY = 0x10C_1263  # pg_advisory_lock key shared by every ioc instance
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+?)(?:\.(timescaledb|postgres))?\.sql$")

Flavour = Literal["timescaledb", "postgres"]


class MigrationError(Exception):
    """Migrations cannot be applied as asked (bad file set, changed file, missing extension)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    flavour: Flavour
    applied: list[str]


def discover(flavour: Flavour, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations that apply to ``flavour``, in version order; one file per version."""
    chosen: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNN_name[.flavour].sql")
        version, name, only = int(m.group(1)), m.group(2), m.group(3)
        if only and only != flavour:
            continue
        if version in chosen:
            raise MigrationError(f"two migrations for version {version}: "
                                 f"{chosen[version].path.name} and {path.name}")
        chosen[version] = Migration(version, name, path)
    return [chosen[v] for v in sorted(chosen)]


async def _detect_flavour(conn: asyncpg.Connection, want: str) -> Flavour:
    if want == "off":
        return "postgres"
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    preloaded = "timescaledb" in (
        await conn.fetchval("SELECT current_setting('shared_preload_libraries')") or ""
    )
    error = "the timescaledb extension is not installed on the server"
    if available and not preloaded:
        error = "timescaledb is installed but not in shared_preload_libraries"
    elif available:
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return "timescaledb"
        except asyncpg.PostgresError as exc:
            error = str(exc).splitlines()[0]
    if want == "on":
        raise MigrationError(f"IOC_TIMESCALEDB=on but TimescaleDB cannot be used: {error}")
    log.info("TimescaleDB not usable (%s): using plain PostgreSQL partitions", error)
    return "postgres"


async def migrate(
    conn: asyncpg.Connection,
    *,
    timescaledb: str = "auto",
    retention_s: float | None = None,
    directory: Path = MIGRATIONS_DIR,
) -> MigrationReport:
    """Apply pending migrations; concurrent callers wait on the lock and then find nothing to do."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_meta (key text PRIMARY KEY, value text NOT NULL);
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
            """
        )
        flavour = await conn.fetchval("SELECT value FROM schema_meta WHERE key = 'flavour'")
        if flavour is None:
            flavour = await _detect_flavour(conn, timescaledb)
            await conn.execute(
                "INSERT INTO schema_meta (key, value) VALUES ('flavour', $1)", flavour
            )
        elif flavour == "postgres" and timescaledb == "on":
            raise MigrationError(
                "IOC_TIMESCALEDB=on but this database was created on plain PostgreSQL"
            )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        applied: list[str] = []
        for mig in discover(flavour, directory):
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.path.name} changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version, mig.name, mig.checksum,
                )
            applied.append(mig.path.name)
            log.info("applied migration %s (%s)", mig.path.name, flavour)
        if retention_s and flavour == "timescaledb":
            await conn.execute("SELECT remove_retention_policy('events', if_exists => true)")
            await conn.execute(
                "SELECT add_retention_policy('events', make_interval(secs => $1))", retention_s
            )
        return MigrationReport(flavour=flavour, applied=applied)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def migrate_url(
    url: str, *, timescaledb: str = "auto", retention_s: float | None = None
) -> MigrationReport:
    """:func:`migrate` on a connection of its own, for callers that hold none."""
    conn = await connect(url)
    try:
        return await migrate(conn, timescaledb=timescaledb, retention_s=retention_s)
    finally:
        await conn.close()


async def flavour_of(conn: asyncpg.Connection) -> Flavour:
    value = await conn.fetchval("SELECT value FROM schema_meta WHERE key = 'flavour'")
    if value is None:
        raise MigrationError("database not migrated: run `ioc migrate`")
    return value
