"""Alert storm (#22): Kafka → stored when 4% of the events fire or resolve an alert, beside the
same events with a rule that never fires, same run.

    .venv/bin/python bench/storm.py [--events 1000000] [--rounds 2] [--batch-max N]
                                    [--marker-interval 0.1] [--webhook] [--no-sse]
                                    [--no-warmup]

A backlog of ``--events`` readings of 200 river gauges (kind ``water_level``, a devices file of
their own, 10 s apart per gauge, timestamps increasing) is produced to tansu once: readings stay
below 1.5 m, except every 50th reading of the stream (reading r of gauge g when (r + g) % 50 ==
49, so four gauges per round of the fleet, a different four each round), which is 2.6 m. The
rule ``gauge-critical`` (``water_level > 2.0``, ``clear < 1.8``, critical, no ``for``) fires at
each of them and resolves at the gauge's next reading: 1M events give 20,000 fires and 19,996
resolves (the last round's four stay open), 4% of the events. Each round has `ioc run` (a real
child process, a new database and consumer group each time, the default batch size unless
``--batch-max``) drain the whole backlog twice: first "quiet", the same rule with a threshold
nothing reaches, then "storm" (an untimed quiet drain first warms the server). events/s =
events / time from the first stored batch to the last (bench/ingest.py's ``drain``); the result
is the storm/quiet ratio of the median round (goal: >= 0.75) with every round listed. After each
drain the alerts, audit, feed and outbox rows are counted and checked against the transitions the
backlog must cause (all of them, none more).

CPU: user + system of the service and of PostgreSQL (with its backends and autovacuum) over the
drain, per event; the storm's extra CPU over the quiet round beside it, per transition (goal:
service + PostgreSQL <= 10 µs), which holds even when other jobs share the machine.

Live latency during the drain: the topic has a fifth partition that the backlog leaves empty; a
marker device sends to it one reading every ``--marker-interval`` with ts = now, alternately
above and below the rule ``bench-marker`` (fires at > 100, clears at < 50), while an SSE client
in this process holds ``GET /api/v1/alerts/stream`` open (as bench/alert_latency.py does). A
marker's latency is the time from just before its produce to the arrival of its ``fired`` or
``resolved`` frame, on one monotonic clock: how stale the console is while a backlog drains,
quiet or in a storm (markers queue behind what the pipeline holds, up to IOC_QUEUE_MAX). Both
configurations carry the markers, so they differ only in the gauge rule's threshold. The SSE
client costs this process CPU on the same machine (reported as ``bench_client``) and the service
the frames it serves; ``--no-sse`` measures the storm without them.

``--webhook`` adds a notification target (a local sink) for the gauge rule, so that every change
also writes an outbox row; without it, as with the shipped config, no outbox rows are written.
Writes bench/results/storm.json and prints a table.

    .venv/bin/python bench/storm.py --live kafka://HOST:PORT|mqtt://HOST:PORT [--rate 20000]
                                    [--seconds 60] [--per-message 1] [--topic ioc.storm]

``--live`` produces the same storm as it happens instead (``produce_live``), for
bench/alert_latency.py's storm phase, which runs it as a child process so that its CPU is not
the probes' SSE client's, and prints what it sent as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.server
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import numpy as np
import psutil
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.producer.message_accumulator import BatchBuilder

from bench.common import FeedClient, checkpoint, write_result
from bench.ingest import cpu_seconds, drain
from ioc.alerts.shape import iso
from ioc.devices import Device
from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.simulator.publish import MqttPublisher
from ioc.simulator.stream import EventStream
from tests.support.publish import kafka_create_topic
from tests.support.service import ServiceProcess

GAUGES = 200
EVERY = 50  # every 50th reading of the stream crosses the threshold
STEP_S = 10.0
THRESHOLD, CLEAR, HIGH, NORMAL_MAX = 2.0, 1.8, 2.6, 1.5
QUIET_THRESHOLD = 1000.0
GAUGE_RULE = "gauge-critical"
MARKER_RULE, MARKER_DEVICE, MARKER_KIND = "bench-marker", "storm-marker", "bench_marker"
BACKLOG_PARTITIONS = 4  # the markers have partition 4 to themselves
DISTRICTS = ("Vị Thanh", "Ngã Bảy", "Thị xã Long Mỹ", "Long Mỹ", "Vị Thủy", "Châu Thành",
             "Châu Thành A", "Phụng Hiệp")
GOAL_RATIO, GOAL_CPU_US = 0.75, 10.0
DRAIN_TIMEOUT_S = 900.0
LIVE_TICK_S = 0.02  # the live storm sends what is due every 20 ms
RULE = """
  - id: {id}
    kind: {kind}
    when: {{op: ">", value: {when}}}
    clear: {{op: "<", value: {clear}}}
    severity: critical
    message: "{message}"
"""


def gauges() -> list[Device]:
    return [Device(f"storm-wl-{i:03d}", f"Trạm đo mực nước {i:03d}", "water_level",
                   DISTRICTS[i % len(DISTRICTS)], interval_s=STEP_S, tags=("river",))
            for i in range(GAUGES)]


def gauge_entries() -> list[dict]:
    """The gauges as entries of a devices file (so that their alerts carry districts)."""
    return [{"id": d.id, "name": d.name, "kind": d.kind, "district": d.district,
             "interval": f"{STEP_S:.0f}s", "tags": list(d.tags)} for d in gauges()]


def gauge_partitions() -> dict[str, int]:
    """Each gauge's partition of 0-3, so that its readings stay in order."""
    return {d.id: i % BACKLOG_PARTITIONS for i, d in enumerate(gauges())}


def gauge_rule(storm: bool = True) -> str:
    """The rules-file entry of ``gauge-critical``: the storm's threshold, or (quiet) one
    nothing reaches."""
    when, clear = (THRESHOLD, CLEAR) if storm else (QUIET_THRESHOLD, QUIET_THRESHOLD - 0.2)
    return RULE.format(id=GAUGE_RULE, kind="water_level", when=when, clear=clear,
                       message="Mực nước {value:.2f} m tại {device_name} ({district}) vượt báo "
                               "động lúc {ts:%H:%M %d/%m}")


def write_config(tmp: Path, webhook_url: str | None) -> dict[str, Path]:
    """The devices file, one rules file per configuration and the notifications file."""
    devices = gauge_entries()
    devices.append({"id": MARKER_DEVICE, "name": "Marker", "kind": MARKER_KIND,
                    "district": DISTRICTS[0]})
    paths = {"devices": tmp / "devices.yaml", "notifications": tmp / "notifications.yaml"}
    paths["devices"].write_text(yaml.safe_dump({"devices": devices}, allow_unicode=True),
                                encoding="utf-8")
    marker = RULE.format(id=MARKER_RULE, kind=MARKER_KIND, when=100, clear=50,
                         message="marker {value:.0f}")
    for config in ("quiet", "storm"):
        paths[config] = tmp / f"rules-{config}.yaml"
        paths[config].write_text("rules:" + gauge_rule(config == "storm") + marker,
                                 encoding="utf-8")
    hooks = ([{"name": "bench-sink", "url": webhook_url, "secret": "bench",
               "match": {"rule_id": GAUGE_RULE}}] if webhook_url else [])
    paths["notifications"].write_text(yaml.safe_dump({"webhooks": hooks}), encoding="utf-8")
    return paths


def storm_stream(start_ms: int, step_s: float, seed: int,
                 per_message: int = 1) -> EventStream:
    """The gauges' readings, each gauge every ``step_s`` from ``start_ms``, one event a message
    (event i is then reading i // GAUGES of gauge i % GAUGES) or arrays of ``per_message``
    consecutive readings of one gauge, as field gateways send them."""
    if per_message == 1:
        return EventStream(gauges(), start_ms=start_ms, step_s=step_s, seed=seed)
    return EventStream(gauges(), start_ms=start_ms, step_s=step_s, seed=seed, form="batch",
                       batch_size=per_message)


def storm_payloads(stream: EventStream, first: int,
                   n: int) -> tuple[list[tuple[str, bytes]], np.ndarray]:
    """Events ``first`` .. ``first + n - 1`` of the storm: ``(device_id, payload)`` per message
    (the simulator's JSON) and, for every crossing, its place in the single-event stream
    (reading * GAUGES + gauge): the rule fires at it, the gauge's next reading resolves it."""
    dev, kind, rnd, msg = stream.layout.locate(first, n)
    r = stream.model.readings(dev, kind, rnd)
    crossing = (r.round + r.device) % EVERY == EVERY - 1
    r.value = np.where(crossing, HIGH, np.clip(r.value, 0.1, NORMAL_MAX))
    return stream.encoder.encode(r, msg), r.round[crossing] * GAUGES + r.device[crossing]


def storm_backlog(n: int, seed: int) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """``(device_id, payload)`` per event and the fires and resolves the storm rule must give."""
    hours = n / GAUGES * STEP_S / 3600
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours + 1)
    stream = storm_stream(round(start.timestamp() * 1000), STEP_S, seed)
    items: list[tuple[str, bytes]] = []
    fires = resolves = 0
    for a in range(0, n, 100_000):
        payloads, crossings = storm_payloads(stream, a, min(100_000, n - a))
        fires += len(crossings)
        resolves += int((crossings + GAUGES < n).sum())
        items.extend(payloads)
    return items, {"fires": fires, "resolves": resolves}


async def produce_backlog(bootstrap: str, topic: str, items: list[tuple[str, bytes]]) -> None:
    """Each gauge's readings to one of the partitions 0-3, in order; acks=all."""
    partition = gauge_partitions()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send(
            topic, payload, key=device.encode(),
            partition=partition[device])
            for device, payload in items]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


class _KafkaSender:
    """The live storm's Kafka side: the events due go out as one record batch per partition
    (aiokafka's batch builder, not a send and a future per record), acks=1."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.partition = gauge_partitions()
        self.keys = {d: d.encode() for d in self.partition}
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0,
                                         enable_idempotence=False, max_batch_size=1 << 20)
        self.delivered: list[asyncio.Future] = []

    async def start(self) -> None:
        await self.producer.start()

    async def send(self, items: list[tuple[str, bytes]]) -> None:
        producer, keys = self.producer, self.keys
        builders: dict[int, BatchBuilder] = {}
        for device, payload in items:
            p = self.partition[device]
            b = builders.get(p) or builders.setdefault(p, producer.create_batch())
            if b.append(key=keys[device], value=payload, timestamp=None) is None:  # full
                self.delivered.append(await producer.send_batch(b, self.topic, partition=p))
                b = builders[p] = producer.create_batch()
                b.append(key=keys[device], value=payload, timestamp=None)
        for p, b in builders.items():
            self.delivered.append(await producer.send_batch(b, self.topic, partition=p))

    async def close(self) -> None:
        try:
            await self.producer.flush()
            await asyncio.gather(*self.delivered)
        finally:
            await self.producer.stop()


class _MqttSender:
    """The live storm's MQTT side: the simulator's QoS 1 publisher (``ioc/v1/events/{id}``)."""

    def __init__(self, url: str) -> None:
        self.publisher = MqttPublisher(url, client_id="bench-storm")

    async def start(self) -> None:
        self.publisher.start()

    async def send(self, items: list[tuple[str, bytes]]) -> None:
        self.publisher.send_many(items)  # blocks only while 100 publishes await their acks

    async def close(self) -> None:
        if missing := self.publisher.close(30):
            raise RuntimeError(f"{missing} storm messages were not acknowledged")


async def produce_live(target: str, rate: float, seconds: float, seed: int, *,
                       topic: str = "ioc.storm", per_message: int = 1) -> dict:
    """The storm as it happens (bench/alert_latency.py --storm runs this in a child process):
    ``rate`` events/s to ``target`` (``kafka://host:port``, to ``topic``, or ``mqtt://host:port``)
    for at most ``seconds`` (SIGTERM ends it sooner), each message sent when the ts of its first
    reading comes, so that the service sees a live flood and not a backlog whose lag would also
    hold back its absence check. The shape is the backlog's (200 gauges, every 50th reading
    crossing, 4% transitions), only denser in time: each gauge reads every GAUGES / rate s,
    every 10 ms at 20k events/s. What is due goes out every LIVE_TICK_S, in one call: the
    producer shares the two cores with the service it loads. Returns what was sent, and the
    fires in it.
    """
    if rate > 1000 * GAUGES:
        raise ValueError(f"at most {1000 * GAUGES} events/s: ts in ms, a gauge's readings "
                         "must differ")
    scheme, _, address = target.partition("://")
    sender = _KafkaSender(address, topic) if scheme == "kafka" else _MqttSender(target)
    stream = storm_stream(round(time.time() * 1000), GAUGES / rate, seed, per_message)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await sender.start()
    tick = max(1, round(rate * LIVE_TICK_S))
    sent = messages = fires = 0
    t0 = time.monotonic()
    try:
        while not stop.is_set() and (now := time.monotonic()) - t0 < seconds:
            due = t0 + sent / rate
            if due > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), due - now)
                continue
            end = stream.align(sent + tick)
            items, crossings = storm_payloads(stream, sent, end - sent)
            await sender.send(items)
            sent, messages, fires = end, messages + len(items), fires + len(crossings)
        elapsed = time.monotonic() - t0
    finally:
        await sender.close()
    return {"target": scheme, "target_events_per_s": rate, "events": sent,
            "messages": messages, "seconds": round(elapsed, 2),
            "events_per_s": round(sent / elapsed), "fires": fires}


async def skip_old_markers(bootstrap: str, topic: str, group: str) -> None:
    """Commit the end of the marker partition for ``group`` before its service starts: a new
    group starts at the earliest offset, and the markers of earlier rounds are not its events."""
    tp = TopicPartition(topic, BACKLOG_PARTITIONS)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end:
            await consumer.commit({tp: end})
    finally:
        await consumer.stop()


class Markers(FeedClient):
    """Live marker readings on partition 4, matched with their frames on the SSE stream; keyed
    by (change, its time as the API shows it)."""

    def __init__(self, api: str, bootstrap: str, topic: str) -> None:
        super().__init__(api, self._marker_of)
        self.bootstrap = bootstrap
        self.topic = topic

    @staticmethod
    def _marker_of(data: str) -> tuple[str, str] | None:
        """(change, its time) of a marker's ``fired`` or ``resolved`` frame, if it is one."""
        if f'"{MARKER_RULE}"' not in data:  # the storm's own frames: counted, not parsed
            return None
        alert = json.loads(data)
        at = {"fired": "started_at", "resolved": "resolved_at"}.get(alert["change"])
        return None if at is None else (alert["change"], alert[at])

    async def send(self, stop: asyncio.Event, interval_s: float) -> None:
        """One marker every ``interval_s`` until ``stop``: above the rule, then below, ..."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        await producer.start()
        try:
            last_ms = 0
            k = 0
            while not stop.is_set():
                ts_ms = max(last_ms + 1, int(time.time() * 1000))
                last_ms = ts_ms
                change = "fired" if k % 2 == 0 else "resolved"
                body = json.dumps({"device_id": MARKER_DEVICE, "kind": MARKER_KIND,
                                   "value": 150 if change == "fired" else 0, "ts": ts_ms})
                self.sent[(change, iso(ts_ms * 1000) or "")] = time.monotonic()
                await producer.send(self.topic, body.encode(), key=MARKER_DEVICE.encode(),
                                    partition=BACKLOG_PARTITIONS)
                k += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
            await producer.flush()
        finally:
            await producer.stop()

    def summary(self) -> dict:
        lat = self.latency(self.sent)
        extra = {"sse_frames": self.frames, "sse_reconnects": self.reconnects} if lat[
            "received"] else {}
        return {"markers": len(self.sent), **lat, **extra}


async def drain_with_markers(svc: ServiceProcess, n: int, bootstrap: str, topic: str,
                             interval_s: float) -> tuple[dict, dict]:
    """bench/ingest.py's drain (in a thread) while markers go out and the SSE client listens."""
    markers = Markers(svc.url, bootstrap, topic)
    stop = asyncio.Event()
    subscribed = asyncio.Event()
    draining = asyncio.create_task(asyncio.to_thread(drain, svc, n, DRAIN_TIMEOUT_S))
    listener = asyncio.create_task(markers.listen(subscribed))
    sender = None
    try:
        await asyncio.wait_for(subscribed.wait(), 30)
        sender = asyncio.create_task(markers.send(stop, interval_s))
        result = await draining
        stop.set()
        await asyncio.wait_for(sender, 30)
        # The drain stopped at n stored, markers included: wait for the rest of the backlog.
        await asyncio.to_thread(drain, svc, n + len(markers.sent), 60)
        await markers.settle(markers.sent, 15)
    finally:
        stop.set()
        for task in (draining, listener, sender):
            if task is not None:
                task.cancel()
        await asyncio.gather(draining, listener, *([sender] if sender else []),
                             return_exceptions=True)
    return result, markers.summary()


ROW_COUNTS = """
SELECT (SELECT count(*) FROM alerts WHERE rule_id = $1) AS alerts,
       (SELECT count(*) FROM alerts WHERE rule_id = $1 AND state = 'resolved') AS alerts_resolved,
       (SELECT count(*) FROM alert_audit u JOIN alerts a ON a.id = u.alert_id
        WHERE a.rule_id = $1 AND u.action = 'firing') AS audit_firing,
       (SELECT count(*) FROM alert_audit u JOIN alerts a ON a.id = u.alert_id
        WHERE a.rule_id = $1 AND u.action = 'resolved') AS audit_resolved,
       (SELECT count(*) FROM alert_audit) AS audit_all,
       (SELECT count(*) FROM alert_feed f JOIN alerts a ON a.id = f.alert_id
        WHERE a.rule_id = $1 AND f.change = 'fired') AS feed_fired,
       (SELECT count(*) FROM alert_feed f JOIN alerts a ON a.id = f.alert_id
        WHERE a.rule_id = $1 AND f.change = 'resolved') AS feed_resolved,
       (SELECT count(*) FROM alert_feed) AS feed_all,
       (SELECT count(*) FROM outbox WHERE rule_id = $1 AND change = 'fired') AS outbox_fired,
       (SELECT count(*) FROM outbox WHERE rule_id = $1 AND change = 'resolved') AS outbox_resolved,
       (SELECT count(*) FROM outbox) AS outbox_all,
       (SELECT count(*) FROM events WHERE device_id = $2) AS marker_events
"""


async def row_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return dict(await conn.fetchrow(ROW_COUNTS, GAUGE_RULE, MARKER_DEVICE))
    finally:
        await conn.close()


def check_rows(rows: dict[str, int], fires: int, resolves: int, outbox: bool,
               markers: int) -> list[str]:
    """What differs from the transitions the backlog must give (empty: all there, none more),
    and from the markers sent."""
    want = {"marker_events": markers, "alerts": fires, "alerts_resolved": resolves, "audit_firing": fires,
            "audit_resolved": resolves, "feed_fired": fires, "feed_resolved": resolves,
            "outbox_fired": fires if outbox else 0, "outbox_resolved": resolves if outbox else 0}
    return [f"{k}: {rows[k]}, expected {v}" for k, v in want.items() if rows[k] != v]


def run_round(pg: EmbeddedPostgres, kafka: EmbeddedKafka, topic: str, config: str, name: str,
              args: argparse.Namespace, paths: dict[str, Path], expected: dict[str, int],
              tmp: Path, keep: bool = False) -> dict:
    """One drain of the whole topic by a new service, database and consumer group."""
    db = f"storm_{name}"
    dsn = pg.create_database(db)
    asyncio.run(checkpoint(dsn))
    env = {"IOC_DATABASE_URL": dsn, "IOC_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "IOC_KAFKA_TOPIC": topic, "IOC_KAFKA_GROUP": f"storm-{name}",
           "IOC_DEVICES_FILE": str(paths["devices"]), "IOC_RULES_FILE": str(paths[config]),
           "IOC_NOTIFICATIONS_FILE": str(paths["notifications"]), "IOC_LOG_LEVEL": "WARNING"}
    if args.batch_max:
        env["IOC_BATCH_MAX"] = str(args.batch_max)
    asyncio.run(skip_old_markers(kafka.bootstrap, topic, env["IOC_KAFKA_GROUP"]))
    svc = ServiceProcess(tmp, env)
    me = psutil.Process()
    svc.start()
    try:
        assert svc.pid is not None and pg.pid is not None and kafka.pid is not None
        pids = (svc.pid, pg.pid, kafka.pid)
        cpu0 = [cpu_seconds(p) for p in pids], me.cpu_times()
        if args.no_sse:
            result, sse = drain(svc, args.events, DRAIN_TIMEOUT_S), {"markers": 0}
        else:
            result, sse = asyncio.run(drain_with_markers(svc, args.events, kafka.bootstrap,
                                                         topic, args.marker_interval))
        cpu1 = [cpu_seconds(p) for p in pids], me.cpu_times()
        result["service_pid"] = svc.pid
    finally:
        svc.stop()
    result["rows"] = rows = asyncio.run(row_counts(dsn))
    if not keep:
        pg.drop_database(db)  # else autovacuum works through it during the next round
    transitions = (expected["fires"] + expected["resolves"]) if config == "storm" else 0
    result["transitions"] = transitions
    result["row_problems"] = check_rows(rows, transitions and expected["fires"],
                                        transitions and expected["resolves"], args.webhook,
                                        sse["markers"])
    seconds = result["seconds"]
    result["transitions_per_s"] = round(transitions / seconds) if seconds else 0
    n = args.events
    cpu = {who: cpu1[0][i] - cpu0[0][i] for i, who in enumerate(("service", "postgres", "tansu"))}
    cpu["bench_client"] = (cpu1[1].user + cpu1[1].system) - (cpu0[1].user + cpu0[1].system)
    result["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    result["cpu_us_per_event"] = {k: round(v / n * 1e6, 2) for k, v in cpu.items()}
    result["sse_markers"] = sse
    print(f"{name}: {result['events_per_s']} events/s in {seconds} s, "
          f"cpu µs/event {result['cpu_us_per_event']}, markers p50/p99 "
          f"{sse.get('p50_ms')}/{sse.get('p99_ms')} ms, rows {rows}"
          + (f", PROBLEMS {result['row_problems']}" if result["row_problems"] else ""), flush=True)
    return result


def pair(quiet: dict, storm: dict) -> dict:
    """A round: the storm beside the quiet drain just before it."""
    t = storm["transitions"]
    extra = {k: (storm["cpu_s"][k] - quiet["cpu_s"][k]) / t * 1e6 if t else 0.0
             for k in ("service", "postgres")}
    return {"quiet_events_per_s": quiet["events_per_s"],
            "storm_events_per_s": storm["events_per_s"],
            "storm_vs_quiet": round(storm["events_per_s"] / quiet["events_per_s"], 3),
            "transitions_per_s": storm["transitions_per_s"],
            "extra_cpu_us_per_transition": {**{k: round(v, 2) for k, v in extra.items()},
                                            "total": round(sum(extra.values()), 2)},
            "quiet": quiet, "storm": storm}


class _Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-max", type=int, default=None,
                        help="IOC_BATCH_MAX (default: the service's default)")
    parser.add_argument("--marker-interval", type=float, default=0.1, help="seconds")
    parser.add_argument("--webhook", action="store_true",
                        help="a webhook (local sink) for the gauge rule: outbox rows too")
    parser.add_argument("--no-sse", action="store_true",
                        help="no markers and no SSE client (the storm without a console open)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed quiet drain that warms the server")
    live = parser.add_argument_group(
        "live storm", "instead of the backlog benchmark: produce the storm as it happens and "
        "print what was sent as JSON (the producer of bench/alert_latency.py --storm)")
    live.add_argument("--live", metavar="URL", help="kafka://host:port or mqtt://host:port")
    live.add_argument("--topic", default="ioc.storm", help="Kafka topic")
    live.add_argument("--rate", type=float, default=20000, help="events per second")
    live.add_argument("--seconds", type=float, default=60, help="at most this long")
    live.add_argument("--per-message", type=int, default=1,
                      help="readings per message (arrays of one gauge's readings when > 1)")
    live.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.live:
        print(json.dumps(asyncio.run(produce_live(
            args.live, args.rate, args.seconds, args.seed, topic=args.topic,
            per_message=args.per_message))), flush=True)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-storm-"))
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink) if args.webhook else None
    if sink:
        threading.Thread(target=sink.serve_forever, daemon=True).start()
    paths = write_config(tmp, sink and f"http://127.0.0.1:{sink.server_address[1]}/hook")
    t = time.monotonic()
    items, expected = storm_backlog(args.events, seed=1)
    print(f"backlog: {len(items)} events, {expected} in the storm "
          f"({time.monotonic() - t:.1f} s)", flush=True)
    rounds: list[dict] = []
    try:
        with EmbeddedPostgres() as pg, EmbeddedKafka() as kafka:
            topic = "ioc.storm"
            asyncio.run(kafka_create_topic(kafka.bootstrap, topic,
                                           partitions=BACKLOG_PARTITIONS + 1))
            t = time.monotonic()
            asyncio.run(produce_backlog(kafka.bootstrap, topic, items))
            produce_s = time.monotonic() - t
            del items
            warmup = None
            if not args.no_warmup:  # first-touch page faults of a fresh server, not counted
                warmup = run_round(pg, kafka, topic, "quiet", "warmup", args, paths, expected,
                                   tmp)
            for i in range(1, args.rounds + 1):
                quiet = run_round(pg, kafka, topic, "quiet", f"quiet_{i}", args, paths,
                                  expected, tmp)
                storm = run_round(pg, kafka, topic, "storm", f"storm_{i}", args, paths,
                                  expected, tmp)
                rounds.append(pair(quiet, storm))
                print(f"round {i}: storm/quiet {rounds[-1]['storm_vs_quiet']}, extra CPU "
                      f"µs/transition {rounds[-1]['extra_cpu_us_per_transition']}", flush=True)
    finally:
        if sink:
            sink.shutdown()
    median = sorted(rounds, key=lambda r: r["storm_vs_quiet"])[(len(rounds) - 1) // 2]
    ratios = [r["storm_vs_quiet"] for r in rounds]
    headline = {k: v for k, v in median.items() if k not in ("quiet", "storm")}
    storm = median["storm"]
    headline.update({
        "storm_vs_quiet_range": [min(ratios), max(ratios)],
        "cpu_us_per_event": {"quiet": median["quiet"]["cpu_us_per_event"],
                             "storm": storm["cpu_us_per_event"]},
        "cpu_us_per_transition_storm_total": {
            k: round(storm["cpu_s"][k] / storm["transitions"] * 1e6, 2)
            for k in ("service", "postgres")} if storm["transitions"] else {},
        "sse_markers": {"quiet": median["quiet"]["sse_markers"], "storm": storm["sse_markers"]},
        "rows_after_storm": storm["rows"],
        "rows_ok": all(not r[c]["row_problems"] for r in rounds for c in ("quiet", "storm")),
    })
    met = {"ratio": headline["storm_vs_quiet"] >= GOAL_RATIO,
           "cpu_per_transition": headline["extra_cpu_us_per_transition"]["total"] <= GOAL_CPU_US}
    path = write_result("storm", {
        "goals": {"ratio": f"storm/quiet >= {GOAL_RATIO} (median round, default batch size)",
                  "cpu_per_transition": f"extra service + PostgreSQL CPU <= {GOAL_CPU_US:.0f} "
                                        "µs per transition"},
        "met": met,
        "scenario": {"events": args.events, "gauges": GAUGES, "every": EVERY, **expected,
                     "transition_share": round((expected["fires"] + expected["resolves"])
                                               / args.events, 4),
                     "batch_max": args.batch_max or "default", "webhook": args.webhook,
                     "marker_interval_s": None if args.no_sse else args.marker_interval},
        "produce_events_per_s": round(args.events / produce_s),
        **headline, "rounds": rounds, "warmup_drain": warmup})
    for key in ("quiet_events_per_s", "storm_events_per_s", "storm_vs_quiet",
                "storm_vs_quiet_range", "transitions_per_s", "extra_cpu_us_per_transition",
                "cpu_us_per_event", "cpu_us_per_transition_storm_total", "sse_markers",
                "rows_after_storm", "rows_ok"):
        print(f"{key}: {headline[key]}")
    print(f"goals met: {met} -> {path}")


if __name__ == "__main__":
    main()
