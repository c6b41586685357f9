"""The running service: owns the pools, pipeline, sources and background jobs, in start order.

Everything is opened in :meth:`Service.start` and closed in reverse in :meth:`Service.stop`;
nothing connects at import time. Stopping drains: sources stop taking messages, the pipeline
writes and confirms what it holds, and only then do the pools close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Protocol

import asyncpg
import numpy as np

from ioc import fast
from ioc.alerts import Alerts, load_notifications
from ioc.devices import Device, DevicesFileError, load_devices_file
from ioc.ingest.decode import DecodeLimits
from ioc.ingest.faults import injected_faults
from ioc.ingest.latest import LatestValues
from ioc.ingest.pipeline import Pipeline
from ioc.ingest.quarantine import Quarantine
from ioc.ingest.rule_processor import RuleProcessor
from ioc.metrics import Metrics
from ioc.rules import (
    DeviceMeta,
    Rule,
    RuleBatch,
    RuleEngine,
    RuleFileError,
    load_rules_file,
    rule_from_dict,
    rule_to_dict,
)
from ioc.settings import Settings
from ioc.storage.devices import device_metas, registered_ids, sync_registry
from ioc.storage.errors import DatabaseUnavailable, error_type
from ioc.storage.key_cache import KeyCache
from ioc.storage.migrations import migrate
from ioc.storage.partitions import PartitionManager
from ioc.storage.pool import connect, create_pool, ping
from ioc.storage.rules import (
    delete_states,
    latest_ts,
    list_rules,
    load_checkpoints,
    load_states,
    recent_events,
    sync_file_rules,
)
from ioc.storage.writer import BatchWriter
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

STARTUP_DB_WAIT_S = 60.0
MAINTENANCE_INTERVAL_S = 3600.0
# Allocations between young-generation collections (CPython's default is 700). Every Kafka
# record and decoded event is a tracked object, mostly dead within one batch: at the default
# the collector took 0.4 µs per event (measured with gc.callbacks while draining 600k
# events), at 10,000 under 0.1, with the same RSS.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Collect less often, and never again scan what exists once the service is up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class Source(Protocol):
    name: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.supervisor = Supervisor(
            on_failure=lambda task: self.metrics.task_failures.labels(task).inc())
        self.flavour = "postgres"
        self.sources: list[Source] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._writer_pool: asyncpg.Pool | None = None
        self._api_pool: asyncpg.Pool | None = None
        self._keys: KeyCache | None = None
        self._pipeline: Pipeline | None = None
        # Files are read and validated before anything connects, so a typo fails fast.
        self.file_rules, self.devices = read_files(settings)
        self.notifications = load_notifications(Path(settings.notifications_file))
        self.rules: RuleProcessor | None = None
        self.alerts: Alerts | None = None
        self.latest: LatestValues | None = None

    @property
    def api_pool(self) -> asyncpg.Pool:
        assert self._api_pool is not None, "service not started"
        return self._api_pool

    @property
    def keys(self) -> KeyCache:
        """The API keys seen lately (the API authenticates through it)."""
        assert self._keys is not None, "service not started"
        return self._keys

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "service not started"
        return self._pipeline

    # ---- start / stop --------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        # Decoding and COPY encoding read the switch per batch (ioc/fast).
        fast.set_enabled(s.accelerate)
        if not s.accelerate:
            log.warning("IOC_ACCELERATE=false: decoding and COPY encoding run their plain "
                        "references, not the compiled accelerators (more CPU per event)")
        if s.auth == "off":
            log.warning("IOC_AUTH=off: every HTTP caller is treated as admin. Local demo only!")
        await self._migrate()
        self._writer_pool = await create_pool(s.database_url, size=2, writer=True)
        self._api_pool = await create_pool(s.database_url, size=s.db_pool_size)
        self._keys = KeyCache(self._api_pool)
        known = await self._sync_devices()
        partitions = PartitionManager(self.flavour)
        writer = BatchWriter(
            self._writer_pool, partitions,
            on_retry=lambda exc: self.metrics.db_write_retries.labels(error_type(exc)).inc(),
        )
        await writer.start()
        self.alerts = Alerts(
            self.api_pool, self.metrics, notifications=self.notifications,
            storm_window_s=s.storm_window,
            mqtt_url=s.mqtt_url if s.alerts_mqtt_publish else None,
            mqtt_client_id=f"{s.mqtt_client_id}-alerts", supervisor=self.supervisor,
        )
        await self.alerts.start()
        self.rules = RuleProcessor(await self._load_engine(), self.metrics, sink=self.alerts)
        self.latest = LatestValues(self.api_pool, supervisor=self.supervisor)
        await self.latest.start()
        self._pipeline = Pipeline(
            writer, self.metrics,
            limits=DecodeLimits(
                max_payload_bytes=s.max_payload_bytes,
                max_event_age_s=s.max_event_age,
                max_future_skew_s=s.max_future_skew,
                known_devices=known if s.require_known_devices else None,
            ),
            batch_max=s.batch_max,
            batch_wait_s=s.batch_wait_ms / 1000,
            queue_max=s.queue_max,
            processors=[self.rules, self.latest, *injected_faults()],
            supervisor=self.supervisor,
            quarantine=Quarantine(self.api_pool),
        )
        await self._pipeline.start()
        self.sources = self._make_sources()
        for source in self.sources:
            await source.start()
        self._tasks.append(self.supervisor.spawn("maintenance",
                                                 lambda: self._maintenance(partitions)))
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread (tests)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        log.info("service started: flavour %s, sources %s, batch max %d / %d ms",
                 self.flavour, [src.name for src in self.sources] or "http only",
                 s.batch_max, s.batch_wait_ms)

    async def stop(self) -> None:
        for source in reversed(self.sources):
            try:
                await source.stop()
            except Exception:
                log.exception("stopping the %s source failed", source.name)
        if self._pipeline:
            await self._pipeline.stop()
        if self.latest:
            await self.latest.stop()
        if self.alerts:
            await self.alerts.stop()
        await cancel_and_wait(*self._tasks)
        for pool in (self._api_pool, self._writer_pool):
            if pool:
                await pool.close()
        log.info("service stopped")

    async def _migrate(self) -> None:
        """Migrate at start, waiting a while for a database that is still coming up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_DB_WAIT_S
        while True:
            try:
                conn = await connect(self.settings.database_url)
                break
            except DatabaseUnavailable as exc:
                if loop.time() > deadline:
                    raise
                log.warning("%s; retrying", exc)
                await asyncio.sleep(2)
        try:
            report = await migrate(conn, timescaledb=self.settings.timescaledb,
                                   retention_s=self.settings.retention)
            self.flavour = report.flavour
        finally:
            await conn.close()

    async def _sync_devices(self) -> frozenset[str]:
        """Load config/devices.yaml into the devices table; returns the registered ids."""
        async with self.api_pool.acquire() as conn:
            if self.devices is not None:
                await sync_registry(conn, self.devices)
                log.info("device registry: %d devices from %s", len(self.devices),
                         self.settings.devices_file)
            else:
                log.warning("device registry %s not found: devices are auto-registered",
                            self.settings.devices_file)
            return await registered_ids(conn)

    async def _load_engine(self) -> RuleEngine:
        """The engine with the file's and the API's rules, restored from rule_state."""
        async with self.api_pool.acquire() as conn:
            async with conn.transaction():
                if self.file_rules is not None:
                    await sync_file_rules(conn, [rule_to_dict(r) for r in self.file_rules])
            rules = await self._stored_rules(conn)
            metas = await device_metas(conn)
            engine = RuleEngine(rules, metas, max_lateness_s=self.settings.max_lateness)
            ignored = engine.load_state(await load_states(conn))
            await delete_states(conn, ignored)
            window = max(86400.0, 2 * self.settings.max_lateness,
                         *(2 * r.absent.for_s for r in rules if r.absent is not None))
            engine.load_clocks(_clock_rows(await latest_ts(conn, window)))
            stored = await load_checkpoints(conn)
            engine.load_checkpoints(stored.entries, stored.states, stored.horizons)
            since = time.time_ns() // 1000 - round(window * 1e6)
            devices, kinds, ts, values = await recent_events(conn, stored.horizons, since)
            engine.load_recent(RuleBatch(devices, kinds, np.array(ts, dtype=np.int64),
                                         np.array(values, dtype=np.float64)))
        log.info("rule engine: %d rules, %d devices, state restored, %d recent events kept",
                 len(rules), len(metas), engine.recent_events)
        return engine

    @staticmethod
    async def _stored_rules(conn: asyncpg.Connection) -> list[Rule]:
        rules = []
        for stored in await list_rules(conn):
            try:
                rules.append(rule_from_dict(stored.definition))
            except RuleFileError as exc:
                log.error("stored rule %s v%d is invalid and skipped: %s", stored.id,
                          stored.version, exc)
        return rules

    async def reload_rules(self) -> None:
        """Re-read the rules table (after an API change or a file reload) into the engine."""
        async with self.api_pool.acquire() as conn:
            rules = await self._stored_rules(conn)
        if self.rules is not None:
            self.rules.replace_rules(rules)

    def _on_sighup(self) -> None:
        self._tasks.append(asyncio.create_task(self.reload_files(), name="reload"))

    async def reload_files(self) -> None:
        """SIGHUP: re-read the rule and device files; an invalid file keeps the last good one."""
        try:
            file_rules, devices = await asyncio.to_thread(read_files, self.settings)
        except (RuleFileError, DevicesFileError) as exc:
            log.error("reload refused, keeping the last good files:\n%s", exc)
            return
        async with self.api_pool.acquire() as conn, conn.transaction():
            if file_rules is not None:
                changed = await sync_file_rules(conn, [rule_to_dict(r) for r in file_rules])
                log.info("rules file reloaded: %d rule(s) changed", len(changed))
            if devices is not None:
                await sync_registry(conn, devices)
        self.file_rules, self.devices = file_rules, devices
        if self.rules is not None and devices is not None:
            self.rules.upsert_devices(
                [DeviceMeta(d.id, d.name, d.district, d.tags) for d in devices])
        await self.reload_rules()

    def _make_sources(self) -> list[Source]:
        s = self.settings
        sources: list[Source] = []
        if s.mqtt_url:
            from ioc.ingest.mqtt import MqttSource

            sources.append(MqttSource(
                self.pipeline, self.metrics, url=s.mqtt_url, topic=s.mqtt_topic,
                client_id=s.mqtt_client_id, receive_maximum=s.mqtt_receive_maximum,
                supervisor=self.supervisor))
        if s.kafka_bootstrap:
            from ioc.ingest.kafka import KafkaSource

            sources.append(KafkaSource(
                self.pipeline, self.metrics, bootstrap=s.kafka_bootstrap, topic=s.kafka_topic,
                group=s.kafka_group, session_timeout_ms=s.kafka_session_timeout_ms,
                max_records=s.batch_max, supervisor=self.supervisor))
        return sources

    # ---- background ------------------------------------------------------------------------

    async def _maintenance(self, partitions: PartitionManager) -> None:
        """Hourly: partitions a week ahead, and retention on plain PostgreSQL."""
        while True:
            try:
                async with self.api_pool.acquire() as conn:
                    await partitions.ensure_ahead(conn)
                    await partitions.drop_older_than(conn, self.settings.retention)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("partition maintenance failed (%s); next try in an hour", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)

    def close_streams(self) -> None:
        """End the live-feed streams (the HTTP server is shutting down)."""
        if self.alerts is not None:
            self.alerts.close_streams()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2):
                await ping(self.api_pool)
            checks["database"] = "ok"
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        if self._pipeline and self._pipeline.degraded:
            checks["writer"] = f"failing: {self._pipeline.degraded[:200]}"
        for task, why in self.supervisor.failing.items():
            checks[task] = f"failing: {why}"
        for source in self.sources:
            checks[source.name] = "ok" if source.ready() else "not connected"
        return checks


def read_files(settings: Settings) -> tuple[list[Rule] | None, list[Device] | None]:
    """The rule and device files, validated; None for a file that does not exist."""
    rules_path, devices_path = Path(settings.rules_file), Path(settings.devices_file)
    rules = load_rules_file(rules_path) if rules_path.exists() else None
    devices = load_devices_file(devices_path) if devices_path.exists() else None
    return rules, devices


def _clock_rows(latest: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """Engine clock rows (see ioc/rules/state.py) from the newest stored ts per device and kind."""
    per_device: dict[str, dict[str, int]] = defaultdict(dict)
    for device_id, kind, ts_us in latest:
        per_device[device_id][kind] = ts_us
    return [(device_id, json.dumps({"latest": max(kinds.values()), "kinds": kinds}))
            for device_id, kinds in per_device.items()]
