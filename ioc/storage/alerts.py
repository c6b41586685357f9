"""Every SQL statement of the alert side: alerts, audit, live feed, outbox and silences.

The rules of the alert side (locking order, what a change writes, how storms group, when a
send gives up) live in ``ioc/alerts``; this module only says how each step is written in SQL,
so that one file shows everything the alert side asks of the database. Functions that take a
connection run in the caller's transaction; functions that take a pool run on their own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

FEED_LOCK = 0x10C_A1E7  # pg_advisory_xact_lock key every alert writer takes first
ALERT_FIELDS = ("id", "rule_id", "device_id", "district", "kind", "severity", "state", "message",
                "value", "count", "started_at", "last_seen_at", "acknowledged_at",
                "acknowledged_by", "resolved_at", "resolved_by", "silenced")
ALERT_COLUMNS = ", ".join(ALERT_FIELDS)
_QUALIFIED = ", ".join(f"a.{c}" for c in ALERT_FIELDS)
_AT = "timestamptz 'epoch' + interval '1 microsecond' * {}"  # Unix microseconds as timestamptz

# ---- alert changes (inside the caller's transaction) -------------------------------------

_CONTINUE = f"""
UPDATE alerts AS a SET
    count = a.count + u.more,
    last_seen_at = CASE WHEN u.more > 0 THEN greatest(a.last_seen_at, {_AT.format("u.last_us")})
                        ELSE a.last_seen_at END,
    value = CASE WHEN u.more > 0 THEN u.value ELSE a.value END,
    message = CASE WHEN u.more > 0 THEN u.message ELSE a.message END,
    state = CASE WHEN u.end_us IS NULL THEN a.state ELSE 'resolved' END,
    resolved_at = CASE WHEN u.end_us IS NULL THEN a.resolved_at
                       ELSE {_AT.format("u.end_us")} END,
    resolved_by = CASE WHEN u.end_us IS NULL THEN a.resolved_by ELSE $8 END,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::float8[], $6::text[], $7::int8[])
     WITH ORDINALITY AS u(rule_id, device_id, more, last_us, value, message, end_us, i)
WHERE a.rule_id = u.rule_id AND a.device_id = u.device_id AND a.state <> 'resolved'
RETURNING u.i, {_QUALIFIED}
"""
_OPEN = f"""
INSERT INTO alerts AS a (rule_id, device_id, district, kind, severity, message, value, started_at,
                         last_seen_at, silenced, count, state, resolved_at, resolved_by)
SELECT u.rule_id, u.device_id, u.district, u.kind, u.severity, u.message, u.value,
       {_AT.format("u.start_us")}, {_AT.format("u.last_us")},
       u.silenced, u.fires, CASE WHEN u.end_us IS NULL THEN 'firing' ELSE 'resolved' END,
       {_AT.format("u.end_us")}, CASE WHEN u.end_us IS NULL THEN NULL ELSE $13 END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::int8[], $9::int8[], $10::bool[], $11::int4[], $12::int8[])
     WITH ORDINALITY
     AS u(rule_id, device_id, district, kind, severity, message, value, start_us, last_us,
          silenced, fires, end_us, ord)
ORDER BY u.ord
ON CONFLICT (rule_id, device_id) WHERE state <> 'resolved' DO UPDATE SET
    count = a.count + EXCLUDED.count,
    last_seen_at = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
    value = EXCLUDED.value, message = EXCLUDED.message, updated_at = now()
RETURNING (a.xmax = 0) AS inserted, {_QUALIFIED}
"""
_BY_HAND = {
    "acknowledged": "UPDATE alerts AS a SET state = 'acknowledged', acknowledged_at = now(),"
                    " acknowledged_by = $2, updated_at = now()",
    "resolved": "UPDATE alerts AS a SET state = 'resolved', resolved_at = now(),"
                " resolved_by = $2, updated_at = now()",
}
_AUDIT = """
INSERT INTO alert_audit (alert_id, action, actor, note)
SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])
"""
_FEED = """
INSERT INTO alert_feed (alert_id, change, district, severity, data, received_at)
SELECT u.alert_id, u.change, u.district, u.severity, u.data::json, u.received_at
FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
     WITH ORDINALITY AS u(alert_id, change, district, severity, data, received_at, ord)
ORDER BY u.ord
"""
_OUTBOX = """
INSERT INTO outbox (channel, target, payload, alert_id, rule_id, district, change, next_attempt_at)
SELECT u.channel, u.target, u.payload::jsonb, u.alert_id, u.rule_id, u.district, u.change,
       now() + make_interval(secs => u.delay_s)
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[],
            $8::float8[]) WITH ORDINALITY
     AS u(channel, target, payload, alert_id, rule_id, district, change, delay_s, ord)
ORDER BY u.ord
"""


async def lock_alert_writes(conn: asyncpg.Connection) -> None:
    """Take :data:`FEED_LOCK` until the transaction ends (see ``ioc/alerts/lifecycle.py``).

    The transaction's statements are also planned for their parameters on each run: the alert
    statements join arrays of keys to ``alerts``, and a plan cached while the table was small (a
    fresh database, statistics not yet gathered) scans the whole table on every call once it
    holds the alerts of a flood — an update of a few rows then cost milliseconds. Planning a
    statement costs a fraction of a millisecond, once per batch.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1), "
                       "set_config('plan_cache_mode', 'force_custom_plan', true)", FEED_LOCK)


async def continue_alerts(conn: asyncpg.Connection, columns: Sequence[list[Any]],
                          actor: str) -> list[asyncpg.Record]:
    """Update the open alert of each (rule, device), if any: ``more`` repeats of it (the last
    one's ts, value and message), then its resolution at ``end_us`` (None: it stays open).
    ``columns``: rule_id, device_id, more, last_us, value, message, end_us. Rows returned carry
    ``i``, the 1-based position of their key in the columns, and :data:`ALERT_COLUMNS`."""
    return await conn.fetch(_CONTINUE, *columns, actor)


async def open_alerts(conn: asyncpg.Connection, columns: Sequence[list[Any]],
                      actor: str) -> list[asyncpg.Record]:
    """Insert alerts from their fires, in the order given (ids follow it): resolved by
    ``actor`` at ``end_us`` when that is given, else open (at most one per (rule, device), after
    its resolved ones); an open one that meets an open alert repeats it instead. ``columns``: rule_id,
    device_id, district, kind, severity, message, value, start_us, last_us, silenced, fires,
    end_us. Rows returned carry ``inserted`` (False: a repeat) and :data:`ALERT_COLUMNS`."""
    return await conn.fetch(_OPEN, *columns, actor)


# ---- corrections from late data (ioc/rules/corrections.py) --------------------------------

_CORRECTED = f"""
SELECT DISTINCT ON (u.i) u.i, {_QUALIFIED}
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
     WITH ORDINALITY AS u(rule_id, device_id, start_us, before_us, i)
JOIN alerts a ON a.rule_id = u.rule_id AND a.device_id = u.device_id
     AND a.resolved_by IS DISTINCT FROM 'late-data'
     AND CASE WHEN u.start_us IS NULL THEN a.started_at < {_AT.format("u.before_us")}
              ELSE a.started_at = {_AT.format("u.start_us")} END
ORDER BY u.i, a.started_at DESC, a.id DESC
"""
_WITHDRAW = f"""
UPDATE alerts AS a SET state = 'resolved', resolved_at = coalesce(a.resolved_at, a.started_at),
                       resolved_by = 'late-data', updated_at = now()
FROM unnest($1::int8[]) AS u(id) WHERE a.id = u.id
RETURNING {_QUALIFIED}
"""
# A hand-resolved alert keeps its resolution; one the rules resolved follows the data.
_BY_RULES = "(a.resolved_by IS NULL OR a.resolved_by IN ('system', 'late-data'))"
_AMEND = f"""
UPDATE alerts AS a SET
    started_at = coalesce({_AT.format("u.start_us")}, a.started_at),
    state = CASE WHEN NOT {_BY_RULES} THEN a.state
                 WHEN u.end_us IS NOT NULL THEN 'resolved'
                 WHEN a.acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'firing' END,
    resolved_at = CASE WHEN NOT {_BY_RULES} THEN a.resolved_at
                       ELSE {_AT.format("u.end_us")} END,
    resolved_by = CASE WHEN NOT {_BY_RULES} THEN a.resolved_by
                       WHEN u.end_us IS NULL THEN NULL ELSE 'system' END,
    count = greatest(1, a.count + u.more_fires),
    last_seen_at = greatest(a.last_seen_at, coalesce({_AT.format("u.last_us")}, a.last_seen_at)),
    updated_at = now()
FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int4[], $5::int8[])
     AS u(id, start_us, end_us, more_fires, last_us)
WHERE a.id = u.id
RETURNING {_QUALIFIED}
"""
_RAISE = f"""
INSERT INTO alerts AS a (rule_id, device_id, district, kind, severity, message, value, started_at,
                         last_seen_at, silenced, count, state, resolved_at, resolved_by)
SELECT u.rule_id, u.device_id, u.district, u.kind, u.severity, u.message, u.value,
       {_AT.format("u.start_us")}, {_AT.format("u.last_us")}, u.silenced, u.fires,
       CASE WHEN u.end_us IS NULL THEN 'firing' ELSE 'resolved' END,
       {_AT.format("u.end_us")}, CASE WHEN u.end_us IS NULL THEN NULL ELSE 'system' END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::int8[], $9::int8[], $10::bool[], $11::int4[], $12::int8[])
     WITH ORDINALITY
     AS u(rule_id, device_id, district, kind, severity, message, value, start_us, last_us,
          silenced, fires, end_us, ord)
ORDER BY (u.end_us IS NULL), u.ord
ON CONFLICT (rule_id, device_id) WHERE state <> 'resolved' DO UPDATE SET
    count = a.count + EXCLUDED.count,
    last_seen_at = greatest(a.last_seen_at, EXCLUDED.last_seen_at), updated_at = now()
RETURNING {_QUALIFIED}
"""


async def corrected_alerts(conn: asyncpg.Connection, rule_ids: list[str], device_ids: list[str],
                           start_us: list[int | None],
                           before_us: list[int]) -> dict[int, asyncpg.Record]:
    """The alert each correction changes, by its position in the lists (1-based): the one of
    (rule, device) that started at ``start_us``, or when that is None the newest that started
    before ``before_us``. Withdrawn alerts are not candidates."""
    rows = await conn.fetch(_CORRECTED, rule_ids, device_ids, start_us, before_us)
    return {r["i"]: r for r in rows}


async def withdraw_alerts(conn: asyncpg.Connection, ids: list[int]) -> list[asyncpg.Record]:
    """Resolve alerts that later data shows never happened (``resolved_by = 'late-data'``)."""
    return await conn.fetch(_WITHDRAW, ids)


async def amend_alerts(conn: asyncpg.Connection, columns: Sequence[list[Any]]) -> list[asyncpg.Record]:
    """Correct alerts in place; ``columns``: id, start_us (None: keep), end_us (None: open),
    more_fires, last_us. Acknowledgements and hand resolutions are kept."""
    return await conn.fetch(_AMEND, *columns)


async def raise_alerts(conn: asyncpg.Connection, columns: Sequence[list[Any]]) -> list[asyncpg.Record]:
    """Insert missed alerts (resolved ones first); ``columns``: rule_id, device_id, district,
    kind, severity, message, value, start_us, last_us, silenced, fires, end_us (None: open)."""
    return await conn.fetch(_RAISE, *columns)


async def lock_alert_state(conn: asyncpg.Connection, alert_id: int) -> str | None:
    """The alert's state, its row locked until commit; None when there is no such alert."""
    return await conn.fetchval("SELECT state FROM alerts WHERE id = $1 FOR UPDATE", alert_id)


async def set_alert_state(conn: asyncpg.Connection, alert_id: int, state: str,
                          actor: str) -> asyncpg.Record:
    """Acknowledge or resolve by hand (the caller checked the transition is allowed)."""
    return await conn.fetchrow(f"{_BY_HAND[state]} WHERE id = $1 RETURNING {_QUALIFIED}",
                               alert_id, actor)


_ACK_MANY = f"""
UPDATE alerts AS a SET state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2,
                       updated_at = now()
WHERE a.id = ANY($1::int8[]) AND a.state = 'firing'
      AND ($3::text[] IS NULL OR a.district = ANY($3::text[]))
RETURNING {_QUALIFIED}
"""


async def acknowledge_alerts(conn: asyncpg.Connection, alert_ids: list[int], actor: str,
                             districts: list[str] | None) -> list[asyncpg.Record]:
    """Acknowledge those of ``alert_ids`` that are firing (and in ``districts`` unless None)."""
    return await conn.fetch(_ACK_MANY, alert_ids, actor, districts)


async def alert_states(conn: asyncpg.Connection, alert_ids: list[int]) -> list[asyncpg.Record]:
    """(id, state, district) of those of ``alert_ids`` that exist."""
    return await conn.fetch("SELECT id, state, district FROM alerts WHERE id = ANY($1::int8[])",
                            alert_ids)


async def insert_audit(conn: asyncpg.Connection, alert_ids: list[int], actions: list[str],
                       actors: list[str | None], notes: list[str | None]) -> None:
    await conn.execute(_AUDIT, alert_ids, actions, actors, notes)


async def insert_feed(conn: asyncpg.Connection, alert_ids: list[int], changes: list[str],
                      districts: list[str | None], severities: list[str], data: list[str],
                      received_at: list[float | None]) -> None:
    """Live-feed rows, whose ids follow the order given (they are what SSE clients resume by)."""
    await conn.execute(_FEED, alert_ids, changes, districts, severities, data, received_at)


async def insert_outbox(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows (channel, target, payload, alert_id, rule_id, district, change, delay_s), in order."""
    await conn.execute(_OUTBOX, *map(list, zip(*rows, strict=True)))


# ---- reads of the alert API --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AlertFilter:
    """``state`` "open" means firing or acknowledged; ``start``/``end`` bound ``started_at`` as
    [start, end); ``districts`` is the caller's scope (None: every district)."""

    state: str | None = None
    severity: str | None = None
    district: str | None = None
    rule_id: str | None = None
    device_id: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    districts: Sequence[str] | None = None


async def list_alerts(conn: asyncpg.Connection, f: AlertFilter, *, before_id: int | None = None,
                      limit: int = 100) -> list[asyncpg.Record]:
    """Newest first (by id), continuing below ``before_id``."""
    where: list[str] = []
    args: list[Any] = []

    def add(clause: str, value: Any) -> None:
        args.append(value)
        where.append(clause.format(f"${len(args)}"))

    if f.state == "open":
        where.append("state <> 'resolved'")
    elif f.state is not None:
        add("state = {}", f.state)
    for column, value in (("severity", f.severity), ("district", f.district),
                          ("rule_id", f.rule_id), ("device_id", f.device_id)):
        if value is not None:
            add(f"{column} = {{}}", value)
    if f.start is not None:
        add("started_at >= {}", f.start)
    if f.end is not None:
        add("started_at < {}", f.end)
    if f.districts is not None:
        add("district = ANY({}::text[])", list(f.districts))
    if before_id is not None:
        add("id < {}", before_id)
    args.append(limit)
    sql = (f"SELECT {ALERT_COLUMNS} FROM alerts {'WHERE ' + ' AND '.join(where) if where else ''}"
           f" ORDER BY id DESC LIMIT ${len(args)}")
    return await conn.fetch(sql, *args)


async def get_alert(conn: asyncpg.Connection, alert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1", alert_id)


async def alert_audit(conn: asyncpg.Connection, alert_id: int) -> list[asyncpg.Record]:
    """The alert's changes of state, oldest first."""
    return await conn.fetch(
        "SELECT action, actor, note, at FROM alert_audit WHERE alert_id = $1 ORDER BY id", alert_id)


# ---- live feed ---------------------------------------------------------------------------

_FEED_AFTER = """
SELECT id, district, severity, data::text AS data, received_at FROM alert_feed
WHERE id > $1 ORDER BY id LIMIT $2
"""
_FEED_REPLAY = """
SELECT id, data::text AS data FROM alert_feed
WHERE id > $1 AND id <= $2
  AND ($3::text[] IS NULL OR district = ANY($3)) AND ($4::text IS NULL OR severity = $4)
ORDER BY id LIMIT $5
"""


async def feed_head(pool: asyncpg.Pool) -> int:
    """The newest feed id (0 for an empty feed)."""
    return await pool.fetchval("SELECT coalesce(max(id), 0) FROM alert_feed")


async def feed_after(pool: asyncpg.Pool, after: int, limit: int) -> list[asyncpg.Record]:
    """Feed rows above ``after`` in id order: id, district, severity, data, received_at."""
    return await pool.fetch(_FEED_AFTER, after, limit)


async def feed_replay(pool: asyncpg.Pool, after: int, upto: int,
                      districts: Sequence[str] | None, severity: str | None,
                      limit: int) -> list[asyncpg.Record]:
    """Feed rows (id, data) with ``after < id <= upto`` matching a client's filter."""
    return await pool.fetch(_FEED_REPLAY, after, upto, districts, severity, limit)


# ---- outbox (the notifier) ---------------------------------------------------------------

_CLAIM = """
SELECT id, delivery_id::text AS delivery_id, channel, target, payload::text AS payload, attempts,
       grouped, rule_id, district, change
FROM outbox
WHERE delivered_at IS NULL AND failed_at IS NULL AND merged_into IS NULL
  AND next_attempt_at <= now()
  AND NOT (channel = 'webhook' AND target = ANY($2::text[]))
  AND NOT (channel = 'mqtt' AND $3)
ORDER BY next_attempt_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MERGE = """
WITH sib AS (
    SELECT id FROM outbox
    WHERE delivered_at IS NULL AND failed_at IS NULL AND merged_into IS NULL AND NOT grouped
      AND channel = $2 AND target = $3 AND rule_id = $4 AND district IS NOT DISTINCT FROM $5
      AND change = $6 AND id <> $1 AND id <> ALL($7::int8[])
      AND created_at <= (SELECT created_at FROM outbox WHERE id = $1) + make_interval(secs => $8)
    FOR UPDATE SKIP LOCKED),
ranked AS (
    SELECT id, (row_number() OVER (ORDER BY id <> $1, id) - 1) / $9 AS part
    FROM (SELECT $1::int8 AS id UNION ALL SELECT id FROM sib) AS g),
parts AS (
    SELECT id, part, first_value(id) OVER (PARTITION BY part ORDER BY id <> $1, id) AS head
    FROM ranked),
merged AS (
    UPDATE outbox o SET merged_into = p.head FROM parts p WHERE o.id = p.id AND p.id <> p.head)
SELECT p.head AS id, h.delivery_id::text AS delivery_id,
       coalesce(array_agg(p.id ORDER BY p.id) FILTER (WHERE p.id <> p.head), '{}') AS members,
       jsonb_agg(o.payload -> 'alert' ORDER BY p.id <> $1, p.id)::text AS alerts
FROM parts p JOIN outbox o ON o.id = p.id JOIN outbox h ON h.id = p.head
GROUP BY p.part, p.head, h.delivery_id
ORDER BY p.part
"""
_GROUPED = """
UPDATE outbox o SET payload = u.payload::jsonb, grouped = true, next_attempt_at = now()
FROM unnest($1::int8[], $2::text[]) AS u(id, payload)
WHERE o.id = u.id
"""
_DELIVERED = """
UPDATE outbox SET delivered_at = now(), last_error = NULL,
                  attempts = attempts + CASE WHEN id = $1 THEN 1 ELSE 0 END
WHERE id = $1 OR merged_into = $1
"""
_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = $2,
    failed_at = CASE WHEN $3 OR attempts + 1 >= $4 OR now() - created_at > make_interval(secs => $5)
                     THEN now() END,
    next_attempt_at = now() + make_interval(secs => $6)
WHERE id = $1
RETURNING failed_at IS NOT NULL AS failed
"""


async def claim_outbox(conn: asyncpg.Connection, limit: int, busy_webhooks: list[str],
                       mqtt_busy: bool) -> list[asyncpg.Record]:
    """Due rows, locked (SKIP LOCKED, so instances claim apart), skipping busy endpoints."""
    return await conn.fetch(_CLAIM, limit, busy_webhooks, mqtt_busy)


@dataclass(frozen=True, slots=True)
class StormPart:
    """One message of a storm group: the row that carries it, the rows merged into it, and
    the alerts of all of them (the carrying row's first)."""

    id: int
    delivery_id: str
    members: list[int]
    alerts: list[dict[str, Any]]


async def merge_storm(conn: asyncpg.Connection, leader_id: int,
                      group: tuple[str, str, str, str | None, str], formed: list[int],
                      window_s: float, per_part: int) -> list[StormPart]:
    """Merge the leader's group in one statement, however large: the leader and the pending
    first-time rows of ``group`` (channel, target, rule_id, district, change) written within
    ``window_s`` of it, in id order after it, cut into parts of ``per_part`` rows, each merged
    into its first row. ``formed`` are the rows carrying messages formed earlier in this
    transaction (not yet marked grouped): they are no candidates. The parts, the leader's
    first."""
    rows = await conn.fetch(_MERGE, leader_id, *group, formed, window_s, per_part)
    return [StormPart(r["id"], r["delivery_id"], list(r["members"]), json.loads(r["alerts"]))
            for r in rows]


async def store_grouped(conn: asyncpg.Connection,
                        messages: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """Each (row id, message) as it is sent, so that every retry sends the very same one. A
    stored message is due at once; the ones sent now are leased after this."""
    await conn.execute(_GROUPED, [i for i, _ in messages],
                       [msgspec.json.encode(m).decode() for _, m in messages])


async def lease_outbox(conn: asyncpg.Connection, row_ids: list[int], lease_s: float) -> None:
    """Push claimed rows' next attempt a lease ahead, so a sender that dies leaves them due."""
    await conn.execute(
        "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = ANY($1)",
        row_ids, lease_s)


async def outbox_delivered(conn: asyncpg.Connection, row_id: int) -> None:
    """The row and the rows merged into it are delivered."""
    await conn.execute(_DELIVERED, row_id)


async def outbox_failed(conn: asyncpg.Connection, row_id: int, error: str, *, permanent: bool,
                        max_attempts: int, max_age_s: float, retry_in_s: float) -> bool:
    """Count a failed attempt; True when the row (and so its members) is given up on."""
    failed = await conn.fetchval(_FAILED, row_id, error, permanent, max_attempts, max_age_s,
                                 retry_in_s)
    if failed:
        await conn.execute(
            "UPDATE outbox SET failed_at = now(), last_error = $2 WHERE merged_into = $1",
            row_id, error)
    return bool(failed)


# ---- housekeeping ------------------------------------------------------------------------

async def open_alert_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Open (firing or acknowledged) alerts per severity."""
    rows = await pool.fetch(
        "SELECT severity, count(*) AS n FROM alerts WHERE state <> 'resolved' GROUP BY severity")
    return {r["severity"]: r["n"] for r in rows}


async def prune_feed_and_outbox(pool: asyncpg.Pool, older_than_s: float) -> tuple[str, str]:
    """Drop feed rows and finished outbox rows older than that; the two command statuses."""
    async with pool.acquire() as conn:
        feed = await conn.execute(
            "DELETE FROM alert_feed WHERE at < now() - make_interval(secs => $1)", older_than_s)
        outbox = await conn.execute(
            "DELETE FROM outbox WHERE coalesce(delivered_at, failed_at)"
            " < now() - make_interval(secs => $1)", older_than_s)
    return feed, outbox


# ---- silences ----------------------------------------------------------------------------

_SILENCE_COLUMNS = (
    "id, matchers::text AS matchers, starts_at, ends_at, comment, created_by, created_at,"
    " (starts_at <= now() AND ends_at > now()) AS active")


async def active_silences(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    """(id, matchers as JSON text) of the silences in their window now."""
    rows = await conn.fetch(
        "SELECT id, matchers::text AS m FROM silences WHERE starts_at <= now() AND ends_at > now()")
    return [(r["id"], r["m"]) for r in rows]


async def insert_silence(
    conn: asyncpg.Connection, matchers: Mapping[str, str], starts_at: dt.datetime | None,
    ends_at: dt.datetime | None, comment: str | None, created_by: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO silences (matchers, starts_at, ends_at, comment, created_by)"
        f" VALUES ($1::jsonb, $2, $3, $4, $5) RETURNING {_SILENCE_COLUMNS}",
        json.dumps(dict(matchers), ensure_ascii=False), starts_at, ends_at, comment, created_by)


async def get_silence(conn: asyncpg.Connection, silence_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE id = $1",
                               silence_id)


async def list_silences(
    conn: asyncpg.Connection, *, include_expired: bool, districts: Sequence[str] | None,
    before_id: int | None, limit: int,
) -> list[asyncpg.Record]:
    """Newest first. ``districts`` limits to silences without a district or in those districts."""
    return await conn.fetch(
        f"""SELECT {_SILENCE_COLUMNS} FROM silences
            WHERE ($1 OR ends_at > now())
              AND ($2::text[] IS NULL OR matchers->>'district' IS NULL
                   OR matchers->>'district' = ANY($2))
              AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4""",
        include_expired, list(districts) if districts is not None else None, before_id, limit)


async def delete_silence(conn: asyncpg.Connection, silence_id: int) -> bool:
    return await conn.fetchval("DELETE FROM silences WHERE id = $1 RETURNING true",
                               silence_id) is not None
