"""The rules table (file rules and API rules, versioned) and rule_state persistence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: str
    definition: dict[str, Any]
    version: int
    source: str
    updated_at: Any
    updated_by: str | None


def _stored(row: asyncpg.Record) -> StoredRule:
    return StoredRule(row["id"], json.loads(row["definition"]), row["version"], row["source"],
                      row["updated_at"], row["updated_by"])


async def list_rules(conn: asyncpg.Connection) -> list[StoredRule]:
    rows = await conn.fetch("SELECT id, definition::text AS definition, version, source, "
                            "updated_at, updated_by FROM rules ORDER BY id")
    return [_stored(r) for r in rows]


async def get_rule(conn: asyncpg.Connection, rule_id: str) -> StoredRule | None:
    row = await conn.fetchrow("SELECT id, definition::text AS definition, version, source, "
                              "updated_at, updated_by FROM rules WHERE id = $1", rule_id)
    return _stored(row) if row else None


async def put_rule(conn: asyncpg.Connection, definition: dict[str, Any], *, source: str,
                   actor: str | None) -> StoredRule:
    """Create or update one rule and record the new version (call inside a transaction)."""
    text = json.dumps(definition, ensure_ascii=False, sort_keys=True)
    row = await conn.fetchrow(
        """
        INSERT INTO rules (id, definition, version, source, updated_at, updated_by)
        VALUES ($1, $2::jsonb, 1, $3, now(), $4)
        ON CONFLICT (id) DO UPDATE SET definition = EXCLUDED.definition,
            version = rules.version + 1, source = EXCLUDED.source,
            updated_at = now(), updated_by = EXCLUDED.updated_by
        RETURNING id, definition::text AS definition, version, source, updated_at, updated_by,
                  (xmax = 0) AS created
        """,
        definition["id"], text, source, actor,
    )
    await conn.execute(
        "INSERT INTO rule_versions (rule_id, version, action, definition, changed_by)"
        " VALUES ($1, $2, $3, $4::jsonb, $5)",
        row["id"], row["version"], "create" if row["created"] else "update", text, actor,
    )
    return _stored(row)


async def delete_rule(conn: asyncpg.Connection, rule_id: str, *, actor: str | None) -> bool:
    row = await conn.fetchrow("DELETE FROM rules WHERE id = $1 RETURNING version", rule_id)
    if row is None:
        return False
    await conn.execute(
        "INSERT INTO rule_versions (rule_id, version, action, changed_by) VALUES ($1, $2, 'delete', $3)",
        rule_id, row["version"] + 1, actor,
    )
    await delete_states(conn, [rule_id])
    return True


async def sync_file_rules(conn: asyncpg.Connection, definitions: Sequence[dict[str, Any]]) -> list[str]:
    """Make the table hold the rule file: add and update its rules, delete file rules it dropped.

    A rule last changed through the API keeps the API's version until the file changes it
    again. Returns the ids that changed. Call inside a transaction.
    """
    current = {r.id: r for r in await list_rules(conn)}
    changed: list[str] = []
    wanted = {d["id"] for d in definitions}
    for d in definitions:
        old = current.get(d["id"])
        if old is None or (old.source == "file" and old.definition != d):
            await put_rule(conn, d, source="file", actor="rules-file")
            changed.append(d["id"])
    for rule_id, old in current.items():
        if old.source == "file" and rule_id not in wanted:
            await delete_rule(conn, rule_id, actor="rules-file")
            changed.append(rule_id)
    return changed


async def rule_history(conn: asyncpg.Connection, rule_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT version, action, definition::text AS definition, changed_by, changed_at"
        " FROM rule_versions WHERE rule_id = $1 ORDER BY version", rule_id)


# ---- rule_state ------------------------------------------------------------------------

async def save_states(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str]]) -> None:
    """Upsert (rule_id, device_id, state_json) rows in the batch's transaction."""
    if not rows:
        return
    rule_ids, device_ids, states = zip(*rows, strict=True)
    await conn.execute(
        """
        INSERT INTO rule_state (rule_id, device_id, state, updated_at)
        SELECT r, d, s::jsonb, now() FROM unnest($1::text[], $2::text[], $3::text[]) AS t(r, d, s)
        ON CONFLICT (device_id, checkpoint, rule_id)
        DO UPDATE SET state = EXCLUDED.state, updated_at = now()
        """,
        list(rule_ids), list(device_ids), list(states),
    )


async def load_states(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """The committed (rule_id, device_id, state_json) rows."""
    rows = await conn.fetch("SELECT rule_id, device_id, state::text AS state FROM rule_state"
                            " WHERE checkpoint = 0")
    return [(r["rule_id"], r["device_id"], r["state"]) for r in rows]


# ---- rule checkpoints (ioc/rules/checkpoints.py; migration 006) ----------------------------

async def save_checkpoints(conn: asyncpg.Connection, dropped: Sequence[tuple[str, int]],
                           taken: Sequence[tuple[str, int, int, str]],
                           horizons: Sequence[tuple[str, int]],
                           written: Sequence[tuple[str, int, int, str]] = (),
                           rows: Sequence[tuple[str, str, int, str]] = ()) -> None:
    """Drop snapshot entries, take new ones as copies of the committed rule rows (call after
    :func:`save_states` in the same transaction), write entries given in full (``written``
    with their rule ``rows``), move horizons. Entry e is checkpoint e + 1; an entry taken or
    written replaces whatever rows it had."""
    cleared = [*dropped, *((d, e) for d, e, _, _ in (*taken, *written))]
    if cleared:
        devices, entries = (list(c) for c in zip(*cleared, strict=True))
        await conn.execute(
            """
            DELETE FROM rule_state s USING unnest($1::text[], $2::int2[]) AS u(d, e)
            WHERE s.device_id = u.d AND s.checkpoint = u.e + 1
            """, devices, entries)
        await conn.execute(
            """
            DELETE FROM rule_checkpoints c USING unnest($1::text[], $2::int2[]) AS u(d, e)
            WHERE c.device_id = u.d AND c.entry = u.e
            """, devices, entries)
    if taken:
        devices, entries, at, clocks = (list(c) for c in zip(*taken, strict=True))
        await conn.execute(
            """
            INSERT INTO rule_state (rule_id, device_id, checkpoint, state, updated_at)
            SELECT s.rule_id, s.device_id, u.e + 1, s.state, now()
            FROM unnest($1::text[], $2::int2[]) AS u(d, e)
            JOIN rule_state s ON s.device_id = u.d AND s.checkpoint = 0
            """, devices, entries)
    if taken or written:
        devices, entries, at, clocks = (list(c) for c in zip(*taken, *written, strict=True))
        await conn.execute(
            """
            INSERT INTO rule_checkpoints (device_id, entry, at_us, clocks)
            SELECT * FROM unnest($1::text[], $2::int2[], $3::int8[], $4::text[]::jsonb[])
            """, devices, entries, at, clocks)
    if rows:
        rule_ids, devices, entries, states = (list(c) for c in zip(*rows, strict=True))
        await conn.execute(
            """
            INSERT INTO rule_state (rule_id, device_id, checkpoint, state, updated_at)
            SELECT r, d, e + 1, s::jsonb, now()
            FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[]) AS u(r, d, e, s)
            """, rule_ids, devices, entries, states)
    if horizons:
        devices, values = (list(c) for c in zip(*horizons, strict=True))
        await conn.execute(
            """
            INSERT INTO rule_horizons (device_id, horizon_us)
            SELECT * FROM unnest($1::text[], $2::int8[])
            ON CONFLICT (device_id) DO UPDATE SET horizon_us = EXCLUDED.horizon_us
            """, devices, values)


@dataclass(frozen=True, slots=True)
class StoredCheckpoints:
    """What :meth:`ioc.rules.RuleEngine.load_checkpoints` takes."""

    entries: list[tuple[str, int, int, str]]
    states: list[tuple[str, str, int, str]]
    horizons: list[tuple[str, int]]


async def load_checkpoints(conn: asyncpg.Connection) -> StoredCheckpoints:
    entries = await conn.fetch(
        "SELECT device_id, entry, at_us, clocks::text AS clocks FROM rule_checkpoints")
    states = await conn.fetch(
        "SELECT rule_id, device_id, checkpoint - 1 AS entry, state::text AS state"
        " FROM rule_state WHERE checkpoint > 0")
    horizons = await conn.fetch("SELECT device_id, horizon_us FROM rule_horizons")
    return StoredCheckpoints(
        [(r["device_id"], r["entry"], r["at_us"], r["clocks"]) for r in entries],
        [(r["rule_id"], r["device_id"], r["entry"], r["state"]) for r in states],
        [(r["device_id"], r["horizon_us"]) for r in horizons])


async def recent_events(conn: asyncpg.Connection, horizons: Sequence[tuple[str, int]],
                        default_from_us: int) -> tuple[list[str], list[str], list[int], list[float]]:
    """Stored events the rule engine keeps for replays: those at or after their device's
    horizon (``default_from_us`` for devices without one), as columns with ts in µs."""
    rows = await conn.fetch(
        """
        SELECT e.device_id, e.kind,
               (extract(epoch FROM e.ts) * 1000000)::bigint AS ts_us, e.value
        FROM events e
        LEFT JOIN unnest($1::text[], $2::int8[]) AS h(d, us) ON h.d = e.device_id
        WHERE e.ts >= timestamptz 'epoch' + interval '1 microsecond'
                      * least($3::int8, coalesce((SELECT min(us) FROM unnest($2::int8[]) AS m(us)),
                                                 $3::int8))
          AND e.ts >= timestamptz 'epoch' + interval '1 microsecond' * coalesce(h.us, $3::int8)
        """,
        [h[0] for h in horizons], [h[1] for h in horizons], default_from_us,
    )
    return ([r["device_id"] for r in rows], [r["kind"] for r in rows],
            [int(r["ts_us"]) for r in rows], [float(r["value"]) for r in rows])


async def delete_states(conn: asyncpg.Connection, rule_ids: Sequence[str]) -> None:
    if rule_ids:
        await conn.execute("DELETE FROM rule_state WHERE rule_id = ANY($1::text[])", list(rule_ids))


async def latest_ts(conn: asyncpg.Connection, window_s: float) -> list[tuple[str, str, int]]:
    """(device_id, kind, newest ts in µs) over the recent window, to restore engine clocks.

    Clocks are derived from the stored events instead of being written with every batch:
    that would cost an upsert per device per batch.
    """
    rows = await conn.fetch(
        """
        SELECT device_id, kind,
               (extract(epoch FROM max(ts)) * 1000000)::bigint AS ts_us
        FROM events WHERE ts > now() - make_interval(secs => $1)
        GROUP BY device_id, kind
        """,
        window_s,
    )
    return [(r["device_id"], r["kind"], int(r["ts_us"])) for r in rows]


async def history_for_backtest(
    conn: asyncpg.Connection, *, kind: str | None, device_ids: Sequence[str] | None,
    from_us: int, to_us: int, limit: int,
) -> tuple[list[str], list[str], list[int], list[float]]:
    """Stored events in [from, to) as columns (ts in µs), oldest first, at most ``limit``."""
    rows = await conn.fetch(
        """
        SELECT device_id, kind, (extract(epoch FROM ts) * 1000000)::bigint AS ts_us, value
        FROM events
        WHERE ts >= to_timestamp($1::float8 / 1e6) AND ts < to_timestamp($2::float8 / 1e6)
          AND ($3::text IS NULL OR kind = $3)
          AND ($4::text[] IS NULL OR device_id = ANY($4))
        ORDER BY ts, received_at
        LIMIT $5
        """,
        from_us, to_us, kind, list(device_ids) if device_ids is not None else None, limit,
    )
    return ([r["device_id"] for r in rows], [r["kind"] for r in rows],
            [int(r["ts_us"]) for r in rows], [float(r["value"]) for r in rows])
