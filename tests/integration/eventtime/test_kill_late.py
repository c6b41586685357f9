"""kill -9 between a late event and its corrections (issue #21).

A post of late readings raises, amends and withdraws alerts inside its batch's transaction;
the service is killed -9 there (IOC_TEST_STALL_DEVICE stops that transaction after the rules
wrote the corrections). Nothing of it is committed; the client sends the post again to the
restarted service, which corrects exactly once: the alerts, their audit trail and the feed are
those of a run that was never interrupted, and the alerts those of the reference evaluator.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
import time

import asyncpg

from tests.conftest import new_database
from tests.integration.eventtime.conftest import ServiceFactory
from tests.integration.eventtime.scenario import (
    MINUTE,
    Reading,
    expected_alerts,
    sql,
    stored_alerts,
    wait_until,
)
from tests.support.service import ServiceProcess, http

TRIGGER = "hg-vt-rf-001"  # its first reading comes with the late ones: the stall hook's device
FLOOD = "flood-vi-thanh-long-my"


def timeline(t0_us: int) -> tuple[list[list[Reading]], list[Reading]]:
    """Posts in order (10 minutes each) and the post of late readings, as designed:

    - hg-vt-wl-002 (amend the start): 1.9 m from minute 10 to 30; the reading of minute 10 comes
      late, so the alert fires at 22 (ten minutes after 12), then at 20;
    - hg-vt-wl-003 (withdraw): 1.9 m from 10 to 20 fires at 20; a late 1.5 m at minute 15
      breaks the run: it never lasted ten minutes;
    - hg-vt-wl-001 (amend the end): 1.9 m from 10 to 28, resolved at 30 by 1.5 m; a late 1.6 m
      at minute 29 resolves it then;
    - hg-vt-cam-001 (raise): fire scores at 10 and 14 are two of the three needed within ten
      minutes; the late one at 12 makes three at 14 (resolved at 16, a low score);
    - hg-lm-wl-001 (amend an open alert): 1.9 m from minute 20 on; the reading of 20 comes late.
    """
    def level(device: str, minute: float, v: float) -> Reading:
        ts = t0_us + round(minute * MINUTE)
        return Reading(f"{device}/{minute:g}", device, "water_level", ts, v, "m")

    def score(minute: int, v: float) -> Reading:
        ts = t0_us + minute * MINUTE
        return Reading(f"hg-vt-cam-001/{minute}", "hg-vt-cam-001", "camera.fire", ts, v,
                       "confidence")

    on_time: list[Reading] = []
    for m in range(0, 41, 2):
        if m != 10:
            on_time.append(level("hg-vt-wl-002", m, 1.9 if 10 <= m <= 30 else 1.5))
        on_time.append(level("hg-vt-wl-003", m, 1.9 if 10 <= m <= 20 else 1.5))
        on_time.append(level("hg-vt-wl-001", m, 1.9 if 10 <= m <= 28 else 1.5))
        if m != 20:
            on_time.append(level("hg-lm-wl-001", m, 1.9 if m >= 20 else 1.5))
        if m != 12:
            on_time.append(score(m, 0.9 if m in (10, 14) else 0.1 if m != 16 else 0.3))
    late = [level("hg-vt-wl-002", 10, 1.9), level("hg-vt-wl-003", 15, 1.5),
            level("hg-vt-wl-001", 29, 1.6), score(12, 0.9), level("hg-lm-wl-001", 20, 1.9),
            Reading(f"{TRIGGER}/40", TRIGGER, "rainfall", t0_us + 40 * MINUTE, 3.0, "mm/h")]
    rng = random.Random(9)
    posts = []
    for lo in range(0, 41, 10):
        chunk = [r for r in on_time if lo * MINUTE <= r.ts_us - t0_us < (lo + 10) * MINUTE]
        rng.shuffle(chunk)
        if chunk:
            posts.append(chunk)
    return posts, late


def body(readings: list[Reading]) -> bytes:
    return json.dumps([r.payload() for r in readings], ensure_ascii=False).encode()


def post(svc: ServiceProcess, readings: list[Reading], timeout: float = 30) -> dict:
    status, answer = http("POST", f"{svc.url}/api/v1/ingest", body(readings), timeout=timeout)
    assert status == 200, answer
    return answer  # type: ignore[return-value]


def record(dsn: str) -> dict[str, list[tuple]]:
    """Everything the alert store says, without ids and wall-clock times: comparable across
    runs (withdrawn alerts included)."""
    alerts = sql(dsn, "SELECT rule_id, device_id, district, kind, severity, state, message, value,"
                      " count, started_at, last_seen_at, resolved_at, resolved_by FROM alerts")
    audit = sql(dsn, "SELECT a.rule_id, a.device_id, a.started_at, u.action, u.actor, u.note"
                     " FROM alert_audit u JOIN alerts a ON a.id = u.alert_id")
    feed = sql(dsn, "SELECT a.rule_id, a.device_id, a.started_at, f.change FROM alert_feed f"
                    " JOIN alerts a ON a.id = f.alert_id")
    return {name: sorted(tuple(r.values()) for r in rows)  # type: ignore[misc]
            for name, rows in (("alerts", alerts), ("audit", audit), ("feed", feed))}


async def locked(dsn: str, rule_id: str, device_id: str) -> bool:
    """Whether another transaction holds the (rule, device)'s alert rows (it changed them)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.fetch("SELECT id FROM alerts WHERE rule_id = $1 AND device_id = $2"
                             " FOR UPDATE NOWAIT", rule_id, device_id)
        return False
    except asyncpg.LockNotAvailableError:
        return True
    finally:
        await conn.close()


def test_kill_9_between_a_late_event_and_its_corrections(pg_server,
                                                          services: ServiceFactory) -> None:
    t0 = (time.time_ns() // 1000 - 41 * MINUTE) // MINUTE * MINUTE
    on_time, late = timeline(t0)
    everything = [r for p in on_time for r in p] + late
    want = expected_alerts(everything)

    dsn = new_database(pg_server, "eventtime_kill")
    svc = services("killed", dsn, IOC_TEST_STALL_DEVICE=TRIGGER).start()
    for readings in on_time:
        assert post(svc, readings)["accepted"] == len(readings)
    before = record(dsn)
    assert before["alerts"], "the posts in order raised alerts"

    answers: list[object] = []

    def send_late() -> None:
        try:
            answers.append(http("POST", f"{svc.url}/api/v1/ingest", body(late), timeout=60))
        except OSError as exc:  # the connection dies with the service
            answers.append(exc)

    sender = threading.Thread(target=send_late, daemon=True)
    sender.start()
    stall = f"injected stall on an event of {TRIGGER}"
    assert wait_until(lambda: stall in svc.log(), 30), svc.log()[-3000:]
    # Stopped inside the transaction, with the corrections written: the amended and withdrawn
    # alerts are locked by it.
    for device in ("hg-vt-wl-002", "hg-vt-wl-003", "hg-vt-wl-001", "hg-lm-wl-001"):
        assert asyncio.run(locked(dsn, FLOOD, device)), device
    svc.kill()
    sender.join(30)
    assert not sender.is_alive()
    assert answers and not (isinstance(answers[0], tuple) and answers[0][0] == 200), answers
    assert record(dsn) == before, "nothing of the killed transaction is committed"

    del svc.env["IOC_TEST_STALL_DEVICE"]
    svc.start()
    answer = post(svc, late)  # the client sends it again
    assert (answer["accepted"], answer["duplicates"]) == (len(late), 0), answer
    after = record(dsn)
    answer = post(svc, late)  # and once more: nothing changes
    assert (answer["accepted"], answer["duplicates"]) == (0, len(late)), answer
    assert record(dsn) == after
    assert stored_alerts(dsn) == want

    # One audit row per correction, by late-data.
    corrections = sorted((rule, device, action) for rule, device, _, action, actor, _ in
                         after["audit"] if actor == "late-data")
    assert corrections == sorted([
        ("fire-camera", "hg-vt-cam-001", "firing"),       # raised
        (FLOOD, "hg-lm-wl-001", "corrected"),              # open alert started earlier
        (FLOOD, "hg-vt-wl-001", "corrected"),              # resolved earlier
        (FLOOD, "hg-vt-wl-002", "corrected"),              # started earlier
        (FLOOD, "hg-vt-wl-003", "resolved"),               # withdrawn
    ]), corrections
    alerts_per_key = collections.Counter((a[0], a[1], a[9]) for a in after["alerts"])
    assert max(alerts_per_key.values()) == 1, "an alert is stored twice"

    # The same posts to a service that is never interrupted store the same.
    dsn2 = new_database(pg_server, "eventtime_uninterrupted")
    calm = services("uninterrupted", dsn2).start()
    for readings in on_time:
        post(calm, readings)
    post(calm, late)
    assert record(dsn2) == after
    assert stored_alerts(dsn2) == want


def test_timeline_is_what_its_docstring_says() -> None:
    """The designed outcome, checked against the reference evaluator (no service)."""
    t0 = 1_790_000_000 * 1_000_000
    on_time, late = timeline(t0)
    everything = [r for p in on_time for r in p] + late
    assert len({(r.device_id, r.ts_us, r.event_id) for r in everything}) == len(everything)

    def rel(us: int | None) -> float | None:
        return None if us is None else (us - t0) / MINUTE

    got = {(a.rule_id, a.device_id): (rel(a.started_us), rel(a.resolved_us), a.fires)
           for a in expected_alerts(everything)}
    before = {(a.rule_id, a.device_id): (rel(a.started_us), rel(a.resolved_us), a.fires)
              for a in expected_alerts([r for p in on_time for r in p])}
    assert got == {
        (FLOOD, "hg-vt-wl-002"): (20, 32, 1), (FLOOD, "hg-vt-wl-001"): (20, 29, 1),
        ("fire-camera", "hg-vt-cam-001"): (14, 16, 1), (FLOOD, "hg-lm-wl-001"): (30, None, 1),
    }
    assert before == {
        (FLOOD, "hg-vt-wl-002"): (22, 32, 1), (FLOOD, "hg-vt-wl-001"): (20, 30, 1),
        (FLOOD, "hg-vt-wl-003"): (20, 22, 1), (FLOOD, "hg-lm-wl-001"): (32, None, 1),
    }
