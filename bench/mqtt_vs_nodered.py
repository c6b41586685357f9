"""MQTT → PostgreSQL, the service against Node-RED: same broker, database and payloads, one run.

    .venv/bin/python bench/mqtt_vs_nodered.py [--events 200000] [--rounds 3]
                                              [--only service|nodered]

The comparison of issue #27. Node-RED (node-red 4.1.8 — 5.x wants node >= 22.9 — and pg 8.23.1,
installed with npm on first use into ~/.cache/ioc-bench/nodered, outside the repository) runs
as a child process with its own userDir and a flow written here: an `mqtt in` node (QoS 1,
`ioc/v1/events/#`, MQTT 5, fixed client id, persistent session) → a function node that parses
each payload and batches the rows, flushing at 1,000 rows or 100 ms with one multi-row
`INSERT ... ON CONFLICT DO NOTHING` through a pg Pool (its defaults: up to 10 connections,
opened on demand). It stores into the service's own schema (migrated by the script): the same
row (ts, device_id, event_id, kind, value, unit, attrs), the same daily partitions and unique
key (ts, device_id, event_id), so that a replay is a no-op for both. Unlike the service,
Node-RED acknowledges a message as it arrives, before its row is stored, and does no
validation, device check or rules.

Each phase of each contender has a new mosquitto (config/mosquitto.conf tuning) and a new
database on one PostgreSQL server (dropped afterwards): on the broker that had just carried
the live burst, the service drained at 31-38k events/s instead of 95k, with 2-3x the CPU per
event (its own and PostgreSQL's), a cost of the live phase, not of the drain. The payloads are
bench/ingest.py's `payloads(n, seed=2)`. Rounds alternate the contenders (service, Node-RED,
service, ...), as the shared machine's speed drifts by ±25%. Per contender and round:

- live: the contender is running and subscribed; 20 publisher processes publish the n events
  as fast as they can: each takes a 20th of the devices, encodes its QoS 1 PUBLISH packets to
  `ioc/v1/events/<device>` beforehand and writes them in bulk (as `mosquitto_pub -l` does, which
  has one topic per process), at most 10,000 unacknowledged; they are niced (paho publishers
  were the bottleneck, at ~15k events/s). events/s = stored rows / time from the start of
  publishing to the last stored row; also the time to publish (every PUBACK received), the
  first-row latency (publishing start → first stored row) and the rows stored 1 s after
  publishing started.
- drain: with the contender stopped, the n events are queued for its persistent session
  (bench/ingest.py `mosquitto_backlog`), then it starts; events/s from the first stored row to
  the last.

The stored rows are the events table's count(*) (the same query for both), polled every
20 ms until the first row, then every 50 ms. CPU per event is the user+system CPU of the
contender's process and children over the phase (from publishing start, or from just before
the first stored row, to the last), over n; PostgreSQL's and the broker's the same way. RSS is
sampled at each poll. The result is the median per contender over the rounds; the ratios
service/Node-RED are those of the medians (goal: >= 2x live and drain), and each round lists
its own.

Writes bench/results/mqtt_vs_nodered.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import psutil

from bench.common import checkpoint, write_result
from bench.ingest import cpu_seconds, mosquitto_backlog, payloads
from bench.publishers import PUBLISHER_NICE, gather, publish_shard, shards
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.embedded.process import ServerProcess, free_port
from ioc.storage.migrations import migrate_url
from tests.support.service import ServiceProcess

NODERED_PACKAGES = {"node-red": "4.1.8", "pg": "8.23.1"}
PUBLISHERS = 20
FIRST_ROW_POLL_S = 0.02
COUNT_POLL_S = 0.05
STALL_S = 30.0

# The function node: "On Start" makes the pool and the batch, "On Message" adds a row and flushes
# at 1,000 rows or 100 ms after the first row of a batch, "On Stop" flushes and closes the pool.
NODERED_INIT = r"""
const pg = global.get("pg");
const state = {rows: [], timer: null, pool: new pg.Pool({connectionString: global.get("pgUrl")})};
state.pool.on("error", (err) => node.error("pg pool: " + err.message));
state.flush = function () {
    if (state.timer !== null) { clearTimeout(state.timer); state.timer = null; }
    const rows = state.rows;
    if (rows.length === 0) { return Promise.resolve(); }
    state.rows = [];
    const values = [];
    const params = [];
    for (let i = 0; i < rows.length; i++) {
        const e = rows[i];
        const k = i * 7;
        values.push("($" + (k + 1) + ",$" + (k + 2) + ",$" + (k + 3) + ",$" + (k + 4) + ",$" +
                    (k + 5) + ",$" + (k + 6) + ",$" + (k + 7) + ")");
        params.push(e.ts, e.device_id, e.event_id, e.kind, e.value, e.unit ?? null,
                    e.attrs === undefined ? null : JSON.stringify(e.attrs));
    }
    return state.pool.query(
        "INSERT INTO events (ts, device_id, event_id, kind, value, unit, attrs) VALUES " +
        values.join(",") + " ON CONFLICT DO NOTHING", params
    ).catch((err) => node.error("insert: " + err.message));
};
context.set("state", state);
"""
NODERED_FUNC = r"""
const state = context.get("state");
let event;
try {
    event = JSON.parse(msg.payload);
} catch (err) {
    node.warn("not JSON: " + err.message);
    return null;
}
state.rows.push(event);
if (state.rows.length >= 1000) {
    state.flush();
} else if (state.timer === null) {
    state.timer = setTimeout(state.flush, 100);
}
return null;
"""
NODERED_FINAL = r"""
const state = context.get("state");
return state.flush().then(() => state.pool.end());
"""


# -- Node-RED ------------------------------------------------------------------------------------

def nodered_home() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ioc-bench" / "nodered"


def installed_version(home: Path, package: str) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((home / "node_modules" / package / "package.json").read_text())["version"]
    return None


def install_nodered() -> Path:
    """node-red and pg at the pinned versions in the cache directory (npm, on first use only)."""
    home = nodered_home()
    if all(installed_version(home, p) == v for p, v in NODERED_PACKAGES.items()):
        return home
    if not shutil.which("npm"):
        raise RuntimeError("npm not found: Node-RED needs node >= 18.5 and npm")
    home.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "ioc-bench-nodered", "private": True, "dependencies": NODERED_PACKAGES}
    (home / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"installing {NODERED_PACKAGES} into {home} (first use)", flush=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home,
                   check=True, timeout=900)
    return home


def nodered_flows(broker_port: int, client_id: str) -> list[dict[str, Any]]:
    return [
        {"id": "bench-tab", "type": "tab", "label": "ioc bench"},
        {"id": "bench-broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1",
         "port": str(broker_port), "clientid": client_id, "autoConnect": True, "usetls": False,
         "protocolVersion": "5", "keepalive": "60", "cleansession": False,
         "sessionExpiry": "3600", "autoUnsubscribe": False},
        {"id": "bench-in", "type": "mqtt in", "z": "bench-tab", "name": "events",
         "topic": "ioc/v1/events/#", "qos": "1", "datatype": "utf8", "broker": "bench-broker",
         "nl": False, "rap": True, "rh": 0, "inputs": 0, "wires": [["bench-insert"]]},
        {"id": "bench-insert", "type": "function", "z": "bench-tab", "name": "batch insert",
         "func": NODERED_FUNC, "initialize": NODERED_INIT, "finalize": NODERED_FINAL,
         "outputs": 0, "timeout": 0, "noerr": 0, "libs": [], "wires": []},
    ]


def nodered_settings(home: Path) -> str:
    pg_module = json.dumps(str(home / "node_modules" / "pg"))
    return f"""module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {free_port()},
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    functionExternalModules: false,
    functionGlobalContext: {{pg: require({pg_module}), pgUrl: process.env.BENCH_PG_URL}},
    logging: {{console: {{level: "info", metrics: false, audit: false}}}},
    diagnostics: {{enabled: false, ui: false}},
    runtimeState: {{enabled: false, ui: false}},
    externalModules: {{autoInstall: false}},
}};
"""


class NodeRed:
    name = "nodered"
    client_id = "bench-nodered"

    def __init__(self, home: Path, tmp: Path) -> None:
        self.home = home
        self.tmp = tmp
        self.runs = 0
        self._server: ServerProcess | None = None

    def prepare(self, dsn: str) -> None:
        """The service's schema: the same events table, key and partitions as the service's."""
        asyncio.run(migrate_url(dsn, timescaledb="off"))

    def start(self, dsn: str, broker: EmbeddedMosquitto) -> None:
        self.runs += 1
        user_dir = self.tmp / f"nodered-{self.runs}"
        user_dir.mkdir()
        (user_dir / "settings.js").write_text(nodered_settings(self.home))
        (user_dir / "flows.json").write_text(json.dumps(nodered_flows(broker.port, self.client_id),
                                                        indent=1))
        log = user_dir / "nodered.log"
        self._server = ServerProcess(
            "node-red", ["node", str(self.home / "node_modules" / "node-red" / "red.js"),
                         "--userDir", str(user_dir), "--settings", str(user_dir / "settings.js")],
            log, env={"BENCH_PG_URL": dsn, "NODE_ENV": "production"})
        self._server.start(lambda: "Connected to broker" in log.read_text(errors="replace"),
                           timeout=120)

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server else None

    def errors(self) -> list[str]:
        """The errors, and the nodes' warnings, Node-RED logged in its latest run."""
        if not self._server:
            return []
        text = self._server.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if "[error]" in line or "[warn] [" in line]

    def stop(self) -> None:
        if self._server:
            self._server.stop(timeout=60)


class Service:
    name = "service"
    client_id = "bench-ioc"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs = 0
        self._svc: ServiceProcess | None = None

    def prepare(self, dsn: str) -> None:
        """Nothing: `ioc run` migrates its database itself."""

    def start(self, dsn: str, broker: EmbeddedMosquitto) -> None:
        self.runs += 1
        logs = self.tmp / f"service-{self.runs}"
        logs.mkdir()
        self._svc = ServiceProcess(logs, {"IOC_DATABASE_URL": dsn, "IOC_MQTT_URL": broker.url,
                                              "IOC_MQTT_CLIENT_ID": self.client_id,
                                              "IOC_LOG_LEVEL": "WARNING"})
        self._svc.start()

    @property
    def pid(self) -> int | None:
        return self._svc.pid if self._svc else None

    def errors(self) -> list[str]:
        """The warnings and errors the service logged in its latest run (but the one that
        IOC_AUTH=off always logs)."""
        lines = self._svc.log().splitlines() if self._svc else []
        return [line for line in lines if "IOC_AUTH=off" not in line]

    def stop(self) -> None:
        if self._svc:
            self._svc.stop()


class Contender(Protocol):
    name: str
    client_id: str

    def prepare(self, dsn: str) -> None: ...
    def start(self, dsn: str, broker: EmbeddedMosquitto) -> None: ...
    @property
    def pid(self) -> int | None: ...
    def errors(self) -> list[str]: ...
    def stop(self) -> None: ...


# -- measuring -----------------------------------------------------------------------------------

@dataclass
class Sample:
    t: float  # time.monotonic()
    stored: int
    cpu: float  # the contender's CPU seconds so far (0 before it runs)
    rss: int  # the contender's RSS, children included
    pg_cpu: float
    broker_cpu: float


def rss_bytes(pid: int) -> int:
    proc = psutil.Process(pid)
    total = 0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class Poller(threading.Thread):
    """Samples the events' count(*) with the contender's CPU and RSS until ``target`` rows.

    Every 20 ms until the first row (the count of an empty table costs nothing), then every
    50 ms, and once at each of ``marks`` (monotonic times). Ends at ``target``, or when the count
    has not moved for STALL_S.
    """

    def __init__(self, dsn: str, pid: Callable[[], int | None], pg_pid: int, broker_pid: int,
                 target: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.pid = dsn, pid
        self.pg_pid, self.broker_pid = pg_pid, broker_pid
        self.target = target
        self.marks: list[float] = []
        self.samples: list[Sample] = []
        self.connected = threading.Event()
        self._begin = threading.Event()
        self.error: BaseException | None = None

    def begin(self, marks: Sequence[float] = ()) -> None:
        """Start sampling (once connected); ``marks`` are monotonic times to sample at."""
        if not self.connected.wait(30):
            raise RuntimeError("the poller did not connect to PostgreSQL")
        self.marks = sorted(marks)
        self._begin.set()

    def run(self) -> None:
        try:
            asyncio.run(self._poll())
        except BaseException as err:  # reported by the thread that joins
            self.error = err
            self.connected.set()

    async def _count(self, conn: asyncpg.Connection) -> int:
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        except asyncpg.UndefinedTableError:  # the service has not migrated its database yet
            return 0

    def _sample(self, stored: int) -> Sample:
        pid = self.pid()
        cpu = rss = 0
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                cpu, rss = cpu_seconds(pid), rss_bytes(pid)
        return Sample(time.monotonic(), stored, cpu, rss, cpu_seconds(self.pg_pid),
                      cpu_seconds(self.broker_pid))

    async def _poll(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            self.connected.set()
            self._begin.wait()
            moved = time.monotonic()
            while True:
                s = self._sample(await self._count(conn))
                if self.samples and s.stored != self.samples[-1].stored:
                    moved = s.t
                self.samples.append(s)
                if s.stored >= self.target or s.t - moved > STALL_S:
                    return
                wake = s.t + (COUNT_POLL_S if s.stored else FIRST_ROW_POLL_S)
                while self.marks and self.marks[0] <= s.t:
                    self.marks.pop(0)
                if self.marks:
                    wake = min(wake, self.marks[0])
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
        finally:
            await conn.close()

    def finish(self) -> list[Sample]:
        self.join()
        if self.error:
            raise self.error
        return self.samples


def phase_figures(samples: list[Sample], since: Sample, n: int) -> dict[str, Any]:
    """What the contender did from the ``since`` sample to the last."""
    last = samples[-1]
    seconds = last.t - since.t
    rss = [s.rss for s in samples if s.t >= since.t and s.rss]
    timeline, next_t = [], since.t
    for s in samples:
        if s.t >= next_t or s is last:
            timeline.append([round(s.t - since.t, 2), s.stored])
            next_t = s.t + 0.5
    return {"events": last.stored, "seconds": round(seconds, 2),
            "events_per_s": round(last.stored / seconds) if seconds > 0 else 0,
            "cpu_us_per_event": round((last.cpu - since.cpu) / n * 1e6, 2),
            "postgres_cpu_us_per_event": round((last.pg_cpu - since.pg_cpu) / n * 1e6, 2),
            "broker_cpu_us_per_event": round((last.broker_cpu - since.broker_cpu) / n * 1e6, 2),
            "rss_mb": {"max": round(max(rss, default=0) / 2**20),
                       "last": round((rss[-1] if rss else 0) / 2**20)},
            "timeline_s_stored": timeline}


def database(pg: EmbeddedPostgres, contender: Contender, name: str) -> str:
    dsn = pg.create_database(name)
    contender.prepare(dsn)
    asyncio.run(checkpoint(dsn))
    return dsn


def live(pg: EmbeddedPostgres, broker: EmbeddedMosquitto, contender: Contender,
         items: list[tuple[str, bytes]], name: str) -> dict[str, Any]:
    """The contender subscribed while 20 publishers send the n events at once."""
    n = len(items)
    assert pg.pid is not None and broker.pid is not None
    dsn = database(pg, contender, name)
    # Its session exists before it starts, so that nothing published is lost to a late SUBSCRIBE.
    mosquitto_backlog(broker, contender.client_id, [])
    ctx = mp.get_context("fork")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    contender.start(dsn, broker)
    procs = []
    try:
        for k, shard in enumerate(shards(items, PUBLISHERS)):
            procs.append(ctx.Process(target=publish_shard, daemon=True,
                                     args=(broker.port, f"bench-pub-{name}-{k}", shard, ready,
                                           go, done)))
            procs[-1].start()
        gather(ready, procs, timeout=60)
        poller = Poller(dsn, lambda: contender.pid, pg.pid, broker.pid, n)
        poller.start()
        poller.connected.wait(30)
        t0 = time.monotonic()
        poller.begin(marks=[t0 + 1.0])
        go.set()
        finished = gather(done, procs, timeout=900)
        samples = poller.finish()
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        contender.stop()
        pg.drop_database(name)
    publish_s = max(t for t, _ in finished) - t0
    first = next((s for s in samples if s.stored), samples[-1])
    at_1s = next((s for s in samples if s.t >= t0 + 1.0), samples[-1])
    result = phase_figures(samples, samples[0], n)
    return {**result, "publish_s": round(publish_s, 2),
            "publish_events_per_s": round(n / publish_s),
            "unacked_publishes": sum(m for _, m in finished),
            "first_row_ms": round((first.t - t0) * 1000), "rows_at_first_row": first.stored,
            "stored_at_1s": at_1s.stored,
            "errors": contender.errors()[:5]}


def drain(pg: EmbeddedPostgres, broker: EmbeddedMosquitto, contender: Contender,
          items: list[tuple[str, bytes]], name: str) -> dict[str, Any]:
    """The n events queued for the stopped contender's session, then drained by it."""
    n = len(items)
    assert pg.pid is not None and broker.pid is not None
    dsn = database(pg, contender, name)
    t = time.monotonic()
    mosquitto_backlog(broker, contender.client_id, items)
    queue_s = time.monotonic() - t
    poller = Poller(dsn, lambda: contender.pid, pg.pid, broker.pid, n)
    try:
        poller.start()
        poller.begin()
        t = time.monotonic()
        contender.start(dsn, broker)
        samples = poller.finish()
    finally:
        contender.stop()
        pg.drop_database(name)
    # From just before the first stored row: the contender's start-up CPU is not the drain's.
    i = next((i for i, s in enumerate(samples) if s.stored), len(samples) - 1)
    return {**phase_figures(samples, samples[max(0, i - 1)], n),
            "queue_s": round(queue_s, 2), "start_to_first_row_s": round(samples[i].t - t, 2),
            "errors": contender.errors()[:5]}


# -- the run -------------------------------------------------------------------------------------

def median_of(rounds: list[dict[str, Any]], phase: str, key: str) -> float:
    return statistics.median(r[phase][key] for r in rounds)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = ("cpu_us_per_event", "postgres_cpu_us_per_event", "broker_cpu_us_per_event")
    keys = {"live": ("events_per_s", "first_row_ms", "stored_at_1s", "publish_s", *cpu),
            "drain": ("events_per_s", "start_to_first_row_s", *cpu)}
    out: dict[str, Any] = {phase: {k: median_of(rounds, phase, k) for k in ks}
                           for phase, ks in keys.items()}
    for phase in keys:
        out[phase]["rss_max_mb"] = statistics.median(r[phase]["rss_mb"]["max"] for r in rounds)
    return out


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    head = (f"{'':14s} {'live ev/s':>10s} {'publish s':>9s} {'1st row ms':>10s} {'at 1 s':>7s} "
            f"{'CPU µs/ev':>9s} {'PG µs/ev':>8s} {'RSS MB':>6s} | {'drain ev/s':>10s} "
            f"{'CPU µs/ev':>9s} {'PG µs/ev':>8s} {'RSS MB':>6s}")
    lines = [head, "-" * len(head)]
    for name, rounds in results.items():
        for i, r in enumerate(rounds, 1):
            lv, dr = r["live"], r["drain"]
            lines.append(
                f"{name + ' #' + str(i):14s} {lv['events_per_s']:>10,} {lv['publish_s']:>9.2f} "
                f"{lv['first_row_ms']:>10,} {lv['stored_at_1s']:>7,} {lv['cpu_us_per_event']:>9.1f} "
                f"{lv['postgres_cpu_us_per_event']:>8.1f} {lv['rss_mb']['max']:>6} | "
                f"{dr['events_per_s']:>10,} {dr['cpu_us_per_event']:>9.1f} "
                f"{dr['postgres_cpu_us_per_event']:>8.1f} {dr['rss_mb']['max']:>6}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("service", "nodered"))
    args = parser.parse_args()
    # `timeout` and the like send SIGTERM: unwind, so that every server started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-"))
    contenders: list[Contender] = []
    if args.only != "nodered":
        contenders.append(Service(tmp))
    if args.only != "service":
        contenders.append(NodeRed(install_nodered(), tmp))
    items = payloads(args.events, seed=2)
    results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
    with EmbeddedPostgres() as pg:
        for i in range(1, args.rounds + 1):
            for c in contenders:
                r = {}
                for phase, run in (("live", live), ("drain", drain)):
                    # A new broker for each phase: on the broker that had just carried the live
                    # burst, the service drained at 31-38k events/s instead of 95k.
                    with EmbeddedMosquitto() as broker:
                        r[phase] = run(pg, broker, c, items, f"bench_{c.name}_{i}_{phase}")
                results[c.name].append(r)
                print(f"round {i} {c.name}: live {r['live']['events_per_s']:,} ev/s "
                      f"(first row {r['live']['first_row_ms']} ms), "
                      f"drain {r['drain']['events_per_s']:,} ev/s", flush=True)
                for line in r["live"]["errors"] + r["drain"]["errors"]:
                    print(f"  {c.name}: {line}", flush=True)
    medians = {name: summary(rounds) for name, rounds in results.items()}
    out: dict[str, Any] = {
        "goals": {"live": ">= 2x Node-RED's events/s (medians)", "drain": ">= 2x Node-RED's"},
        "events": args.events, "publishers": PUBLISHERS, "publisher_nice": PUBLISHER_NICE,
        "versions": {"node": subprocess.run(["node", "--version"], capture_output=True,
                                            text=True, check=False).stdout.strip(),
                     **({p: installed_version(nodered_home(), p) for p in NODERED_PACKAGES}
                        if args.only != "service" else {})},
        "medians": medians,
    }
    if len(results) == 2:
        svc, red = results["service"], results["nodered"]
        out["ratios_service_vs_nodered"] = {
            phase: round(medians["service"][phase]["events_per_s"]
                         / medians["nodered"][phase]["events_per_s"], 2)
            for phase in ("live", "drain")}
        for s, r in zip(svc, red, strict=True):
            s["vs_nodered_same_round"] = {
                phase: round(s[phase]["events_per_s"] / r[phase]["events_per_s"], 2)
                for phase in ("live", "drain")}
    out["rounds"] = results
    path = write_result("mqtt_vs_nodered", out)
    print(table(results))
    for name, m in medians.items():
        print(f"median {name}: live {m['live']['events_per_s']:,.0f} ev/s, first row "
              f"{m['live']['first_row_ms']:.0f} ms, drain {m['drain']['events_per_s']:,.0f} ev/s")
    if "ratios_service_vs_nodered" in out:
        ratios = out["ratios_service_vs_nodered"]
        print(f"service / Node-RED: live {ratios['live']}x, drain {ratios['drain']}x (goal >= 2x)")
    print(f"-> {path}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
