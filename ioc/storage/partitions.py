"""Daily event partitions on plain PostgreSQL: created ahead, on demand, and dropped by age.

TimescaleDB creates and drops chunks itself, so every call here is a no-op on that flavour.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg
import numpy as np

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
_EPOCH_DATE = dt.date(1970, 1, 1)


class PartitionManager:
    """Knows which UTC days have a partition, so the hot path asks only for new days."""

    def __init__(self, flavour: str) -> None:
        self.enabled = flavour == "postgres"
        self._days: set[int] = set()

    async def load(self, conn: asyncpg.Connection) -> None:
        if not self.enabled:
            return
        rows = await conn.fetch(
            """
            SELECT (to_date(substr(c.relname, 9), 'YYYYMMDD') - date '1970-01-01') AS day
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'public.events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
            """
        )
        self._days = {int(r["day"]) for r in rows}

    def missing_days(self, ts_us: np.ndarray) -> list[int]:
        if not self.enabled or len(ts_us) == 0:
            return []
        days = np.unique(ts_us // DAY_US)
        return [int(d) for d in days if int(d) not in self._days]

    def copy_target(self, ts_us: np.ndarray) -> str:
        """Where to COPY events: their day's partition when they share one, else ``events``.

        Straight into the partition, PostgreSQL skips routing each row (measured: 5% less
        server CPU per row, and the writer 5-8% faster); a batch spanning midnight goes
        through the parent.
        """
        if not self.enabled or not len(ts_us):
            return "events"
        day = int(ts_us.min()) // DAY_US
        if day != int(ts_us.max()) // DAY_US or day not in self._days:
            return "events"
        return f"events_p{_EPOCH_DATE + dt.timedelta(days=day):%Y%m%d}"

    async def ensure(self, conn: asyncpg.Connection, days: list[int]) -> None:
        """Create partitions for ``days`` (days since the epoch); one call per contiguous run."""
        for start, end in _runs(sorted(days)):
            created = await conn.fetchval(
                "SELECT ioc_ensure_partitions(to_timestamp($1::float8 * 86400),"
                " to_timestamp($2::float8 * 86400))",
                start, end,
            )
            if created:
                log.info("created %d event partition(s) for days %d..%d", created, start, end)
            self._days.update(range(start, end + 1))

    async def ensure_ahead(self, conn: asyncpg.Connection, days_ahead: int = 7) -> None:
        if self.enabled:
            today = int(await conn.fetchval("SELECT current_date - date '1970-01-01'"))
            await self.ensure(conn, list(range(today - 1, today + days_ahead + 1)))

    async def drop_older_than(self, conn: asyncpg.Connection, retention_s: float) -> int:
        """Drop whole days older than the retention; TimescaleDB does this with its own policy."""
        if not self.enabled:
            return 0
        dropped = await conn.fetchval(
            "SELECT ioc_drop_partitions_before(now() - make_interval(secs => $1))", retention_s
        )
        if dropped:
            log.info("retention dropped %d event partition(s) older than %.0f days",
                     dropped, retention_s / 86400)
            await self.load(conn)
        return int(dropped)

    def forget(self) -> None:
        self._days.clear()


def _runs(days: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for d in days:
        if runs and d == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs
