"""Late events against a real PostgreSQL: corrections reach the alerts, their audit and the feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import numpy as np
import pytest

from ioc.alerts.config import NotificationConfig
from ioc.alerts.lifecycle import Recorder
from ioc.ingest.rule_processor import RuleProcessor
from ioc.metrics import Metrics
from ioc.model import EventBatch
from ioc.rules import AlertRecord, Correction, RuleBatch, RuleEngine, Transition, load_rules_text
from ioc.rules.reference import reference_alerts
from ioc.storage.rules import load_checkpoints

S = 1_000_000
T0 = 1_790_000_000 * S
RULES = load_rules_text("""
rules:
  - id: high
    kind: water_level
    when: {op: ">", value: 5}
  - id: held
    kind: water_level
    when: {op: ">", value: 5}
    for: 60s
""")


class Sink:
    """The alert side's recorder, as the service's ``Alerts.record`` calls it."""

    def __init__(self) -> None:
        self.recorder = Recorder(NotificationConfig(), storm_window_s=30.0, mqtt=False)

    async def record(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                     received_at: float, corrections: Sequence[Correction] = ()) -> None:
        await self.recorder.apply(conn, transitions, received_at, corrections)


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database)
    await conn.execute("TRUNCATE alerts, rule_state, rule_checkpoints, rule_horizons CASCADE")
    try:
        yield conn
    finally:
        await conn.close()


def events(rows: Sequence[tuple[str, int, float]]) -> EventBatch:
    n = len(rows)
    return EventBatch(
        device_id=[r[0] for r in rows], event_id=[f"{r[0]}-{r[1]}" for r in rows],
        kind=["water_level"] * n, ts=np.array([T0 + r[1] * S for r in rows], dtype=np.int64),
        value=np.array([r[2] for r in rows], dtype=np.float64), unit=[None] * n,
        attrs=[None] * n)


async def post(proc: RuleProcessor, conn: asyncpg.Connection, batch: EventBatch) -> None:
    async with conn.transaction():
        after = await proc.process(conn, batch, np.ones(len(batch), bool), 0.0)
    if after is not None:
        after()


async def stored(conn: asyncpg.Connection) -> list[AlertRecord]:
    rows = await conn.fetch(
        "SELECT rule_id, device_id, started_at, resolved_at, count FROM alerts"
        " WHERE resolved_by IS DISTINCT FROM 'late-data' ORDER BY rule_id, device_id, started_at")

    def us(t: object) -> int | None:
        return None if t is None else round(t.timestamp() * S)  # type: ignore[attr-defined]

    return [AlertRecord(r["rule_id"], r["device_id"], us(r["started_at"]),  # type: ignore[arg-type]
                        us(r["resolved_at"]), r["count"]) for r in rows]


async def test_late_events_raise_amend_and_withdraw_alerts_with_audit_and_feed(
        conn: asyncpg.Connection) -> None:
    proc = RuleProcessor(RuleEngine(RULES, [], 3600.0), Metrics(), sink=Sink())
    sent = [
        [("g1", 0, 9.0), ("g1", 30, 9.0), ("g1", 70, 9.0), ("g1", 100, 1.0)],  # both fire
        [("g2", 0, 1.0), ("g2", 100, 1.0)],
        [("g1", 40, 1.0)],   # breaks held's run: withdrawn; splits high's episode
        [("g2", 50, 9.0)],   # a missed episode of high: raised, already resolved
        [("g1", -20, 9.0)],  # high started earlier: amended
    ]
    for rows in sent:
        await post(proc, conn, events(rows))
    everything = [r for rows in sent for r in rows]
    want = reference_alerts(RULES, [], RuleBatch(
        [r[0] for r in everything], ["water_level"] * len(everything),
        np.array([T0 + r[1] * S for r in everything], dtype=np.int64),
        np.array([r[2] for r in everything])))
    assert await stored(conn) == want
    withdrawn = await conn.fetch("SELECT id, rule_id, state FROM alerts"
                                 " WHERE resolved_by = 'late-data'")
    assert [(r["rule_id"], r["state"]) for r in withdrawn] == [("held", "resolved")]
    audit = await conn.fetch("SELECT a.rule_id, a.device_id, u.action, u.actor, u.note"
                             " FROM alert_audit u JOIN alerts a ON a.id = u.alert_id ORDER BY u.id")
    actions = [(r["rule_id"], r["device_id"], r["action"], r["actor"]) for r in audit]
    assert ("held", "g1", "resolved", "late-data") in actions
    assert ("high", "g2", "firing", "late-data") in actions
    assert ("high", "g1", "corrected", "late-data") in actions
    assert all(r["note"] for r in audit if r["actor"] == "late-data")
    feed = [r["change"] for r in await conn.fetch("SELECT change FROM alert_feed ORDER BY id")]
    assert "corrected" in feed and feed.count("fired") >= 3


async def test_restart_replays_a_late_event_from_stored_checkpoints(
        conn: asyncpg.Connection) -> None:
    """A fresh engine restored from the database corrects like the one that stored it."""
    first = [events([("g1", t, 9.0 if 10 <= t < 50 else 1.0) for t in range(0, 400, 10)])]
    late = events([("g1", 55, 9.0)])
    proc = RuleProcessor(RuleEngine(RULES, [], 3600.0), Metrics(), sink=Sink())
    for b in first:
        await post(proc, conn, b)
    stored_events = first[0]
    restarted = RuleEngine(RULES, [], 3600.0)
    restarted.load_state([(r["rule_id"], r["device_id"], r["state"]) for r in await conn.fetch(
        "SELECT rule_id, device_id, state::text AS state FROM rule_state WHERE checkpoint = 0")])
    last = int(stored_events.ts.max())
    restarted.load_clocks([("g1", f'{{"latest":{last},"kinds":{{"water_level":{last}}}}}')])
    cp = await load_checkpoints(conn)
    assert cp.entries, "the batch took a checkpoint"
    restarted.load_checkpoints(cp.entries, cp.states, cp.horizons)
    restarted.load_recent(RuleBatch(list(stored_events.device_id), list(stored_events.kind),
                                    stored_events.ts, stored_events.value))
    proc2 = RuleProcessor(restarted, Metrics(), sink=Sink())
    await post(proc2, conn, late)
    rows = [("g1", t, 9.0 if 10 <= t < 50 else 1.0) for t in range(0, 400, 10)] + [("g1", 55, 9.0)]
    want = reference_alerts(RULES, [], RuleBatch(
        [r[0] for r in rows], ["water_level"] * len(rows),
        np.array([T0 + r[1] * S for r in rows], dtype=np.int64), np.array([r[2] for r in rows])))
    assert await stored(conn) == want
