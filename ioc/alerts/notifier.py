"""Delivers the transactional outbox: webhooks and MQTT publishes, grouped in storms.

Outbox rows are written in the transaction of the alert change that causes them, so a crash
loses none; this loop sends them at least once, and every message carries the stable
``delivery_id`` of its row so that receivers can drop repeats.

Claiming (several instances may run this loop): a short transaction selects due rows with
``FOR UPDATE SKIP LOCKED``, groups them, and pushes the chosen rows' ``next_attempt_at`` a lease
into the future; sending happens after commit, holding no lock or connection. A process that
dies mid-send leaves its rows to be retried when the lease ends, with the same delivery id.

Storm grouping, the same for webhooks and MQTT: a row becomes due ``storm_window_s`` after it
was written. When the oldest pending row of a group — same channel and target (a webhook's
endpoint, an MQTT topic), rule, district and change — is due, every pending row of that group
written within ``storm_window_s`` of it is merged into it (``merged_into``), in one statement
however large the storm, and the target gets one message listing all their alerts and devices,
under the oldest row's delivery id. The merge is committed before the first attempt, so
retries resend exactly the same message. Rows written later start the next group. With a
window of 0 every change is its own message, due at once.

A message lists at most :data:`MAX_GROUP_ALERTS` alerts: a larger group is merged into
consecutive parts of that many rows, each carried by its first row (its own message and
delivery id), all formed at once and due at once. The bound keeps every message sendable: the
broker we ship refuses MQTT packets over 1 MB (``max_packet_size`` in config/mosquitto.conf),
many web servers refuse request bodies over 1 MB by default (a 413, which gives the whole
message up at once), and a multi-megabyte POST may not fit a webhook's timeout on a slow link.

Retries: per message, exponential backoff with jitter (1 s doubling to 5 min, or the endpoint's
Retry-After); after ``max_attempts`` attempts or ``max_age`` the row gets ``failed_at``. A 4xx
answer other than 408/425/429 fails the row at once. A failing endpoint is also paused as a
whole for the same backoff, and an endpoint with messages in flight is not claimed for, so a
slow or dead endpoint never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from ioc.alerts.config import NotificationConfig
from ioc.alerts.senders import MqttPublisher, SendError, WebhookSender
from ioc.metrics import Metrics
from ioc.storage import alerts as stored
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
MQTT_MAX_ATTEMPTS = 12
MQTT_MAX_AGE_S = 86400.0
_CANDIDATES = 200
# Alerts per message: about 0.5 MB with typical alert messages, under the 1 MB limits above.
MAX_GROUP_ALERTS = 1000
_PER_TARGET = {"webhook": 4, "mqtt": 100}  # messages in flight per endpoint
_DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)


@dataclass(slots=True)
class Message:
    """One send: an outbox row, with the rows merged into it (storm grouping)."""

    id: int
    delivery_id: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    members: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        """The endpoint: a webhook by name; MQTT is one broker whatever the topic."""
        return (self.channel, self.target if self.channel == "webhook" else "")

    def body(self) -> bytes:
        """Canonical JSON (sorted keys), so that every attempt sends the very same bytes."""
        return msgspec.json.encode({"delivery_id": self.delivery_id, **self.payload},
                                   order="sorted")


def backoff_s(attempt: int, retry_after_s: float | None = None) -> float:
    """Delay before attempt ``attempt + 1``: doubling, capped, with jitter in [d/2, d]."""
    d = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(attempt - 1, 0))
    d = d / 2 + random.random() * d / 2
    if retry_after_s is not None:
        d = max(d, min(retry_after_s, 3600.0))
    return d


def group_payload(change: str, rule_id: str | None, district: str | None,
                  alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """A message (webhook or MQTT): one rule, one district, one kind of change, N devices."""
    return {"change": change, "rule_id": rule_id, "district": district,
            "severity": alerts[0]["severity"], "count": len(alerts),
            "devices": list(dict.fromkeys(a["device_id"] for a in alerts)), "alerts": alerts}


class Notifier:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics, config: NotificationConfig, *,
                 storm_window_s: float, mqtt: MqttPublisher | None = None,
                 poll_s: float = 1.0, supervisor: Supervisor | None = None) -> None:
        self._pool = pool
        self._supervisor = supervisor or Supervisor()
        self._metrics = metrics
        self.config = config
        self.storm_window_s = storm_window_s
        self.mqtt = mqtt
        self.poll_s = poll_s
        timeouts = [h.timeout_s for h in config.webhooks] + ([mqtt.timeout_s] if mqtt else [])
        self.lease_s = max(timeouts, default=5.0) + 10.0
        self._webhooks = WebhookSender()
        self._blocked: dict[tuple[str, str], float] = {}  # endpoint -> monotonic time it may resume
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.start()
        self._task = self._supervisor.spawn("alerts-notifier", self._loop)

    async def stop(self) -> None:
        """Stop claiming; let sends in flight finish (each is bounded by its timeout)."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()))
        await self._webhooks.close()
        if self.mqtt is not None:
            await self.mqtt.stop()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                more = await self._claim_and_send()
            except _DB_ERRORS as exc:
                log.warning("notifier: claiming outbox rows failed (%s: %s); retrying",
                            type(exc).__name__, exc)
                more = False
            except Exception:
                log.exception("notifier: unexpected error; retrying")
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    # ---- claiming --------------------------------------------------------------------------

    def _excluded(self) -> tuple[list[str], bool]:
        now = time.monotonic()
        self._blocked = {k: t for k, t in self._blocked.items() if t > now}
        busy = set(self._blocked) | set(self._inflight)
        return [t for c, t in busy if c == "webhook"], ("mqtt", "") in busy

    async def _claim_and_send(self) -> bool:
        """One claim; returns True when due rows were left for another round at once."""
        hooks, mqtt_busy = self._excluded()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await stored.claim_outbox(conn, _CANDIDATES, hooks, mqtt_busy)
            messages = await self._choose(conn, rows)
            if messages:
                ids = [m.id for ms in messages.values() for m in ms]
                await stored.lease_outbox(conn, ids, self.lease_s)
        for key, batch in messages.items():
            task = asyncio.create_task(self._send_all(key, batch), name=f"notify-{key[1]}")
            self._inflight[key] = task
            task.add_done_callback(lambda _t, k=key: self._done(k))
        return len(rows) == _CANDIDATES

    def _done(self, key: tuple[str, str]) -> None:
        self._inflight.pop(key, None)
        self._wake.set()

    async def _choose(self, conn: asyncpg.Connection,
                      rows: list[asyncpg.Record]) -> dict[tuple[str, str], list[Message]]:
        """Up to a few messages per endpoint; a first-time row leads its storm group."""
        out: dict[tuple[str, str], list[Message]] = defaultdict(list)
        taken: set[int] = set()
        formed: list[Message] = []
        for row in rows:
            if row["id"] in taken:
                continue
            msg = Message(row["id"], row["delivery_id"], row["channel"], row["target"],
                          json.loads(row["payload"]), row["attempts"])
            queue, room = out[msg.key], _PER_TARGET.get(msg.channel, 1)
            if len(queue) >= room:
                continue
            parts = [msg]
            if not row["grouped"]:
                parts = await self._group(conn, msg, row, [m.id for m in formed])
                formed.extend(parts)
                taken.update(i for m in parts for i in (m.id, *m.members))
            queue.extend(parts[:room - len(queue)])  # the rest are stored, due at once
        if formed:
            await stored.store_grouped(conn, [(m.id, m.payload) for m in formed])
        return {k: v for k, v in out.items() if v}

    async def _group(self, conn: asyncpg.Connection, leader: Message, row: asyncpg.Record,
                     formed: list[int]) -> list[Message]:
        """The messages of the leader's storm group, the leader's first."""
        change, rule_id, district = row["change"], row["rule_id"], row["district"]
        if self.storm_window_s <= 0:
            leader.payload = group_payload(change, rule_id, district, [leader.payload["alert"]])
            return [leader]
        parts = await stored.merge_storm(
            conn, leader.id, (leader.channel, leader.target, rule_id, district, change), formed,
            self.storm_window_s, MAX_GROUP_ALERTS)
        messages = []
        for part in parts:
            m = leader if part.id == leader.id else Message(
                part.id, part.delivery_id, leader.channel, leader.target, {}, 0)
            m.payload = group_payload(change, rule_id, district, part.alerts)
            m.members = part.members
            messages.append(m)
        return messages

    # ---- sending ---------------------------------------------------------------------------

    async def _send_all(self, key: tuple[str, str], messages: list[Message]) -> None:
        results = await asyncio.gather(*(self._attempt(m) for m in messages),
                                       return_exceptions=True)
        for m, result in zip(messages, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, SendError):
                log.error("notifier: %s %s: unexpected error", m.channel, m.target,
                          exc_info=result)
        try:
            async with self._pool.acquire() as conn:
                for m, result in zip(messages, results, strict=True):
                    if result is None:
                        await stored.outbox_delivered(conn, m.id)
                        self._blocked.pop(key, None)
                    elif isinstance(result, SendError):
                        await self._record_failure(conn, key, m, result)
        except _DB_ERRORS as exc:
            # The lease runs out and the rows are sent again, under the same delivery ids.
            log.warning("notifier: recording %d send result(s) for %s failed (%s)",
                        len(messages), key[1] or key[0], exc)

    async def _attempt(self, m: Message) -> None:
        if m.channel == "webhook":
            hook = self.config.webhook(m.target)
            if hook is None:
                raise SendError(f"webhook {m.target!r} is no longer configured", permanent=True)
            await self._webhooks.send(hook, m.delivery_id, m.body())
        elif m.channel == "mqtt":
            if self.mqtt is None:
                raise SendError("MQTT alert publishing is off", permanent=True)
            await self.mqtt.publish(m.target, m.body())
        else:
            raise SendError(f"unknown channel {m.channel!r}", permanent=True)

    async def _record_failure(self, conn: asyncpg.Connection, key: tuple[str, str], m: Message,
                              err: SendError) -> None:
        self._metrics.notification_failures.labels(m.channel).inc()
        hook = self.config.webhook(m.target) if m.channel == "webhook" else None
        max_attempts = hook.max_attempts if hook else MQTT_MAX_ATTEMPTS
        max_age = hook.max_age_s if hook else MQTT_MAX_AGE_S
        delay = backoff_s(m.attempts + 1, err.retry_after_s)
        failed = await stored.outbox_failed(conn, m.id, str(err)[:500], permanent=err.permanent,
                                            max_attempts=max_attempts, max_age_s=max_age,
                                            retry_in_s=delay)
        if failed:
            log.error("notifier: giving up on %s %s delivery %s after %d attempt(s): %s",
                      m.channel, m.target, m.delivery_id, m.attempts + 1, err)
            return
        if not err.permanent:
            self._blocked[key] = max(self._blocked.get(key, 0.0), time.monotonic() + delay)
        log.warning("notifier: %s %s delivery %s failed (attempt %d: %s); retry in %.1fs",
                    m.channel, m.target, m.delivery_id, m.attempts + 1, err, delay)
