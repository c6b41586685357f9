
"""Read side of the events table: pages, streamed exports, aggregates, devices, completeness.

Every query is built from fixed SQL fragments with ``$n`` placeholders; filter values only
ever travel as bind parameters. Timestamps shown to people are formatted by PostgreSQL in
the caller's time zone (``set_config('TimeZone', ...)`` for the transaction), so JSON pages,
NDJSON and CSV exports write the same text for the same instant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from ioc.storage.params import Params

Order = Literal["desc", "asc"]
Group = Literal["device", "district"]

UTC = dt.UTC
# Buckets are aligned to midnight in Vietnam (Asia/Ho_Chi_Minh, UTC+7 without DST since 1975):
# 1d is a Vietnamese calendar day and 6h/12h start at 00/06/12/18 local time. Minute and hour
# buckets coincide with UTC ones, so the continuous aggregates can be re-bucketed exactly.
BUCKET_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))
BUCKETS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
                           "6h": 21600, "12h": 43200, "1d": 86400}
AGGS = ("avg", "min", "max", "sum", "count", "last")
OFFLINE_AFTER_DEFAULT = dt.timedelta(minutes=15)  # devices without an expected interval
EXPORT_CHUNK = 5000


def _ts_text(col: str) -> str:
    """RFC 3339 with the session zone's offset; fractional seconds only when there are some."""
    return (f"CASE WHEN date_trunc('second', {col}) = {col} "
            f"THEN to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM') "
            f"ELSE to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM') END")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a request is about; ``districts`` already includes the caller's scope."""

    device_ids: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    districts: tuple[str, ...] | None = None  # None: every device, with or without district
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive

    def where(self, p: Params, alias: str = "e", ts_col: str = "ts") -> list[str]:
        conds = []
        if self.device_ids is not None:
            conds.append(f"{alias}.device_id = ANY({p(list(self.device_ids))}::text[])")
        if self.kinds is not None:
            conds.append(f"{alias}.kind = ANY({p(list(self.kinds))}::text[])")
        if self.districts is not None:
            conds.append(f"{alias}.device_id IN (SELECT id FROM devices "
                         f"WHERE district = ANY({p(list(self.districts))}::text[]))")
        if self.start is not None:
            conds.append(f"{alias}.{ts_col} >= {p(self.start)}")
        if self.end is not None:
            conds.append(f"{alias}.{ts_col} < {p(self.end)}")
        return conds


async def _use_zone(conn: asyncpg.Connection, tz: str) -> None:
    await conn.execute("SELECT set_config('TimeZone', $1, true)", tz)


# ---- events: pages and exports ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventKey:
    """Position of an event in the keyset order (ts, device_id, event_id)."""

    ts: dt.datetime
    device_id: str
    event_id: str


# row_to_json keeps the column order and writes compact JSON.
_JSON_LINE = "row_to_json(j)::text"
_JSON_FROM = (f", LATERAL (SELECT e.event_id, e.device_id, e.kind, {_ts_text('e.ts')} AS ts,"
              " e.value, e.unit, e.attrs) j")
CSV_HEADER = ("event_id", "device_id", "kind", "ts", "value", "unit", "attrs")
_CSV_COLUMNS = f"e.event_id, e.device_id, e.kind, {_ts_text('e.ts')}, e.value, e.unit, e.attrs::text"


def _events_sql(f: EventFilter, order: Order, after: EventKey | None, columns: str,
                limit: int | None) -> tuple[str, list[Any]]:
    p = Params()
    conds = f.where(p)
    cmp, direction = ("<", "DESC") if order == "desc" else (">", "ASC")
    if after is not None:
        conds.append(f"(e.ts, e.device_id, e.event_id) {cmp} "
                     f"({p(after.ts)}, {p(after.device_id)}::text, {p(after.event_id)}::text)")
    source = "events e" + (_JSON_FROM if _JSON_LINE in columns else "")
    sql = (f"SELECT {columns} FROM {source}"
           + (" WHERE " + " AND ".join(conds) if conds else "")
           + f" ORDER BY e.ts {direction}, e.device_id {direction}, e.event_id {direction}")
    if limit is not None:
        sql += f" LIMIT {p(limit)}"
    return sql, p.values


async def event_page(conn: asyncpg.Connection, f: EventFilter, *, order: Order,
                     after: EventKey | None, limit: int, tz: str
                     ) -> tuple[list[str], EventKey | None]:
    """One page as JSON object texts, and the key to continue after (None on the last page)."""
    sql, args = _events_sql(f, order, after, f"e.ts, e.device_id, e.event_id, {_JSON_LINE}",
                            limit + 1)
    async with conn.transaction(readonly=True):
        await _use_zone(conn, tz)
        rows = await conn.fetch(sql, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return [r[3] for r in rows], (EventKey(last[0], last[1], last[2]) if last else None)


async def stream_events(pool: asyncpg.Pool, f: EventFilter, *, order: Order, tz: str,
                        fmt: Literal["csv", "ndjson"]) -> AsyncIterator[list[Any]]:
    """The whole filtered range in chunks from a server-side cursor: memory stays flat.

    CSV chunks are records of :data:`CSV_HEADER` columns; NDJSON chunks are JSON object texts.
    """
    columns = _CSV_COLUMNS if fmt == "csv" else _JSON_LINE
    sql, args = _events_sql(f, order, None, columns, None)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await _use_zone(conn, tz)
        cursor = await conn.cursor(sql, *args)
        while rows := await cursor.fetch(EXPORT_CHUNK):
            yield rows if fmt == "csv" else [r[0] for r in rows]


# ---- aggregates -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AggregateQuery:
    bucket: str
    aggs: tuple[str, ...]
    group: Group
    filter: EventFilter


def aggregate_sources(flavour: str, q: AggregateQuery) -> list[str]:
    """Rollups that give exactly the raw numbers for this query, coarsest first.

    A continuous aggregate fits when its granularity divides the bucket and both range ends
    fall on its boundaries; ``last`` needs individual events, so only the raw table has it.
    """
    if flavour != "timescaledb" or "last" in q.aggs:
        return []
    bucket_s = BUCKETS[q.bucket]
    out = []
    for view, grain in (("events_1h", 3600), ("events_1m", 60)):
        if bucket_s % grain == 0 and all(
            t is None or (t.timestamp() % grain == 0) for t in (q.filter.start, q.filter.end)
        ):
            out.append(view)
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(t: dt.datetime) -> int:
    """Exact microseconds since the Unix epoch (float seconds would round)."""
    delta = t - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


_CAGG_FRESH = """
SELECT NOT EXISTS (
           SELECT 1 FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log l
           WHERE l.materialization_id = c.mat_hypertable_id
             AND l.lowest_modified_value < least($3, w.wm) AND l.greatest_modified_value >= $2)
   AND NOT EXISTS (
           SELECT 1 FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log h
           WHERE h.hypertable_id = c.raw_hypertable_id
             AND h.lowest_modified_value < least($3, w.wm) AND h.greatest_modified_value >= $2)
FROM _timescaledb_catalog.continuous_agg c,
     LATERAL (SELECT _timescaledb_functions.cagg_watermark(c.mat_hypertable_id) AS wm) w
WHERE c.user_view_schema = 'public' AND c.user_view_name = $1
"""


async def cagg_fresh(conn: asyncpg.Connection, view: str, f: EventFilter) -> bool:
    """No change to the events in [start, end) is waiting to be materialized into ``view``.

    Below its watermark a real-time continuous aggregate answers from materialized buckets,
    which miss late events until a refresh covers them; TimescaleDB logs such writes as
    invalidations, and any of them in the range sends the query to the raw table instead.
    """
    low = -(2**63) if f.start is None else epoch_us(f.start)
    high = 2**63 - 1 if f.end is None else epoch_us(f.end)
    return bool(await conn.fetchval(_CAGG_FRESH, view, low, high))


def _aggregate_sql(q: AggregateQuery, source: str | None, max_rows: int) -> tuple[str, list[Any]]:
    p = Params()
    width = p(dt.timedelta(seconds=BUCKETS[q.bucket]))
    origin = p(BUCKET_ORIGIN)
    key = "d.district" if q.group == "district" else "e.device_id"
    join = " JOIN devices d ON d.id = e.device_id" if q.group == "district" else ""
    if source is None:
        ts_col = "ts"
        measures = ("sum(e.value) AS sum, count(*) AS count, min(e.value) AS min, "
                    "max(e.value) AS max")
        if "last" in q.aggs:
            measures += (", (array_agg(e.value ORDER BY e.ts DESC, e.device_id DESC, "
                         "e.event_id DESC))[1] AS last")
        table = "events"
    else:
        ts_col = "bucket"
        measures = ("sum(e.sum) AS sum, sum(e.count)::bigint AS count, min(e.min) AS min, "
                    "max(e.max) AS max")
        table = source
    conds = q.filter.where(p, "e", ts_col)
    inner = (f"SELECT date_bin({width}, e.{ts_col}, {origin}) AS b, {key} AS k, e.kind, "
             f"{measures} FROM {table} e{join}"
             + (" WHERE " + " AND ".join(conds) if conds else "")
             + " GROUP BY 1, 2, 3")
    last = ", s.last" if "last" in q.aggs else ""
    sql = (f"SELECT {_ts_text('s.b')} AS bucket, s.k, s.kind, s.sum, s.count, s.min, s.max{last}"
           f" FROM ({inner}) s ORDER BY s.b, s.k, s.kind LIMIT {p(max_rows + 1)}")
    return sql, p.values


async def aggregate(conn: asyncpg.Connection, q: AggregateQuery, *, flavour: str, tz: str,
                    max_rows: int) -> tuple[list[dict[str, Any]], str]:
    """Rows ``{bucket, device_id|district, kind, <agg>...}`` and the source used.

    ``avg`` is sum/count on every path, so re-bucketed rollups and the raw table agree.
    Raises :class:`TooManyRows` past ``max_rows``.
    """
    async with conn.transaction(readonly=True):
        source = None
        for view in aggregate_sources(flavour, q):
            if await cagg_fresh(conn, view, q.filter):
                source = view
                break
        await _use_zone(conn, tz)
        sql, args = _aggregate_sql(q, source, max_rows)
        rows = await conn.fetch(sql, *args)
    if len(rows) > max_rows:
        raise TooManyRows(max_rows)
    key = "district" if q.group == "district" else "device_id"
    out = []
    for r in rows:
        item: dict[str, Any] = {"bucket": r["bucket"], key: r["k"], "kind": r["kind"]}
        for agg in q.aggs:
            item[agg] = r["sum"] / r["count"] if agg == "avg" else r[agg]
        out.append(item)
    return out, source or "events"


class TooManyRows(Exception):
    """An aggregate would answer more rows than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows: narrow the range or use a larger bucket")


# ---- devices --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeviceFilter:
    ids: tuple[str, ...] | None = None
    districts: tuple[str, ...] | None = None
    kind: str | None = None
    tags: tuple[str, ...] | None = None
    online: bool | None = None


def _devices_sql(f: DeviceFilter, after: str | None, limit: int) -> tuple[str, list[Any]]:
    p = Params()
    conds = []
    if f.ids is not None:
        conds.append(f"d.id = ANY({p(list(f.ids))}::text[])")
    if f.districts is not None:
        conds.append(f"d.district = ANY({p(list(f.districts))}::text[])")
    if f.kind is not None:
        conds.append(f"d.kind = {p(f.kind)}")
    if f.tags:
        conds.append(f"d.tags @> {p(list(f.tags))}::text[]")
    if after is not None:
        conds.append(f"d.id > {p(after)}::text")
    default_offline = p(OFFLINE_AFTER_DEFAULT)
    page = (
        "SELECT d.id, d.name, d.kind, d.district, d.ward, d.lat, d.lon,"
        ' extract(epoch FROM d."interval")::float8 AS interval_s, d.tags, ls.ts AS last_ts,'
        f' coalesce(ls.ts >= now() - coalesce(2 * d."interval", {default_offline}::interval), false)'
        " AS online"
        " FROM devices d LEFT JOIN LATERAL ("
        "   SELECT max(l.ts) AS ts FROM device_latest l WHERE l.device_id = d.id"
        " ) ls ON true"
        + (" WHERE " + " AND ".join(conds) if conds else "")
    )
    if f.online is not None:
        page = f"SELECT * FROM ({page}) x WHERE x.online = {p(f.online)}"
    sql = (
        f"WITH page AS ({page} ORDER BY id LIMIT {p(limit)})"
        f" SELECT page.*, {_ts_text('page.last_ts')} AS last_seen, lv.items AS last_values"
        " FROM page LEFT JOIN LATERAL ("
        "   SELECT json_object_agg(l.kind, json_build_object('value', l.value, 'ts', "
        f"{_ts_text('l.ts')}) ORDER BY l.kind)::text AS items"
        "   FROM device_latest l WHERE l.device_id = page.id"
        " ) lv ON true ORDER BY page.id"
    )
    return sql, p.values


async def devices(conn: asyncpg.Connection, f: DeviceFilter, *, after: str | None, limit: int,
                  tz: str) -> list[asyncpg.Record]:
    """Registry rows with last seen, online and, per kind, the last value (device_latest,
    which the service keeps within a few seconds of the stored events)."""
    sql, args = _devices_sql(f, after, limit)
    async with conn.transaction(readonly=True):
        await _use_zone(conn, tz)
        return await conn.fetch(sql, *args)


async def devices_outside(conn: asyncpg.Connection, ids: list[str],
                          districts: tuple[str, ...]) -> list[str]:
    """Which of these registered devices are in none of ``districts`` (or in no district)."""
    rows = await conn.fetch(
        "SELECT id FROM devices WHERE id = ANY($1::text[])"
        " AND (district IS NULL OR NOT district = ANY($2::text[])) ORDER BY id",
        ids, list(districts),
    )
    return [r["id"] for r in rows]


async def device_district(conn: asyncpg.Connection, device_id: str) -> tuple[bool, str | None]:
    """(registered, district) of one device."""
    row = await conn.fetchrow("SELECT district FROM devices WHERE id = $1", device_id)
    return (row is not None, row["district"] if row else None)


# ---- completeness ---------------------------------------------------------------------------

_COMPLETENESS = f"""
WITH readings AS (
    SELECT DISTINCT e.ts FROM events e
    WHERE e.device_id = $1 AND e.kind = $2 AND e.ts >= $3 AND e.ts < $4
), marks AS (
    SELECT ts FROM readings UNION ALL SELECT $3 UNION ALL SELECT $4
), spans AS (
    SELECT lag(ts) OVER (ORDER BY ts) AS gap_from, ts AS gap_to FROM marks
)
SELECT (SELECT count(*) FROM readings) AS received,
       {_ts_text('$3::timestamptz')} AS range_from, {_ts_text('$4::timestamptz')} AS range_to,
       (SELECT coalesce(json_agg(json_build_object(
                   'from', {_ts_text('s.gap_from')}, 'to', {_ts_text('s.gap_to')},
                   'seconds', extract(epoch FROM s.gap_to - s.gap_from)::float8)
               ORDER BY s.gap_from), '[]')::text
        FROM spans s WHERE s.gap_to - s.gap_from > 2 * $5::interval) AS gaps
"""


async def completeness(conn: asyncpg.Connection, device_id: str, kind: str, start: dt.datetime,
                       end: dt.datetime, interval: dt.timedelta, tz: str) -> asyncpg.Record:
    """Readings received in [start, end) (distinct timestamps of ``kind``) and the gaps.

    A gap is a stretch longer than twice the expected interval between two readings, or
    between a range end and the nearest reading.
    """
    async with conn.transaction(readonly=True):
        await _use_zone(conn, tz)
        return await conn.fetchrow(_COMPLETENESS, device_id, kind, start, end, interval)
