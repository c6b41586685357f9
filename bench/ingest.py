"""Sustained ingestion: Kafka → stored and MQTT → stored, each beside its ceiling, same run.

    .venv/bin/python bench/ingest.py [--kafka-events 1000000] [--kafka-rounds 5]
                                     [--mqtt-events 200000] [--mqtt-rounds 3]

Kafka: a backlog of simulated Hậu Giang events is produced to tansu once; then each round
has `ioc run` (a real child process, a new consumer group and a new database each round)
drain the whole backlog into PostgreSQL; events/s = events / time from the first stored batch
to the last. Ceilings, same server, same rows, measured before the first round and after each
one: bare COPY into a table without constraints and the naive idempotent write (COPY to
staging + INSERT ... ON CONFLICT). The shared machine's speed drifts from minute to minute, so
a round compares its drain only with the mean of the ceilings just before and after it, and
the result is the median round with every round listed. RSS of the service is sampled while
it drains (it should stay flat: the pipeline is bounded).

MQTT: each round, a new mosquitto (config/mosquitto.conf tuning) queues the backlog for a
persistent session, which (a) a bare paho subscriber drains — paho's usual threaded client
(`loop_start`), acking each message as it arrives: the ceiling — then again for (b) `ioc run`,
which drives paho from its asyncio loop and acks after commit; the result is the median round.

Writes bench/results/ingest.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import bare_copy_rate, checkpoint, naive_idempotent_rate, write_result
from ioc.devices import load_devices_file
from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.ingest.decode import DecodeLimits, decode
from ioc.model import EventBatch, RawMessage
from ioc.simulator.fleet import synthesize
from ioc.simulator.stream import generate_payloads
from ioc.storage.migrations import migrate_url
from ioc.storage.pool import connect, use_microsecond_timestamps
from tests.support.publish import kafka_create_topic, kafka_produce
from tests.support.service import ServiceProcess, http

REPO = Path(__file__).resolve().parents[1]


def payloads(n: int, seed: int, *, live_from: dt.datetime | None = None,
             rate: float = 0) -> list[tuple[str, bytes]]:
    """The simulated fleet's first ``n`` events: from six hours ago, each device every 10 s;
    or, with ``live_from``, stamped as if ``rate`` events/s were sent from then on."""
    devices = load_devices_file(REPO / "config" / "devices.yaml")
    devices = [d for d in devices if d.kind != "camera"]
    devices += synthesize(1900, taken=[d.id for d in devices])
    if live_from is not None:
        return generate_payloads(devices, n, live_from, step_s=len(devices) / rate, seed=seed)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
    return generate_payloads(devices, n, start, step_s=10, seed=seed)


def stored_total(url: str) -> float:
    status, body = http("GET", f"{url}/metrics", timeout=5)
    m = re.search(r"^ioc_events_stored_total (\S+)$", body, re.M) if status == 200 else None
    return float(m.group(1)) if m else 0.0


def metric_sum(url: str, name: str) -> float:
    status, body = http("GET", f"{url}/metrics", timeout=5)
    m = re.search(rf"^{name}_sum (\S+)$", body, re.M) if status == 200 else None
    return float(m.group(1)) if m else 0.0


def rule_share(url: str) -> float:
    """Rule-engine time over the rest of the batch transactions' time (goal: at most 0.1)."""
    rules = metric_sum(url, "ioc_rule_eval_seconds")
    write = metric_sum(url, "ioc_db_write_seconds")
    return round(rules / (write - rules), 3) if write > rules else 0.0


def drain(svc: ServiceProcess, target: int, timeout: float = 900, poll_s: float = 0.1) -> dict:
    """Wait until the service stored ``target`` events; rate from first to last progress.

    Polled every ``poll_s``: each end of a 3-second drain is known to within that.
    """
    proc = psutil.Process(svc.pid)
    start = time.monotonic()
    samples: list[tuple[float, float, int]] = []
    first_at = None
    while time.monotonic() - start < timeout:
        n = stored_total(svc.url)
        now = time.monotonic()
        samples.append((now - start, n, proc.memory_info().rss))
        if n > 0 and first_at is None:
            first_at = now
        if n >= target:
            break
        time.sleep(poll_s)
    end = samples[-1][0] + start
    seconds = end - (first_at or start)
    rss = [s[2] for s in samples if s[1] > 0] or [samples[-1][2]]
    return {"events": int(samples[-1][1]), "seconds": round(seconds, 2),
            "events_per_s": round(samples[-1][1] / seconds) if seconds else 0,
            "rss_mb": {"first": round(rss[0] / 2**20), "max": round(max(rss) / 2**20),
                       "last": round(rss[-1] / 2**20)}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (PostgreSQL forks a backend each)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def ceiling_batches(items: list[tuple[str, bytes]], batch: int) -> list[EventBatch]:
    """The rows the ceilings copy: the same events the service drains, in its batch size."""
    msgs = [RawMessage(p, "kafka", key=d.encode()) for d, p in items]
    decoded = (decode(msgs[i:i + batch], DecodeLimits(max_event_age_s=10 * 86400)).events
               for i in range(0, len(msgs), batch))
    # Plain lists, as asyncpg's records want them: the ceiling must not pay for making the
    # strs of the decoder's TextColumns, which the service's own encoder never makes.
    return [replace(b, event_id=list(b.event_id), attrs=list(b.attrs)) for b in decoded]


async def ceilings(dsn: str, batches: list[EventBatch]) -> dict:
    conn = await connect(dsn)
    try:
        await use_microsecond_timestamps(conn)
        return {"bare_copy": round(await bare_copy_rate(conn, batches)),
                "naive_idempotent": round(await naive_idempotent_rate(conn, batches))}
    finally:
        await conn.close()


def median_round(results: list[dict], ratio: str) -> dict:
    """The median round by ``ratio`` as the headline, with the ratio's range and every round."""
    median = sorted(results, key=lambda r: r[ratio])[(len(results) - 1) // 2]
    ratios = [r[ratio] for r in results]
    return {**median, f"{ratio}_median": median[ratio], f"{ratio}_range": [min(ratios), max(ratios)],
            "rounds": results}


def bench_kafka(pg: EmbeddedPostgres, n: int, rounds: int, tmp: Path) -> dict:
    items = payloads(n, seed=1)
    ceiling_dsn = pg.create_database("bench_ceiling")
    asyncio.run(migrate_url(ceiling_dsn, timescaledb="off"))
    # A first, untimed round of each side warms the server, so that both are measured on a
    # server in its steady state: memory touched for the first time costs page faults (on this
    # VM, a first drain after the server's start cost PostgreSQL 4.2-4.5 µs/event, the drains
    # after it 2.8-3.2).
    batches = ceiling_batches(items, 20000)
    asyncio.run(ceilings(ceiling_dsn, batches))
    with EmbeddedKafka() as kafka:
        topic = "ioc.bench"
        asyncio.run(kafka_create_topic(kafka.bootstrap, topic, partitions=4))
        t = time.monotonic()
        asyncio.run(kafka_produce(kafka.bootstrap, topic, items))
        produce_s = time.monotonic() - t
        warmup = drain_kafka(pg, kafka, topic, n, 0, tmp)
        print(f"kafka warm-up drain (not counted): {warmup['events_per_s']} events/s", flush=True)
        # Each drain is compared with the mean of the ceilings measured just before and just
        # after it, which cancels a steady drift of the machine's speed.
        measured = [asyncio.run(ceilings(ceiling_dsn, batches))]
        results = []
        for i in range(1, rounds + 1):
            result = drain_kafka(pg, kafka, topic, n, i, tmp)
            measured.append(asyncio.run(ceilings(ceiling_dsn, batches)))
            around = measured[-2:]
            result["ceilings"] = {key: round(statistics.mean(c[key] for c in around))
                                  for key in around[0]}
            result["ceilings_before_after"] = around
            result["vs_bare_copy"] = round(result["events_per_s"] / result["ceilings"]["bare_copy"],
                                           3)
            print(f"kafka round {i}: {result['events_per_s']} events/s, bare COPY "
                  f"{result['ceilings']['bare_copy']} -> {result['vs_bare_copy']}x", flush=True)
            results.append(result)
    return {**median_round(results, "vs_bare_copy"), "produce_events_per_s": round(n / produce_s),
            "warmup_drain": warmup}


def drain_kafka(pg: EmbeddedPostgres, kafka: EmbeddedKafka, topic: str, n: int, i: int,
                tmp: Path) -> dict:
    """One round: a new database and consumer group drain the whole topic."""
    dsn = pg.create_database(f"bench_kafka_{i}")
    asyncio.run(checkpoint(dsn))
    svc = ServiceProcess(tmp, {"IOC_DATABASE_URL": dsn, "IOC_KAFKA_BOOTSTRAP": kafka.bootstrap,
                               "IOC_KAFKA_TOPIC": topic, "IOC_KAFKA_GROUP": f"bench-{i}",
                               "IOC_BATCH_MAX": "20000", "IOC_LOG_LEVEL": "WARNING"})
    svc.start()
    try:
        assert svc.pid is not None and pg.pid is not None
        cpu0 = cpu_seconds(svc.pid), cpu_seconds(pg.pid)
        result = drain(svc, n)
        cpu1 = cpu_seconds(svc.pid), cpu_seconds(pg.pid)
        result["rule_eval_vs_write_time"] = rule_share(svc.url)
    finally:
        svc.stop()
        # Otherwise autovacuum works through the drained million rows during the next round's
        # ceilings: it took 14-22% off the bare COPY measured after a drain.
        pg.drop_database(f"bench_kafka_{i}")
    # CPU per event says where the time goes even when other jobs share the machine (the
    # PostgreSQL figure includes autovacuum and anything else the server does meanwhile).
    result["service_cpu_us_per_event"] = round((cpu1[0] - cpu0[0]) / n * 1e6, 2)
    result["postgres_cpu_us_per_event"] = round((cpu1[1] - cpu0[1]) / n * 1e6, 2)
    return result


def mosquitto_backlog(broker: EmbeddedMosquitto, client_id: str, items) -> None:
    """Register a persistent session, then queue ``items`` for it with mosquitto_pub."""
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.subscribe("ioc/v1/events/#", qos=1)
    c.loop(1)
    c.disconnect()
    by_device: dict[str, list[bytes]] = {}
    for device, payload in items:
        by_device.setdefault(device, []).append(payload)
    with tempfile.TemporaryDirectory() as d:
        procs = []
        for i, (device, lines) in enumerate(by_device.items()):
            path = Path(d) / f"{i}.txt"
            path.write_bytes(b"\n".join(lines) + b"\n")
            procs.append(subprocess.Popen(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                 "-t", f"ioc/v1/events/{device}", "-l"], stdin=path.open("rb")))
            if len(procs) >= 16:
                procs.pop(0).wait()
        for p in procs:
            p.wait()


def bare_subscriber(broker: EmbeddedMosquitto, client_id: str, n: int) -> float:
    """The ceiling: paho with manual acks, acking each message as it arrives."""
    got = 0
    first = last = 0.0
    done = threading.Event()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5, manual_ack=True)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        got += 1
        if got == 1:
            first = time.monotonic()
        last = time.monotonic()
        client.ack(msg.mid, msg.qos)
        if got >= n:
            done.set()

    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20000
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(600)
    c.disconnect()
    c.loop_stop()
    return got / (last - first)


def bench_mqtt(pg: EmbeddedPostgres, n: int, rounds: int, tmp: Path) -> dict:
    items = payloads(n, seed=2)
    results = []
    for i in range(1, rounds + 1):
        with EmbeddedMosquitto() as broker:
            mosquitto_backlog(broker, "bench-bare", items)
            bare = bare_subscriber(broker, "bench-bare", n)
            mosquitto_backlog(broker, "bench-ioc", items)
            dsn = pg.create_database(f"bench_mqtt_{i}")
            asyncio.run(checkpoint(dsn))
            svc = ServiceProcess(tmp, {"IOC_DATABASE_URL": dsn, "IOC_MQTT_URL": broker.url,
                                       "IOC_MQTT_CLIENT_ID": "bench-ioc",
                                       "IOC_LOG_LEVEL": "WARNING"})
            svc.start()
            try:
                assert svc.pid is not None
                cpu0 = cpu_seconds(svc.pid)
                result = drain(svc, n)
                result["service_cpu_us_per_event"] = round(
                    (cpu_seconds(svc.pid) - cpu0) / n * 1e6, 2)
            finally:
                svc.stop()
                pg.drop_database(f"bench_mqtt_{i}")
        result["bare_subscriber_events_per_s"] = round(bare)
        result["vs_bare_subscriber"] = round(result["events_per_s"] / bare, 3)
        print(f"mqtt round {i}: {result['events_per_s']} events/s, bare subscriber "
              f"{round(bare)} -> {result['vs_bare_subscriber']}x", flush=True)
        results.append(result)
    return median_round(results, "vs_bare_subscriber")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka-events", type=int, default=1_000_000)
    parser.add_argument("--kafka-rounds", type=int, default=5)
    parser.add_argument("--mqtt-events", type=int, default=200_000)
    parser.add_argument("--mqtt-rounds", type=int, default=3)
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    result: dict = {}
    with EmbeddedPostgres() as pg:
        if not args.skip_kafka:
            result["kafka"] = bench_kafka(pg, args.kafka_events, args.kafka_rounds, tmp)
        if not args.skip_mqtt:
            result["mqtt"] = bench_mqtt(pg, args.mqtt_events, args.mqtt_rounds, tmp)
    path = write_result("ingest", {"goals": {"kafka": ">= 0.5x bare COPY (median round)",
                                             "mqtt": ">= 0.8x bare paho subscriber (median round)",
                                             "rss": "flat while draining 1M"}, **result})
    for name, r in result.items():
        print(f"{name}: {r}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
