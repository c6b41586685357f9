"""The alert side of one service instance: lifecycle writes, live feed, notifier, housekeeping.

The pipeline calls :meth:`Alerts.record` inside each batch transaction; everything the alerts
need to publish is written in that transaction (alert rows, audit, live-feed rows, outbox), and
the returned callback only wakes the in-process feed and notifier after commit. Other instances
see the same rows by polling, so any instance's SSE clients and notifier serve every alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ioc.alerts.config import NotificationConfig
from ioc.alerts.feed import FeedFilter, LiveFeed
from ioc.alerts.lifecycle import Recorder, Written
from ioc.alerts.notifier import Notifier
from ioc.alerts.senders import MqttPublisher
from ioc.alerts.shape import SEVERITIES
from ioc.metrics import Metrics
from ioc.rules import Correction, Transition
from ioc.storage.alerts import alert_states, open_alert_counts, prune_feed_and_outbox
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

GAUGE_INTERVAL_S = 30.0
PRUNE_INTERVAL_S = 3600.0
_DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)


@dataclass(slots=True)
class AckOutcome:
    """What acknowledging a group did: the ids acknowledged, the state of those that were not
    firing, and the ids of no alert (or of one the key may not see)."""

    acknowledged: list[int]
    not_firing: dict[int, str]
    not_found: list[int]


class Alerts:
    """Owns the live-feed pump, the notifier and the housekeeping task (``start``/``stop``).

    ``pool`` serves the feed, the notifier, ack/resolve and housekeeping (the API pool is fine).
    ``mqtt_url`` turns on publishing to ``ioc/v1/alerts/{district}``. ``retention_s`` is how
    long feed rows (the Last-Event-ID replay horizon) and finished outbox rows are kept.
    """

    def __init__(
        self, pool: asyncpg.Pool, metrics: Metrics, *, notifications: NotificationConfig,
        storm_window_s: float, mqtt_url: str | None = None, mqtt_client_id: str = "ioc-alerts",
        feed_poll_s: float = 0.5, notify_poll_s: float = 1.0, heartbeat_s: float = 15.0,
        client_queue_max: int = 1000, retention_s: float = 7 * 86400.0,
        supervisor: Supervisor | None = None,
    ) -> None:
        self._supervisor = supervisor = supervisor or Supervisor()
        self._pool = pool
        self._metrics = metrics
        self.retention_s = retention_s
        self._recorder = Recorder(notifications, storm_window_s=storm_window_s,
                                  mqtt=bool(mqtt_url))
        self.feed = LiveFeed(pool, metrics, poll_s=feed_poll_s, heartbeat_s=heartbeat_s,
                             queue_max=client_queue_max, supervisor=supervisor)
        mqtt = MqttPublisher(mqtt_url, mqtt_client_id) if mqtt_url else None
        self.notifier = Notifier(pool, metrics, notifications, storm_window_s=storm_window_s,
                                 mqtt=mqtt, poll_s=notify_poll_s, supervisor=supervisor)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.feed.start()
        await self.notifier.start()
        self._task = self._supervisor.spawn("alerts-housekeeping", self._housekeeping)
        log.info("alerts started: %d webhook(s), MQTT publishing %s, storm window %.0fs",
                 len(self._recorder.notifications.webhooks),
                 "on" if self._recorder.mqtt else "off", self._recorder.storm_window_s)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.notifier.stop()
        await self.feed.stop()

    async def __aenter__(self) -> Alerts:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- writes ----------------------------------------------------------------------------

    async def record(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                     received_at: float | None,
                     corrections: Sequence[Correction] = ()) -> Callable[[], None] | None:
        """Apply rule transitions, then corrections from late events, inside the caller's
        (batch) transaction.

        ``received_at`` is when the batch's first message was received, in epoch seconds
        (``time.time()``); it measures ``ioc_alert_latency_seconds``. Returns the callback to
        run after commit (it only counts and wakes), or None when nothing changed.
        """
        if not transitions and not corrections:
            return None
        return self._after_commit(
            await self._recorder.apply(conn, transitions, received_at, corrections))

    async def ack(self, alert_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
        """firing -> acknowledged; raises AlertNotFound, or AlertStateConflict otherwise."""
        return await self._set_state(alert_id, "acknowledged", actor, note)

    async def resolve(self, alert_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
        """firing|acknowledged -> resolved; raises AlertNotFound, or AlertStateConflict."""
        return await self._set_state(alert_id, "resolved", actor, note)

    async def ack_many(self, alert_ids: Sequence[int], actor: str, note: str | None,
                       districts: Sequence[str] | None) -> AckOutcome:
        """Acknowledge the firing ones of ``alert_ids`` in one transaction; a key limited to
        ``districts`` sees the others as missing."""
        ids = sorted(set(alert_ids))
        scope = None if districts is None else list(districts)
        async with self._pool.acquire() as conn, conn.transaction():
            written = await self._recorder.acknowledge(conn, ids, actor, note, scope)
            done = {c.alert["id"] for c in written.changes}
            states = await alert_states(conn, [i for i in ids if i not in done])
        after = self._after_commit(written)
        if after is not None:
            after()
        visible = {r["id"]: r["state"] for r in states
                   if scope is None or r["district"] in scope}
        return AckOutcome(sorted(done), visible, [i for i in ids if i not in done and i not in visible])

    async def _set_state(self, alert_id: int, state: str, actor: str,
                         note: str | None) -> dict[str, Any]:
        async with self._pool.acquire() as conn, conn.transaction():
            written = await self._recorder.set_state(conn, alert_id, state, actor, note)
        done = self._after_commit(written)
        if done is not None:
            done()
        return written.changes[0].alert

    def _after_commit(self, written: Written) -> Callable[[], None] | None:
        if not written.changes:
            return None

        def committed() -> None:
            for severity, n in written.fired.items():
                self._metrics.alerts_fired.labels(severity).inc(n)
            self.feed.wake()
            if written.outbox_rows:
                self.notifier.wake()
            self._changed.set()

        return committed

    # ---- live feed -------------------------------------------------------------------------

    def stream(self, filter: FeedFilter, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The Server-Sent-Events body for one client (see feed.py)."""
        return self.feed.stream(filter, last_event_id)

    def close_streams(self) -> None:
        """End every SSE stream now (call when the HTTP server begins shutting down)."""
        self.feed.close_streams()

    # ---- housekeeping ----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Keep ``ioc_alerts_open`` exact (after changes, at most once a second, and every 30 s,
        which also picks up other instances' changes) and prune old feed and outbox rows."""
        next_prune = 0.0
        while True:
            try:
                await self._update_gauges()
                if time.monotonic() >= next_prune:
                    await self._prune()
                    next_prune = time.monotonic() + PRUNE_INTERVAL_S
            except _DB_ERRORS as exc:
                log.warning("alert housekeeping failed (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), GAUGE_INTERVAL_S)
            self._changed.clear()

    async def _update_gauges(self) -> None:
        counts = await open_alert_counts(self._pool)
        for severity in SEVERITIES:
            self._metrics.alerts_open.labels(severity).set(counts.get(severity, 0))

    async def _prune(self) -> None:
        feed, outbox = await prune_feed_and_outbox(self._pool, self.retention_s)
        log.debug("alert housekeeping: %s feed rows, %s outbox rows", feed, outbox)
