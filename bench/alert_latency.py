"""Alert latency end to end: an event published on MQTT → its alert on the SSE live feed.

    .venv/bin/python bench/alert_latency.py [--probes 300] [--load 20000] [--form batch]

`ioc run` (a real child process) with PostgreSQL and mosquitto on loopback, the shipped rules
plus one probe rule (``kind: bench_probe``, fires on the first reading above 100, no ``for``).
An SSE client in this process holds ``GET /api/v1/alerts/stream`` open; a probe is one QoS 1
publish of a firing reading for a device of its own, and its latency is the time from just
before the publish to the arrival of the matching ``fired`` frame, on one monotonic clock.

Two phases: no other load, then with ``ioc simulate`` publishing ``--load`` events/s of
background readings (``--form batch``: JSON arrays of ``--batch-size`` events per message, as
field gateways send; ``single``: one event per message). The stored rate reached during the
loaded phase is reported from the service's ``ioc_events_stored_total``, and beside each phase
the service's own ``ioc_alert_latency_seconds`` (message taken from the broker → alert on the
feed; bucket bounds), which tells broker-side queueing from time spent in the service.
Goal: p99 <= 250 ms.
Writes bench/results/alert_latency.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import write_result
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
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


class Probes:
    """Publishes probe readings and matches them with frames from the SSE stream."""

    def __init__(self, broker: EmbeddedMosquitto, api: str) -> None:
        self.api = api
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.frames = 0  # every alert change received, probes or not
        self.reconnects = 0
        self._arrived = asyncio.Event()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="bench-probe")
        self.client.on_connect = lambda *a: self._ready.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("probe publisher could not connect")

    async def listen(self, subscribed: asyncio.Event) -> None:
        """Reads the stream like a browser's EventSource: reconnects with Last-Event-ID."""
        last_id: str | None = None
        async with httpx.AsyncClient(timeout=None) as client:
            while True:
                headers = {"Last-Event-ID": last_id} if last_id else {}
                try:
                    async with client.stream("GET", f"{self.api}/api/v1/alerts/stream",
                                             headers=headers) as resp:
                        resp.raise_for_status()
                        async for line in resp.aiter_lines():
                            if line.startswith("retry:"):
                                subscribed.set()
                            elif line.startswith("id: "):
                                last_id = line[4:]
                            elif line.startswith("data: "):
                                self.frames += 1
                                self._frame(line[6:])
                except httpx.HTTPError:
                    pass
                self.reconnects += 1

    def _frame(self, data: str) -> None:
        now = time.monotonic()
        alert = json.loads(data)
        if alert["rule_id"] == "bench-probe" and alert["change"] == "fired":
            self.seen.setdefault(alert["device_id"], now)
            self._arrived.set()

    async def run(self, phase: str, n: int, interval_s: float) -> dict:
        for i in range(n):
            device = f"bench-{phase}-{i:05d}"
            body = json.dumps({"device_id": device, "kind": "bench_probe", "value": 150,
                               "ts": int(time.time() * 1000)})
            self.sent[device] = time.monotonic()
            self.client.publish(f"ioc/v1/events/{device}", body, qos=1)
            await asyncio.sleep(interval_s)
        deadline = time.monotonic() + 30
        mine = [d for d in self.sent if d.startswith(f"bench-{phase}-")]
        while any(d not in self.seen for d in mine) and time.monotonic() < deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 1.0)
        lat = sorted((self.seen[d] - self.sent[d]) * 1000 for d in mine if d in self.seen)
        return {"probes": n, "received": len(lat), "p50_ms": round(statistics.median(lat), 1),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
                "max_ms": round(lat[-1], 1), "mean_ms": round(statistics.fmean(lat), 1)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def latency_buckets(url: str) -> dict[float, float]:
    """The service's ioc_alert_latency_seconds histogram: upper bound -> cumulative count."""
    status, body = http("GET", f"{url}/metrics", timeout=5)
    found = re.findall(r'^ioc_alert_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', body, re.M)
    return {float(le): float(n) for le, n in found} if status == 200 else {}


def service_quantiles(before: dict[float, float], after: dict[float, float]) -> dict:
    """p50/p99 upper bucket bounds of received -> published on the feed, inside the service."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    out: dict = {"alerts": int(total)}
    for name, q in (("p50_le_ms", 0.5), ("p99_le_ms", 0.99)):
        le = next((le for le, n in delta if total and n >= q * total), float("inf"))
        out[name] = le * 1000
    return out


def stored_total(url: str) -> float:
    status, body = http("GET", f"{url}/metrics", timeout=5)
    m = re.search(r"^ioc_events_stored_total (\S+)$", body, re.M) if status == 200 else None
    return float(m.group(1)) if m else 0.0


async def measure(args: argparse.Namespace, broker: EmbeddedMosquitto, svc: ServiceProcess) -> dict:
    probes = Probes(broker, svc.url)
    subscribed = asyncio.Event()
    listener = asyncio.create_task(probes.listen(subscribed))
    await asyncio.wait_for(subscribed.wait(), 30)
    result: dict = {}
    try:
        await probes.run("warmup", 20, 0.05)
        hist = await asyncio.to_thread(latency_buckets, svc.url)
        result["idle"] = await probes.run("idle", args.probes, args.interval)
        hist_after = await asyncio.to_thread(latency_buckets, svc.url)
        result["idle"]["in_service"] = service_quantiles(hist, hist_after)
        duration = args.probes * args.interval + 40
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ioc.cli", "simulate", "--mqtt", broker.url,
            "--rate", str(args.load), "--duration", f"{duration:.0f}s", "--devices", "2000",
            "--form", args.form, "--batch-size", str(args.batch_size), "--seed", "7",
            "--client-id", "bench-background", cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(10)  # reach the steady state
            before, t0 = await asyncio.to_thread(stored_total, svc.url), time.monotonic()
            frames, reconnects = probes.frames, probes.reconnects
            hist = await asyncio.to_thread(latency_buckets, svc.url)
            loaded = await probes.run("loaded", args.probes, args.interval)
            after = await asyncio.to_thread(stored_total, svc.url)
            loaded["in_service"] = service_quantiles(
                hist, await asyncio.to_thread(latency_buckets, svc.url))
            elapsed = time.monotonic() - t0
            stored_rate = (after - before) / elapsed
            loaded["alert_changes_per_s"] = round((probes.frames - frames) / elapsed)
            loaded["sse_reconnects"] = probes.reconnects - reconnects
        finally:
            sim.terminate()
            await sim.wait()
        loaded["background_target_events_per_s"] = args.load
        loaded["background_stored_events_per_s"] = round(stored_rate)
        loaded["background_form"] = (f"{args.form} ({args.batch_size} events per message)"
                                     if args.form == "batch" else args.form)
        result["loaded"] = loaded
    finally:
        listener.cancel()
        probes.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--load", type=int, default=20000, help="background events per second")
    parser.add_argument("--form", choices=("batch", "single"), default="batch")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--rules", choices=("shipped", "probe"), default="shipped",
                        help="shipped: config/rules.yaml plus the probe rule; probe: that alone")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ioc-bench-alerts-"))
    rules = tmp / "rules.yaml"
    shipped = (REPO / "config" / "rules.yaml").read_text(encoding="utf-8").rstrip()
    rules.write_text((shipped if args.rules == "shipped" else "rules:") + "\n" + PROBE_RULE,
                     encoding="utf-8")
    with EmbeddedPostgres() as pg, EmbeddedMosquitto() as broker:
        dsn = pg.create_database("bench_alert_latency")
        svc = ServiceProcess(tmp, {"IOC_DATABASE_URL": dsn, "IOC_MQTT_URL": broker.url,
                                   "IOC_RULES_FILE": str(rules), "IOC_LOG_LEVEL": "WARNING",
                                   "IOC_MQTT_CLIENT_ID": "bench-ioc"})
        svc.start()
        try:
            result = asyncio.run(measure(args, broker, svc))
        finally:
            svc.stop()
    ok = all(r["p99_ms"] <= GOAL_P99_MS for r in result.values())
    path = write_result("alert_latency", {
        "goal": f"p99 <= {GOAL_P99_MS:.0f} ms, MQTT publish -> SSE frame", "met": ok,
        "batch_wait_ms": 50, "rules": args.rules, **result})
    for name, r in result.items():
        print(f"{name}: {r}")
    print(f"goal met: {ok} -> {path}")


if __name__ == "__main__":
    main()
