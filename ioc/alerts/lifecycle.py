"""Alert lifecycle writes: rule transitions and hand changes, with audit, feed and outbox rows.

Everything here runs inside the caller's transaction, so an alert change, its audit row, its
live-feed row and its notifications commit together or not at all (kill -9 loses none and
duplicates none).

Ordering: every writer first takes the transaction-level advisory lock ``FEED_LOCK``, and
only then touches alerts. That one lock (a) makes feed ids commit in increasing order, which is
what lets SSE clients resume from an id without gaps, and (b) gives every writer the same lock
order, so the batch writer and an operator's ack cannot deadlock on alert rows. The price is
that alert-producing transactions serialize from their first alert write to commit, which is
why the pipeline should record alerts last in its batch transaction.

At most one open alert per (rule, device) is enforced by the partial unique index
``alerts_one_open``; fires are written with ``INSERT ... ON CONFLICT ... DO UPDATE``, so even a
writer that does not take the lock cannot create a second one. The statements themselves are
in ``ioc/storage/alerts.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from ioc.alerts import episodes
from ioc.alerts.config import NotificationConfig
from ioc.alerts.shape import alert_dict, district_slug, iso
from ioc.alerts.silences import Silence, active_silences, silenced
from ioc.rules import Correction, Transition
from ioc.storage import alerts as stored
from ioc.storage.devices import device_districts

SYSTEM = "system"
LATE_DATA = "late-data"
MQTT_TOPIC = "ioc/v1/alerts/{district}"
MQTT_CHANGES = frozenset({"fired", "acknowledged", "resolved"})
_AUDIT_ACTION = {"fired": "firing", "acknowledged": "acknowledged", "resolved": "resolved",
                 "corrected": "corrected"}


class AlertNotFound(LookupError):
    """No alert with that id."""


class AlertStateConflict(Exception):
    """The alert is not in a state the asked change applies to (e.g. acking an acknowledged one)."""

    def __init__(self, alert_id: int, state: str, wanted: str) -> None:
        super().__init__(f"alert {alert_id} is {state}; it cannot become {wanted}")
        self.state = state


@dataclass(slots=True)
class Change:
    """One alert change to publish: ``change`` is fired, repeated, acknowledged, resolved or
    corrected (late data changed its start, end or number of fires)."""

    order: int
    change: str
    alert: dict[str, Any]
    actor: str | None = None  # None: no audit row (a repeat is not a change of state)
    note: str | None = None


@dataclass(slots=True)
class Written:
    """What a transaction wrote, for the post-commit wake-up and the metrics."""

    changes: list[Change] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    outbox_rows: int = 0


class Recorder:
    """Writes alert changes; knows which notification targets each change goes to."""

    def __init__(self, notifications: NotificationConfig, *, storm_window_s: float,
                 mqtt: bool) -> None:
        self.notifications = notifications
        self.storm_window_s = storm_window_s
        self.mqtt = mqtt

    async def apply(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                    received_at: float | None,
                    corrections: Sequence[Correction] = ()) -> Written:
        """Apply the batch's fire/clear transitions, then the corrections late events made
        (see :meth:`_correct`).

        Transitions are read per (rule, device) as episodes (``ioc/alerts/episodes.py``): one
        statement updates the alerts open before the batch (repeated, resolved), one inserts
        every other episode — resolved already if it ended in the batch — however large the
        batch and however often a key fires and clears in it.
        """
        await stored.lock_alert_writes(conn)
        district = await device_districts(
            conn, {t.device_id for t in transitions} | {c.device_id for c in corrections})
        silences = await active_silences(conn)
        written = Written()
        if transitions:
            keys = episodes.plan(transitions)
            continued = await self._continue(conn, transitions, keys, written)
            await self._open(conn, transitions, keys, continued, district, silences, written)
        if corrections:
            await self._correct(conn, corrections, len(transitions), district, silences, written)
        written.changes.sort(key=lambda c: c.order)
        await self._publish(conn, written, received_at, silences)
        return written

    async def _continue(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                        keys: list[episodes.KeyPlan], written: Written) -> set[int]:
        """Repeat or resolve the alerts open before the batch; returns the ``id()`` of each
        key plan whose first episode continued an open alert."""
        asked = [k for k in keys if k.lead_clear is not None or k.continues_open()]
        if not asked:
            return set()
        cols: list[list[Any]] = [[] for _ in range(7)]
        for k in asked:
            if k.lead_clear is not None:
                row: tuple[Any, ...] = (0, None, None, None, transitions[k.lead_clear].ts_us)
            else:
                first = k.episodes[0]
                last = transitions[first.fires[-1]]
                end = None if first.end is None else transitions[first.end].ts_us
                row = (len(first.fires), last.ts_us, _finite(last.value), last.message, end)
            for col, v in zip(cols, (k.rule_id, k.device_id, *row), strict=True):
                col.append(v)
        continued = set()
        for r in await stored.continue_alerts(conn, cols, SYSTEM):
            k = asked[r["i"] - 1]
            alert = alert_dict(r)
            if k.lead_clear is not None:
                written.changes.append(Change(k.lead_clear, "resolved", alert, SYSTEM))
                continue
            continued.add(id(k))
            first = k.episodes[0]
            if first.end is None:
                written.changes.append(Change(first.fires[0], "repeated", alert))
            else:
                written.changes.append(Change(first.end, "resolved", alert, SYSTEM))
        return continued

    async def _open(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                    keys: list[episodes.KeyPlan], continued: set[int],
                    district: dict[str, str | None], silences: list[Silence],
                    written: Written) -> None:
        """Insert the episodes that did not continue an open alert."""
        cols: list[list[Any]] = [[] for _ in range(12)]
        # Inserted rows are told apart by key, start and end (two episodes of one key alike in
        # those are alike in every column).
        opened: dict[tuple[str, str, str | None, str | None], list[episodes.Episode]] = {}
        last_open: dict[tuple[str, str], episodes.Episode] = {}
        # In the order they fired, so that alert ids follow it.
        todo = sorted(((ep.fires[0], k, ep) for k in keys
                       for ep in (k.episodes[1:] if id(k) in continued else k.episodes)),
                      key=lambda x: x[0])
        for _, k, ep in todo:
            d = district.get(k.device_id)
            fire, last = transitions[ep.fires[0]], transitions[ep.fires[-1]]
            quiet = silenced(silences, {"rule_id": k.rule_id, "device_id": k.device_id,
                                        "district": d, "severity": fire.severity})
            end = None if ep.end is None else transitions[ep.end].ts_us
            for col, v in zip(cols, (k.rule_id, k.device_id, d, fire.kind, fire.severity,
                                     last.message, _finite(last.value), fire.ts_us,
                                     last.ts_us, quiet, len(ep.fires), end), strict=True):
                col.append(v)
            opened.setdefault((k.rule_id, k.device_id, iso(fire.ts_us), iso(end)),
                              []).append(ep)
            if end is None:
                last_open[(k.rule_id, k.device_id)] = ep
        if not opened:
            return
        for r in await stored.open_alerts(conn, cols, SYSTEM):
            alert = alert_dict(r)
            key = (alert["rule_id"], alert["device_id"])
            if not r["inserted"]:  # an alert was open after all: these fires repeat it
                written.changes.append(Change(last_open[key].fires[0], "repeated", alert))
                continue
            ep = opened[(*key, alert["started_at"], alert["resolved_at"])].pop(0)
            if ep.end is None:
                written.changes.append(Change(ep.fires[0], "fired", alert, SYSTEM))
            else:
                written.changes.append(Change(ep.fires[0], "fired", {
                    **alert, "state": "firing", "resolved_at": None, "resolved_by": None}, SYSTEM))
                written.changes.append(Change(ep.end, "resolved", alert, SYSTEM))
            written.fired[alert["severity"]] += 1

    async def _correct(self, conn: asyncpg.Connection, corrections: Sequence[Correction],
                       order: int, district: dict[str, str | None], silences: list[Silence],
                       written: Written) -> None:
        """Make the stored alerts what all events, late ones included, say.

        Each correction names the alert it changes by (rule, device, started_at) — or, for an
        alert open since before the replay's checkpoint, as the newest one of the pair that
        started before it. Withdrawals come first and alerts that reopen last, so that at no
        point two alerts of one (rule, device) are open. Nothing is deleted: a withdrawn alert
        is resolved by ``late-data``; acknowledgements and hand resolutions are kept.
        """
        old = [c for c in corrections if c.old is not None]
        found = await stored.corrected_alerts(
            conn, [c.rule_id for c in old], [c.device_id for c in old],
            [c.old.start_us for c in old],  # type: ignore[union-attr]
            [c.since_us for c in old])
        target = {id(c): found[i + 1]["id"] for i, c in enumerate(old) if i + 1 in found}
        withdraw = [c for c in corrections if c.new is None and id(c) in target]
        amend = [c for c in corrections if c.old is not None and c.new is not None
                 and id(c) in target]
        amend.sort(key=lambda c: c.new.end_us is None)  # type: ignore[union-attr]
        raise_ = [c for c in corrections
                  if c.new is not None and c.new.fire is not None and id(c) not in target]
        if withdraw:
            for row in await stored.withdraw_alerts(conn, [target[id(c)] for c in withdraw]):
                written.changes.append(Change(order, "resolved", alert_dict(row), LATE_DATA,
                                              "withdrawn: later data shows it did not happen"))
        for reopening in (False, True):
            batch = [c for c in amend if (c.new.end_us is None) == reopening]  # type: ignore[union-attr]
            if not batch:
                continue
            rows = await stored.amend_alerts(conn, [
                [target[id(c)] for c in batch],
                [c.new.start_us for c in batch],  # type: ignore[union-attr]
                [c.new.end_us for c in batch],  # type: ignore[union-attr]
                [c.new.fires - c.old.fires for c in batch],  # type: ignore[union-attr]
                [_last_fire(c) for c in batch],
            ])
            by_alert = {target[id(c)]: c for c in batch}
            for row in rows:
                c = by_alert[row["id"]]
                was_open = c.old.end_us is None  # type: ignore[union-attr]
                change = "resolved" if was_open and row["state"] == "resolved" else "corrected"
                written.changes.append(Change(order, change, alert_dict(row), LATE_DATA,
                                              _amend_note(c)))
        if raise_:
            cols: list[list[Any]] = [[] for _ in range(12)]
            for c in raise_:
                n = c.new
                assert n is not None and n.fire is not None
                f = n.fire
                d = district.get(c.device_id)
                quiet = silenced(silences, {"rule_id": c.rule_id, "device_id": c.device_id,
                                            "district": d, "severity": f.severity})
                for col, v in zip(cols, (c.rule_id, c.device_id, d, f.kind, f.severity, f.message,
                                         _finite(f.value), n.start_us, _last_fire(c), quiet, n.fires,
                                         n.end_us), strict=True):
                    col.append(v)
            for row in await stored.raise_alerts(conn, cols):
                alert = alert_dict(row)
                written.changes.append(Change(order, "fired", alert, LATE_DATA,
                                              "raised from events that arrived late"))
                written.fired[alert["severity"]] += 1
                if row["state"] == "resolved":
                    written.changes.append(Change(order, "resolved", alert, SYSTEM))

    async def set_state(self, conn: asyncpg.Connection, alert_id: int, state: str, actor: str,
                        note: str | None) -> Written:
        """Acknowledge or resolve by hand; the caller holds the transaction."""
        await stored.lock_alert_writes(conn)
        current = await stored.lock_alert_state(conn, alert_id)
        if current is None:
            raise AlertNotFound(alert_id)
        allowed = ("firing",) if state == "acknowledged" else ("firing", "acknowledged")
        if current not in allowed:
            raise AlertStateConflict(alert_id, current, state)
        row = await stored.set_alert_state(conn, alert_id, state, actor)
        written = Written([Change(0, state, alert_dict(row), actor, note)])
        await self._publish(conn, written, None, await active_silences(conn))
        return written

    async def acknowledge(self, conn: asyncpg.Connection, alert_ids: list[int], actor: str,
                          note: str | None, districts: list[str] | None) -> Written:
        """Acknowledge the firing ones of ``alert_ids`` (a storm's group, say) at once: one
        audit row (``actor``, ``note``) and one feed row each; the caller holds the transaction."""
        await stored.lock_alert_writes(conn)
        rows = await stored.acknowledge_alerts(conn, alert_ids, actor, districts)
        written = Written([Change(r["id"], "acknowledged", alert_dict(r), actor, note)
                           for r in sorted(rows, key=lambda r: r["id"])])
        await self._publish(conn, written, None, await active_silences(conn))
        return written

    async def _publish(self, conn: asyncpg.Connection, written: Written,
                       received_at: float | None, silences: list[Silence]) -> None:
        """Audit rows for changes of state, feed rows for every change, outbox rows to notify."""
        changes = written.changes
        if not changes:
            return
        audit = [c for c in changes if c.actor is not None]
        if audit:
            await stored.insert_audit(conn, [c.alert["id"] for c in audit],
                                      [_AUDIT_ACTION[c.change] for c in audit],
                                      [c.actor for c in audit], [c.note for c in audit])
        feed_data = [msgspec.json.encode({**c.alert, "change": c.change}).decode() for c in changes]
        await stored.insert_feed(conn, [c.alert["id"] for c in changes],
                                 [c.change for c in changes],
                                 [c.alert["district"] for c in changes],
                                 [c.alert["severity"] for c in changes], feed_data,
                                 [received_at] * len(changes))
        outbox = self._outbox_rows(changes, silences)
        if outbox:
            await stored.insert_outbox(conn, outbox)
        written.outbox_rows = len(outbox)

    def _outbox_rows(self, changes: list[Change], silences: list[Silence]) -> list[tuple[Any, ...]]:
        """(channel, target, payload, alert_id, rule_id, district, change, delay_s) per send.

        Webhook and MQTT rows alike wait ``storm_window_s``, so that the notifier can group the
        changes of a storm into one message per target (see notifier.py).
        """
        rows: list[tuple[Any, ...]] = []
        for c in changes:
            a = c.alert
            if a["silenced"] or silenced(silences, a):
                continue
            targets = [("webhook", hook.name) for hook in self.notifications.webhooks
                       if hook.wants(c.change, a)]
            if self.mqtt and c.change in MQTT_CHANGES:
                targets.append(("mqtt", MQTT_TOPIC.format(district=district_slug(a["district"]))))
            if targets:
                payload = msgspec.json.encode({"change": c.change, "alert": a}).decode()
                rows.extend((channel, target, payload, a["id"], a["rule_id"], a["district"],
                             c.change, self.storm_window_s) for channel, target in targets)
        return rows


def _finite(value: float) -> float | None:
    """A reading as stored: NaN (an absence fire has no reading) becomes NULL."""
    return value if math.isfinite(value) else None


def _last_fire(c: Correction) -> int | None:
    """When the corrected alert last fired (its ``last_seen_at``)."""
    last = c.new.last if c.new is not None else None
    return None if last is None else last.ts_us


def _amend_note(c: Correction) -> str:
    """What changed, for the audit trail (times as the API shows them)."""
    old, new = c.old, c.new
    assert old is not None and new is not None
    parts = []
    if new.start_us is not None and new.start_us != old.start_us:
        parts.append(f"started_at {iso(old.start_us)} → {iso(new.start_us)}")
    if new.end_us != old.end_us:
        parts.append(f"resolved_at {iso(old.end_us) or 'open'} → {iso(new.end_us) or 'open'}")
    if new.fires != old.fires:
        parts.append(f"fires {old.fires} → {new.fires}")
    return "late data: " + "; ".join(parts)
