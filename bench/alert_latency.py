"""Alert latency end to end: an event published on MQTT → its alert on the SSE live feed.

    .venv/bin/python bench/alert_latency.py [--probes 300] [--load 20000] [--form batch]
                                            [--storm] [--storm-rate 20000]
                                            [--storm-transport kafka|mqtt]
                                            [--publisher simulate|packets]

`ioc run` (a real child process) with PostgreSQL and mosquitto on loopback, the shipped rules
plus one probe rule (``kind: bench_probe``, fires on the first reading above 100, no ``for``).
An SSE client in this process holds ``GET /api/v1/alerts/stream`` open; a probe is one QoS 1
publish of a firing reading for a device of its own, and its latency is the time from just
before the publish to the arrival of the matching ``fired`` frame, on one monotonic clock.

Two phases: no other load, then with ``ioc simulate`` publishing ``--load`` events/s of
background readings (``--form batch``: JSON arrays of ``--batch-size`` events per message, as
field gateways send; ``single``: one event per message). ``--publisher packets`` (with ``--form
single``) publishes them from bench/publishers.py processes writing pre-encoded packets paced to
``--load`` and stamped with the time they are due (`ioc simulate` reaches about 9k one-event
messages/s). The stored rate reached during the loaded phase is reported from the service's
``ioc_events_stored_total``, and beside each phase the service's own
``ioc_alert_latency_seconds`` (message taken from the broker → alert on the feed; bucket
bounds), which tells broker-side queueing from time spent in the service.

``--storm`` adds a third phase, an alert storm as it happens (#22): bench/storm.py's storm —
200 river gauges (their own entries in the devices file, so alerts carry districts), every
50th reading 2.6 m against ``gauge-critical`` (> 2.0 m, clears < 1.8 m at the gauge's next
reading), so that 4% of the events fire or resolve an alert — produced live at
``--storm-rate`` events/s by bench/storm.py in a child process (``--live``), each reading sent
when its ts comes, while the probes stay on MQTT. By default the storm arrives from Kafka, one
reading a record, as in the issue (the service then has the Kafka source, the gauges and their
rule in the first two phases too, idle there); ``--storm-transport mqtt`` sends it through the
probes' broker in arrays of 10 readings instead. The Kafka broker here is tansu, which answers
every fetch only after sleeping half the consumer's fetch wait (aiokafka's default 500 ms, which
the service keeps), even when records are there: the storm then reaches the service in bursts
of about 250 ms of records, which a broker that answers at once would not cause; the MQTT
variant shows the service under an even storm.

Reported for the storm beside the probes: events/s stored, alerts fired/s
(``ioc_alerts_fired_total``) and alert changes/s on the feed (the storm's fires and resolves),
what the producer sent, the service's batch sizes, write and rule times and event lag
(``ioc_ingest_batch_rows``, ``ioc_db_write_seconds``, ``ioc_rule_eval_seconds``,
``ioc_event_lag_seconds``) and the queue depth sampled every 0.5 s. For every phase: the CPU
cores each process used and what everything else on the machine used (``others``: on a shared
machine the figures mean little without it), and where each probe's time went, split at the
start of the transaction that stored it (``alert_feed.at``): publish → transaction start (the
broker, batching, waiting for the writer) and transaction start → frame (the transaction, the
feed pump, the SSE write).

Goal: p99 <= 250 ms in every phase.
Writes bench/results/alert_latency.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import paho.mqtt.client as mqtt
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import FeedClient, write_result
from bench.ingest import cpu_seconds, payloads
from bench.publishers import gather, publish_shard, shards
from bench.storm import (
    BACKLOG_PARTITIONS,
    EVERY,
    GAUGE_RULE,
    GAUGES,
    gauge_entries,
    gauge_rule,
)
from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from tests.support.publish import kafka_create_topic
from tests.support.service import ServiceProcess, http

REPO = Path(__file__).resolve().parents[1]
PROBE_RULE = """
  - id: bench-probe
    kind: bench_probe
    when: {op: ">", value: 100}
    severity: critical
    message: "probe {value:.0f} at {device_id}"
"""
GOAL_P99_MS = 250.0
STORM_TOPIC = "ioc.storm"
PACED_PUBLISHERS = 4  # --publisher packets: processes sharing --load
PACKETS_LEAD_S = 30.0  # their readings' first ts: after they are generated and encoded
STORM_WARMUP_S = 10.0  # the storm reaches its steady state before the probes start


class Probes(FeedClient):
    """Publishes probe readings and matches them with frames from the SSE stream, keyed by
    the probe's device."""

    def __init__(self, broker: EmbeddedMosquitto, api: str) -> None:
        super().__init__(api, self._probe_of)
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="bench-probe")
        self.client.on_connect = lambda *a: self._ready.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("probe publisher could not connect")

    @staticmethod
    def _probe_of(data: str) -> str | None:
        """The probe device whose ``fired`` frame this is, if it is one."""
        if '"bench-probe"' not in data:  # a storm's frames: counted, not parsed
            return None
        alert = json.loads(data)
        if alert["rule_id"] == "bench-probe" and alert["change"] == "fired":
            return alert["device_id"]
        return None

    async def run(self, phase: str, n: int, interval_s: float) -> dict:
        for i in range(n):
            device = f"bench-{phase}-{i:05d}"
            body = json.dumps({"device_id": device, "kind": "bench_probe", "value": 150,
                               "ts": int(time.time() * 1000)})
            self.sent[device] = time.monotonic()
            self.client.publish(f"ioc/v1/events/{device}", body, qos=1)
            await asyncio.sleep(interval_s)
        mine = [d for d in self.sent if d.startswith(f"bench-{phase}-")]
        await self.settle(mine, 30)
        return {"probes": n, **self.latency(mine)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scrape(url: str) -> str:
    """The service's /metrics text ("" when it does not answer)."""
    status, body = http("GET", f"{url}/metrics", timeout=5)
    return body if status == 200 and isinstance(body, str) else ""


def buckets(text: str, name: str) -> dict[float, float]:
    """A histogram of the scrape: upper bound -> cumulative count."""
    found = re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M)
    return {float(le): float(n) for le, n in found}


def total(text: str, name: str) -> float:
    """A counter or gauge of the scrape, summed over its labels."""
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def bucket_quantiles(before: dict[float, float], after: dict[float, float],
                     qs: tuple[float, ...] = (0.5, 0.99)) -> tuple[int, list[float]]:
    """Observations between two scrapes of a histogram, and the upper bucket bound of each
    quantile in ``qs`` (what a histogram can say)."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    count = delta[-1][1] if delta else 0.0
    return int(count), [next((le for le, n in delta if count and n >= q * count), float("inf"))
                        for q in qs]


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each process (PostgreSQL with its backends), of this one, and of
    the whole machine: a phase's figures mean little without what else ran beside them."""
    out = {name: cpu_seconds(pid) for name, pid in pids.items()}
    me = psutil.Process().cpu_times()
    out["bench_client"] = me.user + me.system
    t = psutil.cpu_times()
    out["machine"] = t.user + t.nice + t.system + t.irq + t.softirq + t.steal
    return out


@dataclass
class Window:
    """What the service and the machine did while one phase's probes went out: /metrics
    before and after, CPU cores used by each process and by everything else (``others``:
    the machine less the run's processes), and the SSE frames received."""

    before: str
    after: str
    seconds: float
    cpu_cores: dict[str, float]
    frames: int
    reconnects: int

    def rate(self, name: str) -> int:
        return round((total(self.after, name) - total(self.before, name)) / self.seconds)

    def histogram(self, name: str, scale: float = 1.0) -> dict[str, Any]:
        """Count, mean and p50/p99 bucket bounds of a histogram's observations, times
        ``scale`` (1000 for seconds as ms)."""
        count, (p50, p99) = bucket_quantiles(buckets(self.before, name),
                                             buckets(self.after, name))
        added = total(self.after, f"{name}_sum") - total(self.before, f"{name}_sum")
        return {"count": count, "mean": round(added / count * scale, 2) if count else None,
                "p50_le": p50 * scale, "p99_le": p99 * scale}

    def in_service(self) -> dict[str, Any]:
        """ioc_alert_latency_seconds: received -> published on the feed, inside the service."""
        h = self.histogram("ioc_alert_latency_seconds", 1000)
        return {"alerts": h["count"], "p50_le_ms": h["p50_le"], "p99_le_ms": h["p99_le"]}


async def probed(probes: Probes, phase: str, args: argparse.Namespace, svc: ServiceProcess,
                 pids: dict[str, int]) -> tuple[dict[str, Any], Window]:
    """One phase's probes, with the service's in-service latency and the CPU beside them."""
    before = await asyncio.to_thread(scrape, svc.url)
    frames, reconnects = probes.frames, probes.reconnects
    cpu0, t0 = cpu_snapshot(pids), time.monotonic()
    result = await probes.run(phase, args.probes, args.interval)
    after = await asyncio.to_thread(scrape, svc.url)
    cpu1, elapsed = cpu_snapshot(pids), time.monotonic() - t0
    cores = {k: round((cpu1[k] - cpu0[k]) / elapsed, 2) for k in cpu0}
    cores["others"] = round(cores["machine"] - sum(v for k, v in cores.items()
                                                    if k != "machine"), 2)
    w = Window(before, after, elapsed, cores, probes.frames - frames,
               probes.reconnects - reconnects)
    result["in_service"] = w.in_service()
    result["cpu_cores"] = cores
    return result, w


async def sample_queue_depth(url: str, stop: asyncio.Event, every_s: float = 0.5) -> list[float]:
    """``ioc_ingest_queue_depth`` every ``every_s`` until ``stop``: what waits in the pipeline
    between batches, which the batch histograms do not show."""
    depths: list[float] = []
    while not stop.is_set():
        depths.append(total(await asyncio.to_thread(scrape, url), "ioc_ingest_queue_depth"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return depths


async def stop_producer(producer: asyncio.subprocess.Process) -> dict[str, Any]:
    """SIGTERM (it stops sending and reports), by its PID; SIGKILL if it does not end."""
    if producer.returncode is None:
        producer.terminate()
    try:
        out, _ = await asyncio.wait_for(producer.communicate(), 30)
    except TimeoutError:
        producer.kill()
        await producer.wait()
        return {}
    lines = out.decode().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


async def storm_phase(args: argparse.Namespace, probes: Probes, svc: ServiceProcess,
                      target: str, pids: dict[str, int]) -> dict:
    """Probes while bench/storm.py produces the storm live to ``target`` (see the docstring)."""
    seconds = STORM_WARMUP_S + args.probes * args.interval + 40  # ends by itself
    producer = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "storm.py"), "--live", target,
        "--topic", STORM_TOPIC, "--rate", str(args.storm_rate), "--seconds", f"{seconds:.0f}",
        "--per-message", str(args.storm_per_message), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    stop = asyncio.Event()
    sampler = None
    try:
        await asyncio.sleep(STORM_WARMUP_S)
        sampler = asyncio.create_task(sample_queue_depth(svc.url, stop))
        storm, w = await probed(probes, "storm", args, svc,
                                {**pids, "storm_producer": producer.pid})
    finally:
        stop.set()
        depths = await sampler if sampler is not None else []
        sent = await stop_producer(producer)
    batches = w.histogram("ioc_ingest_batch_rows")  # events per batch
    storm.update({
        "stored_events_per_s": w.rate("ioc_events_stored_total"),
        "alerts_fired_per_s": w.rate("ioc_alerts_fired_total"),
        "alert_changes_per_s": round(w.frames / w.seconds),
        # What the feed carried besides the probes' fires: the gauges' fires and resolves.
        "transitions_per_s": round((w.frames - storm["received"]) / w.seconds),
        "sse_reconnects": w.reconnects,
        "storm_target_events_per_s": args.storm_rate,
        "storm_producer": sent,
        "batches": {**batches, "per_s": round(batches["count"] / w.seconds, 1)},
        "db_write_ms": w.histogram("ioc_db_write_seconds", 1000),
        "rule_eval_ms": w.histogram("ioc_rule_eval_seconds", 1000),
        "event_lag_ms": w.histogram("ioc_event_lag_seconds", 1000),
        "queue_depth": {"samples": len(depths), "max": max(depths, default=0),
                        "mean": round(sum(depths) / len(depths)) if depths else 0},
    })
    return storm


PROBE_TIMES = """
SELECT a.device_id, extract(epoch FROM f.at)::float8 AS tx_start, f.received_at
FROM alert_feed f JOIN alerts a ON a.id = f.alert_id
WHERE a.rule_id = 'bench-probe' AND f.change = 'fired'
"""


async def breakdown(dsn: str, probes: Probes, clock_offset: float,
                    phases: list[str]) -> dict[str, dict]:
    """Each probe's time before and after the start of the transaction that stored it
    (``alert_feed.at`` is that transaction's now()): publish -> transaction start is the
    broker, the batching and the wait for the writer; transaction start -> frame is the
    transaction, the feed pump and the SSE write. ``clock_offset`` turns this process's
    monotonic clock into the wall clock the database and the service use (one machine)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = {r["device_id"]: r for r in await conn.fetch(PROBE_TIMES)}
    finally:
        await conn.close()

    def quantiles(ms: list[float]) -> dict[str, float]:
        ms = sorted(ms)
        return {"p50": round(ms[len(ms) // 2], 1),
                "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
                "max": round(ms[-1], 1)} if ms else {}

    out = {}
    for phase in phases:
        mine = [d for d in probes.seen if d.startswith(f"bench-{phase}-") and d in rows]
        before = [(rows[d]["tx_start"] - probes.sent[d] - clock_offset) * 1000 for d in mine]
        after = [(probes.seen[d] + clock_offset - rows[d]["tx_start"]) * 1000 for d in mine]
        waited = [(rows[d]["tx_start"] - rows[d]["received_at"]) * 1000 for d in mine
                  if rows[d]["received_at"] is not None]
        out[phase] = {"publish_to_tx_start_ms": quantiles(before),
                      "tx_start_to_frame_ms": quantiles(after),
                      "batch_first_received_to_tx_start_ms": quantiles(waited)}
    return out


@contextlib.asynccontextmanager
async def background(args: argparse.Namespace, broker: EmbeddedMosquitto,
                     duration: float) -> AsyncIterator[dict[str, int]]:
    """The loaded phase's background publishing, running while the block runs; yields the
    publishing processes' pids by name. ``simulate``: `ioc simulate` (paho, one process);
    ``packets``: bench/publishers.py processes writing pre-encoded one-event messages, paced
    to ``--load`` between them (`ioc simulate` reaches about 9k one-event messages/s)."""
    if args.publisher == "simulate":
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ioc.cli", "simulate", "--mqtt", broker.url,
            "--rate", str(args.load), "--duration", f"{duration:.0f}s", "--devices", "2000",
            "--form", args.form, "--batch-size", str(args.batch_size), "--seed", "7",
            "--client-id", "bench-background", cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            yield {"simulator": sim.pid}
        finally:
            sim.terminate()
            await sim.wait()
        return
    # Stamped live: readings hours old beside the probes' fresh ones made the absence timer
    # take the backlog lag as zero whenever a batch held a probe, and 2,000 devices offline.
    start_at = time.time() + PACKETS_LEAD_S
    items = payloads(int(args.load * duration), seed=7,
                     live_from=dt.datetime.fromtimestamp(start_at, dt.UTC), rate=args.load)
    ctx = mp.get_context("fork")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=publish_shard, daemon=True,
                         args=(broker.port, f"bench-background-{k}", shard, ready, go, done,
                               args.load * len(shard) / len(items)))
             for k, shard in enumerate(shards(items, PACED_PUBLISHERS))]
    for proc in procs:
        proc.start()
    try:
        await asyncio.to_thread(gather, ready, procs, 120)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        go.set()
        yield {f"publisher_{k}": proc.pid for k, proc in enumerate(procs) if proc.pid}
    finally:
        for proc in procs:
            proc.kill()
            proc.join(10)


async def measure(args: argparse.Namespace, broker: EmbeddedMosquitto, svc: ServiceProcess,
                  storm_target: str | None, pids: dict[str, int], dsn: str) -> dict:
    clock_offset = time.time() - time.monotonic()
    probes = Probes(broker, svc.url)
    subscribed = asyncio.Event()
    listener = asyncio.create_task(probes.listen(subscribed))
    await asyncio.wait_for(subscribed.wait(), 30)
    result: dict = {}
    try:
        await probes.run("warmup", 20, 0.05)
        result["idle"], _ = await probed(probes, "idle", args, svc, pids)
        duration = args.probes * args.interval + 40
        async with background(args, broker, duration) as publishers:
            await asyncio.sleep(10)  # reach the steady state
            loaded, w = await probed(probes, "loaded", args, svc, {**pids, **publishers})
            loaded["alert_changes_per_s"] = round(w.frames / w.seconds)
            loaded["sse_reconnects"] = w.reconnects
        loaded["background_target_events_per_s"] = args.load
        loaded["background_stored_events_per_s"] = w.rate("ioc_events_stored_total")
        loaded["background_form"] = (f"{args.form} ({args.batch_size} events per message)"
                                     if args.form == "batch" else args.form)
        loaded["background_publisher"] = args.publisher
        result["loaded"] = loaded
        if storm_target is not None:
            result["storm"] = await storm_phase(args, probes, svc, storm_target, pids)
        for phase, parts in (await breakdown(dsn, probes, clock_offset, list(result))).items():
            result[phase]["breakdown"] = parts
    finally:
        listener.cancel()
        probes.close()
    return result


def write_config(tmp: Path, args: argparse.Namespace) -> dict[str, str]:
    """The rules file (shipped or none, and the probe rule; with --storm the gauges' rule) and,
    with --storm, a devices file of the shipped devices and the gauges."""
    rules = tmp / "rules.yaml"
    shipped = (REPO / "config" / "rules.yaml").read_text(encoding="utf-8").rstrip()
    text = (shipped if args.rules == "shipped" else "rules:") + "\n" + PROBE_RULE
    env = {"IOC_RULES_FILE": str(rules)}
    if args.storm:
        text += gauge_rule()
        devices = yaml.safe_load((REPO / "config" / "devices.yaml").read_text(encoding="utf-8"))
        devices["devices"] += gauge_entries()
        env["IOC_DEVICES_FILE"] = str(tmp / "devices.yaml")
        Path(env["IOC_DEVICES_FILE"]).write_text(yaml.safe_dump(devices, allow_unicode=True),
                                                 encoding="utf-8")
    rules.write_text(text, encoding="utf-8")
    return env


def summary(name: str, r: dict) -> str:
    b = r.get("breakdown", {})
    line = (f"{name}: p50 {r.get('p50_ms')} / p95 {r.get('p95_ms')} / p99 {r.get('p99_ms')} / "
            f"max {r.get('max_ms')} ms ({r['received']} of {r['probes']} probes); in service "
            f"p50/p99 <= {r['in_service']['p50_le_ms']:g}/{r['in_service']['p99_le_ms']:g} ms; "
            f"p50/p99 publish -> transaction {b.get('publish_to_tx_start_ms')}, -> frame "
            f"{b.get('tx_start_to_frame_ms')}; CPU cores {r['cpu_cores']}")
    if name == "storm":
        line += (f"; {r['stored_events_per_s']} events/s stored, {r['transitions_per_s']} "
                 f"transitions/s on the feed ({r['alerts_fired_per_s']} fired/s), batches "
                 f"{r['batches']['mean']} events mean, write {r['db_write_ms']['mean']} ms mean, "
                 f"queue depth max {r['queue_depth']['max']:g}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--load", type=int, default=20000, help="background events per second")
    parser.add_argument("--form", choices=("batch", "single"), default="batch")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--publisher", choices=("simulate", "packets"), default="simulate",
                        help="the loaded phase's publisher: `ioc simulate`, or pre-encoded "
                             "one-event packets (for --form single at rates it cannot reach)")
    parser.add_argument("--rules", choices=("shipped", "probe"), default="shipped",
                        help="shipped: config/rules.yaml plus the probe rule; probe: that alone")
    parser.add_argument("--storm", action="store_true",
                        help="a third phase: an alert storm produced live")
    parser.add_argument("--storm-rate", type=int, default=20000,
                        help="storm events per second (4%% of them fire or resolve an alert)")
    parser.add_argument("--storm-transport", choices=("kafka", "mqtt"), default="kafka")
    parser.add_argument("--storm-per-message", type=int, default=None,
                        help="storm readings per message (default: 1 on Kafka, 10 on MQTT)")
    args = parser.parse_args()
    if args.publisher == "packets" and args.form != "single":
        parser.error("--publisher packets sends one event per message: add --form single")
    if args.storm_per_message is None:
        args.storm_per_message = 1 if args.storm_transport == "kafka" else 10
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-alerts-"))
    env = write_config(tmp, args)
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(EmbeddedPostgres())
        broker = stack.enter_context(EmbeddedMosquitto())
        kafka = (stack.enter_context(EmbeddedKafka())
                 if args.storm and args.storm_transport == "kafka" else None)
        storm_target = broker.url if args.storm else None
        env.update({"IOC_DATABASE_URL": pg.create_database("bench_alert_latency"),
                    "IOC_MQTT_URL": broker.url, "IOC_LOG_LEVEL": "WARNING",
                    "IOC_MQTT_CLIENT_ID": "bench-ioc"})
        if kafka is not None:
            asyncio.run(kafka_create_topic(kafka.bootstrap, STORM_TOPIC, BACKLOG_PARTITIONS))
            env.update({"IOC_KAFKA_BOOTSTRAP": kafka.bootstrap, "IOC_KAFKA_TOPIC": STORM_TOPIC,
                        "IOC_KAFKA_GROUP": "bench-alert-latency"})
            storm_target = f"kafka://{kafka.bootstrap}"
        svc = ServiceProcess(tmp, env)
        svc.start()
        try:
            assert svc.pid and pg.pid and broker.pid
            pids = {"service": svc.pid, "postgres": pg.pid, "mosquitto": broker.pid}
            if kafka is not None and kafka.pid:
                pids["kafka"] = kafka.pid
            result = asyncio.run(measure(args, broker, svc, storm_target, pids,
                                         env["IOC_DATABASE_URL"]))
        finally:
            svc.stop()
    ok = all(r["p99_ms"] <= GOAL_P99_MS for r in result.values())
    transport = ("Kafka, 4 partitions (tansu)" if args.storm_transport == "kafka"
                 else "MQTT QoS 1")
    storm = ({"storm_scenario": {
        "gauges": GAUGES, "every": EVERY, "rule": GAUGE_RULE, "transport": transport,
        "readings_per_message": args.storm_per_message, "transition_share": 2 / EVERY,
        "target_events_per_s": args.storm_rate}} if args.storm else {})
    path = write_result("alert_latency", {
        "goal": f"p99 <= {GOAL_P99_MS:.0f} ms, MQTT publish -> SSE frame", "met": ok,
        "batch_wait_ms": 50, "rules": args.rules, **storm, **result})
    for name, r in result.items():
        print(summary(name, r))
    print(f"goal met: {ok} -> {path}")


if __name__ == "__main__":
    main()
