"""Prometheus metrics of the pipeline: ``ioc_`` prefix, base units, bounded labels only.

One :class:`Metrics` object per service instance, on a registry of its own, so that tests can
run several services in one process. Labels are sources, reason codes, severities, channels
and error types: never device ids.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the _created series double the scrape size and nobody graphs them

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events_received = Counter(
            "ioc_events_received", "Transport messages received, by source.", ["source"], registry=r)
        self.events_stored = Counter(
            "ioc_events_stored", "Events stored for the first time.", registry=r)
        self.events_duplicate = Counter(
            "ioc_events_duplicate", "Events already stored (replays, redeliveries).", registry=r)
        self.events_rejected = Counter(
            "ioc_events_rejected", "Events or messages sent to dead letters, by source and reason.",
            ["source", "reason"], registry=r)
        self.batch_rows = Histogram(
            "ioc_ingest_batch_rows", "Events per written micro-batch.",
            buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000), registry=r)
        self.db_write_seconds = Histogram(
            "ioc_db_write_seconds", "Time to write one micro-batch transaction (with retries).",
            buckets=_LATENCY, registry=r)
        self.db_write_retries = Counter(
            "ioc_db_write_retries", "Batch write attempts that failed transiently and were retried.",
            ["error_type"], registry=r)
        self.queue_depth = Gauge(
            "ioc_ingest_queue_depth", "Messages accepted from sources and not yet committed.",
            registry=r)
        self.event_lag = Histogram(
            "ioc_event_lag_seconds", "Event timestamp to commit, per batch (newest event).",
            buckets=_LATENCY, registry=r)
        self.rule_eval_seconds = Histogram(
            "ioc_rule_eval_seconds", "Rule engine time per micro-batch.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1), registry=r)
        self.rule_corrections = Counter(
            "ioc_rule_corrections", "Alert corrections made by late events, by action "
            "(raise, amend, withdraw).", ["action"], registry=r)
        self.rule_recent_events = Gauge(
            "ioc_rule_recent_events", "Consumed events the rule engine keeps to replay late ones.",
            registry=r)
        self.source_connected = Gauge(
            "ioc_source_connected", "1 when the source is connected and subscribed.", ["source"],
            registry=r)
        self.alerts_fired = Counter(
            "ioc_alerts_fired", "Alerts opened, by severity.", ["severity"], registry=r)
        self.alerts_open = Gauge(
            "ioc_alerts_open", "Alerts firing or acknowledged, by severity.", ["severity"], registry=r)
        self.alert_latency = Histogram(
            "ioc_alert_latency_seconds", "Event received to alert published on the live feed.",
            buckets=_LATENCY, registry=r)
        self.task_failures = Counter(
            "ioc_task_failures", "Unexpected exceptions in a background task (or a batch that "
            "crashed the writer), by task.", ["task"], registry=r)
        self.notification_failures = Counter(
            "ioc_notification_failures", "Notification attempts that failed, by channel.",
            ["channel"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
