"""Notifications from the outbox: signed webhooks, retries, storm grouping, silences, MQTT.

Each test has a database of its own (``fresh_pool``), because a notifier claims every due
outbox row it finds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ioc.alerts import Alerts, NotificationConfig, Webhook
from ioc.alerts.notifier import MAX_GROUP_ALERTS
from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.integration.alerts.conftest import (
    NB_DEVICES,
    NGA_BAY,
    UNPLACED,
    VI_THANH,
    VT_DEVICES,
    fire,
    make_alerts,
    record,
    until,
)
from tests.integration.alerts.receiver import Receiver

SECRET = "s3cr3t-ioc-hau-giang"


def hook(receiver: Receiver, name: str, **kw: Any) -> Webhook:
    return Webhook(name, f"{receiver.url}/{name}", SECRET, **kw)


def failures(alerts: Alerts, channel: str) -> float:
    metric = alerts._metrics.notification_failures.labels(channel)
    return metric._value.get()


async def outbox(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM outbox ORDER BY id")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def test_webhook_is_signed_and_carries_the_delivery_id(fresh_pool: asyncpg.Pool,
                                                             receiver: Receiver) -> None:
    config = NotificationConfig((hook(receiver, "all"),
                                 hook(receiver, "nga-bay", match={"district": frozenset({"Ngã Bảy"})})))
    async with make_alerts(fresh_pool, config) as alerts:
        await record(alerts, fresh_pool, [fire("nt-sign", "hg-vt-wl-001", value=1.87)])
        (got,) = await receiver.until("/all", 1)
        await until(lambda: _delivered(fresh_pool, 1))
    assert got.signed_with(SECRET) and not got.signed_with("another secret")
    assert got.headers["content-type"] == "application/json"
    (row,) = await outbox(fresh_pool)
    body = got.json
    assert got.delivery_id == body["delivery_id"] == str(row["delivery_id"])
    assert (body["change"], body["rule_id"], body["district"], body["count"]) == (
        "fired", "nt-sign", VI_THANH, 1)
    assert body["devices"] == ["hg-vt-wl-001"] and body["alerts"][0]["value"] == 1.87
    assert body["alerts"][0]["state"] == "firing"
    assert row["attempts"] == 1 and row["delivered_at"] is not None
    assert receiver.at("/nga-bay") == []  # its matcher does not hold


async def _delivered(pool: asyncpg.Pool, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL") >= n


async def test_retries_with_the_same_delivery_id_until_accepted(fresh_pool: asyncpg.Pool) -> None:
    with Receiver(lambda path, n: (503 if n < 2 else 200, 0.0)) as receiver:
        async with make_alerts(fresh_pool, NotificationConfig((hook(receiver, "flaky"),))) as alerts:
            await record(alerts, fresh_pool, [fire("nt-retry", "hg-vt-wl-002")])
            got = await receiver.until("/flaky", 3)
            await until(lambda: _delivered(fresh_pool, 1))
            assert failures(alerts, "webhook") == 2
    assert len(got) == 3 and len({r.delivery_id for r in got}) == 1
    assert len({r.body for r in got}) == 1 and all(r.signed_with(SECRET) for r in got)
    assert got[1].at - got[0].at >= 0.4  # backed off (first retry: 0.5–1 s)
    (row,) = await outbox(fresh_pool)
    assert row["attempts"] == 3 and row["failed_at"] is None and row["last_error"] is None


async def test_a_dead_endpoint_does_not_hold_up_the_others(fresh_pool: asyncpg.Pool) -> None:
    """One endpoint never answers in time; the other gets every alert at once."""
    with Receiver(lambda path, n: (200, 3.0 if path == "/dead" else 0.0)) as receiver:
        config = NotificationConfig((
            hook(receiver, "dead", timeout_s=0.5, max_attempts=2),
            hook(receiver, "ok"),
        ))
        async with make_alerts(fresh_pool, config) as alerts:
            started = time.monotonic()
            for i, dev in enumerate(VT_DEVICES[:5]):
                await record(alerts, fresh_pool, [fire(f"nt-dead-{i}", dev)])
            ok = await receiver.until("/ok", 5, within=10)
            assert time.monotonic() - started < 3.0, "the healthy endpoint waited"

            async def dead_given_up() -> bool:
                return await fresh_pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE target = 'dead' AND failed_at IS NOT NULL"
                ) == 5

            await until(dead_given_up, within=30)
            assert failures(alerts, "webhook") >= 5
    assert sorted(r.json["rule_id"] for r in ok) == [f"nt-dead-{i}" for i in range(5)]
    rows = await fresh_pool.fetch("SELECT attempts, last_error FROM outbox WHERE target = 'dead'")
    assert all(r["attempts"] <= 2 and "Timeout" in r["last_error"] for r in rows)


async def test_client_errors_give_up_at_once(fresh_pool: asyncpg.Pool) -> None:
    with Receiver(lambda path, n: (410, 0.0)) as receiver:
        async with make_alerts(fresh_pool, NotificationConfig((hook(receiver, "gone"),))) as alerts:
            await record(alerts, fresh_pool, [fire("nt-410", "hg-vt-wl-003")])
            await receiver.until("/gone", 1)

            async def failed() -> bool:
                return await fresh_pool.fetchval(
                    "SELECT failed_at IS NOT NULL FROM outbox") is True

            await until(failed)
        await asyncio.sleep(1.5)
    assert len(receiver.at("/gone")) == 1
    (row,) = await outbox(fresh_pool)
    assert row["attempts"] == 1 and row["last_error"] == "HTTP 410"


async def test_flood_across_a_district_is_one_grouped_message(fresh_pool: asyncpg.Pool,
                                                               receiver: Receiver) -> None:
    """15 Vị Thanh devices fire within the storm window, over several batches."""
    config = NotificationConfig((hook(receiver, "ops"),))
    async with make_alerts(fresh_pool, config, storm_window_s=2.0) as alerts:
        first = time.monotonic()
        for chunk in (VT_DEVICES[:4], VT_DEVICES[4:11], VT_DEVICES[11:]):
            await record(alerts, fresh_pool, [fire("nt-flood", d) for d in chunk])
            await asyncio.sleep(0.3)
        # Same rule, other district: a message of its own. Same district, other rule: too.
        await record(alerts, fresh_pool, [fire("nt-flood", NB_DEVICES[0]),
                                          fire("nt-rain", VT_DEVICES[0], severity="warning")])
        got = await receiver.until("/ops", 3, within=15)
        await asyncio.sleep(2.5)  # nothing else follows
        assert len(receiver.at("/ops")) == 3
    by_key = {(r.json["rule_id"], r.json["district"]): r.json for r in got}
    flood = by_key[("nt-flood", VI_THANH)]
    assert flood["count"] == 15 and sorted(flood["devices"]) == VT_DEVICES
    assert [a["device_id"] for a in flood["alerts"]] == VT_DEVICES
    assert by_key[("nt-flood", "Ngã Bảy")]["devices"] == [NB_DEVICES[0]]
    assert by_key[("nt-rain", VI_THANH)]["devices"] == [VT_DEVICES[0]]
    assert got[0].at - first >= 1.9  # held for the window
    assert await fresh_pool.fetchval(
        "SELECT count(*) FROM alerts WHERE rule_id = 'nt-flood' AND district = $1", VI_THANH) == 15
    rows = await outbox(fresh_pool)
    assert len(rows) == 17 and all(r["delivered_at"] is not None for r in rows)
    leader = next(r for r in rows if str(r["delivery_id"]) == flood["delivery_id"])
    assert sum(r["merged_into"] == leader["id"] for r in rows) == 14


async def test_silences_suppress_notifications_not_records(fresh_pool: asyncpg.Pool,
                                                           receiver: Receiver) -> None:
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    await fresh_pool.executemany(
        "INSERT INTO silences (matchers, starts_at, ends_at, comment) VALUES ($1::jsonb, $2, $3, $4)",
        [(json.dumps({"district": VI_THANH, "rule_id": "nt-quiet"}), now - hour, now + hour,
          "bảo trì trạm"),
         (json.dumps({"rule_id": "nt-quiet", "device_id": NB_DEVICES[1]}), now + hour,
          now + 2 * hour, "later"),
         (json.dumps({"severity": "info"}), now - 2 * hour, now - hour, "over")])
    async with make_alerts(fresh_pool, NotificationConfig((hook(receiver, "ops"),))) as alerts:
        await record(alerts, fresh_pool, [
            fire("nt-quiet", VT_DEVICES[0]), fire("nt-quiet", VT_DEVICES[1]),
            fire("nt-quiet", NB_DEVICES[1]), fire("nt-loud", VT_DEVICES[0], severity="info")])
        got = await receiver.until("/ops", 2)
        quiet = await fresh_pool.fetchval(
            "SELECT id FROM alerts WHERE rule_id = 'nt-quiet' AND device_id = $1", VT_DEVICES[0])
        await alerts.resolve(quiet, "op-lan", None)  # resolving a silenced alert: not notified
        await asyncio.sleep(1.0)
    assert sorted((r.json["rule_id"], r.json["devices"][0]) for r in got) == [
        ("nt-loud", VT_DEVICES[0]), ("nt-quiet", NB_DEVICES[1])]
    assert len(receiver.at("/ops")) == 2
    rows = await fresh_pool.fetch("SELECT rule_id, device_id, silenced FROM alerts ORDER BY id")
    assert [(r["device_id"], r["silenced"]) for r in rows] == [
        (VT_DEVICES[0], True), (VT_DEVICES[1], True), (NB_DEVICES[1], False),
        (VT_DEVICES[0], False)]
    assert await fresh_pool.fetchval("SELECT count(*) FROM alert_feed") == 5  # still on the feed


class Subscriber:
    """A paho subscriber collecting (topic, payload) in a thread; a ``persistent`` one keeps
    its session (and so what is published for it) across a broker restart."""

    def __init__(self, broker: EmbeddedMosquitto, topic: str, *, persistent: bool = False) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="alert-watcher", clean_session=not persistent)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    async def until(self, n: int, within: float = 10.0) -> None:
        """Wait until ``n`` messages arrived (fails the test when they do not in time)."""
        deadline = time.monotonic() + within
        while len(self.messages) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.messages)} of {n} MQTT messages after {within}s")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_mqtt_publishes_per_district(fresh_pool: asyncpg.Pool,
                                           mosquitto: EmbeddedMosquitto) -> None:
    """MQTT messages are grouped like webhooks: held for the window, one per topic, rule and
    change; with a window of 0 every change goes out at once on its own."""
    sub = Subscriber(mosquitto, "ioc/v1/alerts/#")
    try:
        alerts = make_alerts(fresh_pool, mqtt_url=mosquitto.url, mqtt_client_id="alerts-test",
                             storm_window_s=2.0)
        async with alerts:
            await until(lambda: _connected(alerts))
            first = time.monotonic()
            await record(alerts, fresh_pool, [fire("nt-mqtt", VT_DEVICES[0]),
                                              fire("nt-mqtt", UNPLACED)])
            await record(alerts, fresh_pool, [fire("nt-mqtt", VT_DEVICES[1])])
            alert_id = await fresh_pool.fetchval(
                "SELECT id FROM alerts WHERE device_id = $1", VT_DEVICES[0])
            await alerts.ack(alert_id, "op-lan", None)
            await sub.until(3)
            held = time.monotonic() - first
            await asyncio.sleep(1.0)  # nothing else follows
        assert held >= 1.9  # held for the window
        grouped = sorted((topic, m["change"], m["count"], m["devices"])
                         for topic, m in sub.messages)
        assert grouped == [
            ("ioc/v1/alerts/unknown", "fired", 1, [UNPLACED]),
            ("ioc/v1/alerts/vi-thanh", "acknowledged", 1, [VT_DEVICES[0]]),
            ("ioc/v1/alerts/vi-thanh", "fired", 2, VT_DEVICES[:2])]
        for _, m in sub.messages:
            assert m["rule_id"] == "nt-mqtt" and m["severity"] == "critical"
            assert [a["device_id"] for a in m["alerts"]] == m["devices"]
        leaders = {str(r["delivery_id"]) for r in await outbox(fresh_pool)
                   if r["merged_into"] is None}
        assert {m["delivery_id"] for _, m in sub.messages} == leaders

        sub.messages.clear()
        alerts = make_alerts(fresh_pool, mqtt_url=mosquitto.url, mqtt_client_id="alerts-test")
        async with alerts:
            await until(lambda: _connected(alerts))
            started = time.monotonic()
            await record(alerts, fresh_pool, [fire("nt-mqtt-now", d) for d in VT_DEVICES[2:4]])
            await sub.until(2)
            at_once = time.monotonic() - started
            await asyncio.sleep(0.5)
        assert at_once < 1.5
        assert sorted((m["count"], m["devices"][0]) for _, m in sub.messages) == [
            (1, VT_DEVICES[2]), (1, VT_DEVICES[3])]
    finally:
        sub.close()
    rows = await outbox(fresh_pool)
    assert len(rows) == 6 and all(r["delivered_at"] is not None for r in rows)


async def test_a_grouped_mqtt_message_is_retried_whole(fresh_pool: asyncpg.Pool) -> None:
    """The group is formed and stored before the first attempt: attempts fail while the broker is
    down, and what arrives afterwards is that one message, under its delivery id."""
    with EmbeddedMosquitto() as broker:
        sub = Subscriber(broker, "ioc/v1/alerts/#", persistent=True)
        try:
            alerts = make_alerts(fresh_pool, mqtt_url=broker.url,
                                 mqtt_client_id="alerts-outage", storm_window_s=1.0)
            async with alerts:
                await until(lambda: _connected(alerts))
                await record(alerts, fresh_pool, [fire("nt-outage", d) for d in VT_DEVICES[:3]])
                broker.stop_server()

                async def failed_once() -> bool:
                    return await fresh_pool.fetchval(
                        "SELECT count(*) FROM outbox WHERE attempts > 0") > 0

                await until(failed_once)
                broker.start()
                await sub.until(1, within=30)
                await asyncio.sleep(0.5)
        finally:
            sub.close()
    ((topic, m),) = sub.messages
    rows = await outbox(fresh_pool)
    (leader,) = [r for r in rows if r["merged_into"] is None]
    assert topic == "ioc/v1/alerts/vi-thanh" and m["devices"] == VT_DEVICES[:3]
    assert m["delivery_id"] == str(leader["delivery_id"])
    assert leader["attempts"] >= 2 and all(r["delivered_at"] is not None for r in rows)
    assert failures(alerts, "mqtt") == leader["attempts"] - 1


async def _connected(alerts: Alerts) -> bool:
    return alerts.notifier.mqtt is not None and alerts.notifier.mqtt.connected



LONG_MY = "Long Mỹ"
STORM_DISTRICTS = {VI_THANH: 2500, NGA_BAY: 1500, LONG_MY: 1000}  # devices each
STORM_RULES = ("nt-storm-flood", "nt-storm-rain")


async def test_ten_thousand_alerts_make_one_message_per_group(
        fresh_pool: asyncpg.Pool, receiver: Receiver, mosquitto: EmbeddedMosquitto) -> None:
    """10,000 alerts (two rules on 5,000 devices in three districts) in four mixed batches within
    the window: each channel gets one message per (rule, district) group and MAX_GROUP_ALERTS
    alerts, listing every alert of the group once; every row is delivered, none is sent twice."""
    devices: dict[str, str] = {}
    for district, n in STORM_DISTRICTS.items():
        for _ in range(n):
            devices[f"hg-storm-{len(devices):05d}"] = district
    await fresh_pool.executemany(
        "INSERT INTO devices (id, kind, district, registered_by) VALUES ($1, 'water_level', $2,"
        " 'file')", list(devices.items()))
    transitions = [fire(rule, d) for d in devices for rule in STORM_RULES]
    random.Random(22).shuffle(transitions)
    window = 5.0
    messages = 2 * sum(-(-n // MAX_GROUP_ALERTS) for n in STORM_DISTRICTS.values())  # per channel
    sub = Subscriber(mosquitto, "ioc/v1/alerts/#")
    try:
        alerts = make_alerts(fresh_pool, NotificationConfig((hook(receiver, "ops"),)),
                             storm_window_s=window, mqtt_url=mosquitto.url,
                             mqtt_client_id="alerts-storm")
        async with alerts:
            await until(lambda: _connected(alerts))
            started = time.monotonic()
            for i in range(0, len(transitions), 2500):
                await record(alerts, fresh_pool, transitions[i:i + 2500])
            # Else the later batches would rightly make groups of their own.
            assert time.monotonic() - started < window, "recording outlasted the window"

            async def all_delivered() -> bool:
                return await fresh_pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 0

            await until(all_delivered, within=window + 15)
            await receiver.until("/ops", messages)
            await sub.until(messages)
            await asyncio.sleep(1.0)  # nothing else follows
    finally:
        sub.close()
    webhook = receiver.at("/ops")
    assert all(r.signed_with(SECRET) for r in webhook)
    assert {t for t, _ in sub.messages} == {
        "ioc/v1/alerts/vi-thanh", "ioc/v1/alerts/nga-bay", "ioc/v1/alerts/long-my"}
    rows = await fresh_pool.fetch(
        "SELECT channel, delivery_id::text AS delivery_id, merged_into, attempts, delivered_at,"
        " failed_at, alert_id, rule_id, district FROM outbox")
    assert len(rows) == 20_000
    assert all(r["delivered_at"] is not None and r["failed_at"] is None for r in rows)
    for channel, got in (("webhook", [r.json for r in webhook]),
                         ("mqtt", [m for _, m in sub.messages])):
        mine = [r for r in rows if r["channel"] == channel]
        leaders = [r for r in mine if r["merged_into"] is None]
        assert len(got) == len(leaders) == messages, channel
        assert all(r["attempts"] == 1 for r in leaders)
        assert sorted(m["delivery_id"] for m in got) == sorted(r["delivery_id"] for r in leaders)
        expected: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in mine:
            expected[(r["rule_id"], r["district"])].append(r["alert_id"])
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for m in got:
            assert m["count"] == len(m["alerts"]) <= MAX_GROUP_ALERTS
            assert m["devices"] == [a["device_id"] for a in m["alerts"]]
            assert {(a["rule_id"], a["district"]) for a in m["alerts"]} == {
                (m["rule_id"], m["district"])}
            groups[(m["rule_id"], m["district"])].append(m)
        assert groups.keys() == expected.keys() and len(groups) == 6
        for key, parts in groups.items():
            assert len(parts) == -(-len(expected[key]) // MAX_GROUP_ALERTS), (channel, key)
            listed = sorted(a["id"] for m in parts for a in m["alerts"])
            assert listed == sorted(expected[key]), (channel, key)
