"""The flood over MQTT QoS 1, with the broker restarted while messages are in flight: the
redelivered messages (older than what the service has stored meanwhile) change nothing, and
the alerts are those of evaluating every reading in event time (issue #21)."""

from __future__ import annotations

import os
import re
import signal
import time

from ioc.embedded.mosquitto import EmbeddedMosquitto
from tests.conftest import new_database
from tests.integration.eventtime.conftest import ServiceFactory
from tests.integration.eventtime.scenario import (
    deliveries,
    difference,
    expected_alerts,
    flood,
    flood_start,
    sql,
    wait_for_alerts,
    wait_until,
)
from tests.integration.ingest.test_delivery import in_thread
from tests.support.publish import mqtt_publish
from tests.support.service import http

SEED = 2107


def events_stored(dsn: str) -> int:
    return int(sql(dsn, "SELECT count(*) AS n FROM events")[0]["n"])


def mqtt_received(url: str) -> float:
    _, text = http("GET", f"{url}/metrics")
    found = re.search(r'^ioc_events_received_total\{source="mqtt"\} (\S+)$', str(text), re.M)
    return float(found.group(1)) if found else 0.0


def test_broker_restart_mid_stream_gives_the_event_time_alerts(
        pg_server, mqtt_broker: EmbeddedMosquitto, services: ServiceFactory) -> None:
    dsn = new_database(pg_server, "eventtime_mqtt")
    svc = services("mqtt", dsn, IOC_MQTT_URL=mqtt_broker.url,
                   IOC_MQTT_CLIENT_ID="ioc-eventtime").start()
    start = flood_start()
    truth = flood(start, seed=SEED)
    messages = [m for post in deliveries(truth, start, seed=SEED, pause_step=None)
                for m in post.mqtt()]
    pub, errors = in_thread(mqtt_publish, mqtt_broker.url, messages,
                            client_id="eventtime-gateways", rate=400, timeout=120)
    assert wait_until(lambda: events_stored(dsn) > len(truth) // 5, 30), "nothing arrives"
    # The service freezes with the broker's messages in flight to it (unacknowledged), the
    # broker restarts meanwhile and the publisher goes on: after the service resumes and
    # reconnects, the broker delivers again what it never saw acknowledged, after newer
    # messages the service has stored.
    assert svc.pid is not None
    os.kill(svc.pid, signal.SIGSTOP)
    try:
        time.sleep(1.0)
        mqtt_broker.restart()
        time.sleep(0.5)
    finally:
        os.kill(svc.pid, signal.SIGCONT)
    stored_at_restart = events_stored(dsn)
    pub.join(150)
    assert not pub.is_alive() and not errors, errors
    assert 0 < stored_at_restart < len(truth), "the restart should land mid-stream"

    assert wait_until(lambda: events_stored(dsn) == len(truth), 60), (
        f"{events_stored(dsn)} of {len(truth)} readings stored")
    want = expected_alerts(truth, now_us=time.time_ns() // 1000)
    got = wait_for_alerts(dsn, want, timeout=30)
    assert got == want, difference(got, want)
    received = mqtt_received(svc.url)
    assert received > len(messages), (
        f"{received:.0f} messages received for {len(messages)} published: nothing redelivered")
    assert "from an earlier connection left unacked; the broker redelivers them" in svc.log()
    assert svc.running()
    print(f"\n{len(truth)} readings in {len(messages)} MQTT messages, {received:.0f} received; "
          f"{stored_at_restart} stored at the restart; {len(want)} alerts")
