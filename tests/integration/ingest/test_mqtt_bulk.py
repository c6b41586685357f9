"""The bulk MQTT reader against paho's, end to end: the same packet stream, cut into pieces of
any size, gives the same stored rows, the same dead letters and the same acks.

A scripted broker on loopback plays the stream (duplicates with the DUP flag, QoS 0 messages,
PUBLISH properties, bad payloads, a 60 KB packet) to one `ioc run` with the accelerators on and
one with them off, each into a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.process import free_port
from tests.conftest import new_database
from tests.integration.ingest.conftest import query, wait_for_count
from tests.support.mqtt_wire import (
    CONNACK,
    PINGRESP,
    packet,
    publish,
    read_packet,
    some_properties,
    suback,
)
from tests.support.payloads import as_mqtt, water_levels
from tests.support.publish import mqtt_publish
from tests.support.service import ServiceProcess, http

PUBACK, PINGREQ, DISCONNECT, SUBSCRIBE = 4, 12, 14, 8


class ScriptedBroker:
    """Serves a subscriber: on its k-th connection CONNACK, SUBACK, then ``streams[k]`` in
    pieces of random sizes with short pauses (so that the service's reads end anywhere),
    recording the ids acked and the reason of a DISCONNECT the service sends; connections
    past the last stream are refused (closed)."""

    def __init__(self, streams: list[bytes], seed: int, *, early: bytes = b"",
                 hang_up: frozenset[int] = frozenset()) -> None:
        self.streams = streams
        self.early = early  # the first connection's, before the SUBACK: a session's queue
        self.hang_up = hang_up  # the connections closed once their stream is played
        self.rng = random.Random(seed)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.acks: list[int] = []
        self.disconnects: list[int] = []
        self.connections = 0
        self.played = [threading.Event() for _ in streams]
        self._send_lock = threading.Lock()
        self._pings = 0

    def __enter__(self) -> ScriptedBroker:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the test closed the listening socket
            while True:
                conn, _ = self.server.accept()
                self.connections += 1
                if self.connections <= len(self.streams):
                    threading.Thread(target=self._session, args=(conn, self.connections - 1),
                                     daemon=True).start()
                else:
                    conn.close()

    def _session(self, conn: socket.socket, k: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_packet(conn)  # CONNECT
        conn.sendall(CONNACK)
        if k == 0:
            self._send_in_pieces(conn, self.early)
        sub = read_packet(conn)
        assert sub is not None and sub[0] >> 4 == SUBSCRIBE
        conn.sendall(suback(int.from_bytes(sub[1][:2], "big")))
        threading.Thread(target=self._play, args=(conn, k), daemon=True).start()
        with contextlib.suppress(OSError):
            while (got := read_packet(conn)) is not None:
                kind = got[0] >> 4
                if kind == PUBACK:
                    self.acks.append(int.from_bytes(got[1][:2], "big"))
                elif kind == PINGREQ:
                    with self._send_lock:
                        if self.played[k].is_set():
                            conn.sendall(PINGRESP)
                        else:
                            self._pings += 1  # answered at the stream's end, a packet boundary
                elif kind == DISCONNECT:
                    self.disconnects.append(got[1][0] if got[1] else 0)
                    break
        conn.close()

    def _play(self, conn: socket.socket, k: int) -> None:
        with contextlib.suppress(OSError):  # the service may hang up first
            self._send_in_pieces(conn, self.streams[k])
            with self._send_lock:
                conn.sendall(PINGRESP * self._pings)
                self._pings = 0
            if k in self.hang_up:
                conn.shutdown(socket.SHUT_RDWR)
        self.played[k].set()


    def _send_in_pieces(self, conn: socket.socket, data: bytes) -> None:
        at = 0
        while at < len(data):
            size = self.rng.choice([1, 2, 3, 7, 64, 500, 1460, 4096, 20000])
            conn.sendall(data[at:at + size])
            at += size
            if self.rng.random() < 0.3:
                time.sleep(0.002)


def packet_stream() -> tuple[list[bytes], list[int]]:
    """The packets, and the ids of the QoS 1 ones (each must be acked once)."""
    items = water_levels(1500, "bulk", devices=20)
    packets: list[bytes] = []
    mids: list[int] = []

    def add(topic: str, payload: bytes, qos: int, **kw: object) -> None:
        mid = None
        if qos:
            mid = len(mids) + 1
            mids.append(mid)
        packets.append(publish(topic, payload, mid, **kw))  # type: ignore[arg-type]

    for i, (device, _, payload) in enumerate(items):
        topic = f"ioc/v1/events/{device}"
        props = some_properties() if i % 11 == 0 else b""
        add(topic, payload, 0 if i % 7 == 3 else 1, properties=props)
        if i % 50 == 10:
            add(topic, payload, 1, dup=True)  # a redelivery: stored once, acked again
        if i % 97 == 5:
            add(topic, b"{not json", 1)
        if i % 131 == 7:
            add(f"ioc/v1/events/{items[i + 1][0]}", payload, 1)  # another device's topic
    device = items[0][0]
    big = (b'{"event_id":"bulk-big","device_id":"' + device.encode()
           + b'","kind":"water_level","ts":"2026-12-08T09:00:00+07:00","value":1.5,'
           + b'"attrs":{"note":"' + b"x" * 60000 + b'"}}')
    add(f"ioc/v1/events/{device}", big, 1)
    add(f"ioc/v1/events/{device}", b"", 1)
    add("ioc/v1/events/trạm-cái-răng", b'{"device_id":"tram","kind":"rain"}', 0)
    add(f"ioc/v1/events/{device}", items[-1][2], 1)
    return packets, mids


async def stored(dsn: str) -> tuple[list[tuple], list[tuple]]:
    events = await query(dsn, "SELECT event_id, device_id, ts, kind, value, unit, attrs::text "
                              "FROM events ORDER BY event_id")
    dead = await query(dsn, "SELECT source, topic, reason, detail, raw FROM dead_letters "
                            "ORDER BY raw, reason, detail")
    return [tuple(r) for r in events], [tuple(r) for r in dead]


def run_once(tmp: Path, dsn: str, packets: list[bytes], acks: int,
             accelerate: bool) -> tuple[list[int], tuple]:
    """The first 300 packets come as a persistent session's queue does, between the CONNACK
    and the SUBACK."""
    early, stream = b"".join(packets[:300]), b"".join(packets[300:])
    with ScriptedBroker([stream], seed=7, early=early) as broker:
        (tmp / str(accelerate)).mkdir()
        svc = ServiceProcess(tmp / str(accelerate), {
            "IOC_DATABASE_URL": dsn, "IOC_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
            "IOC_MQTT_CLIENT_ID": "ioc-bulk", "IOC_ACCELERATE": str(accelerate).lower()})
        svc.start()
        try:
            assert broker.played[0].wait(60), "the stream was not played"
            deadline = time.monotonic() + 60
            while len(broker.acks) < acks and time.monotonic() < deadline:
                time.sleep(0.05)
            svc.stop()
            assert ("bulk reading on" in svc.log()) is accelerate
        finally:
            svc.kill()
        assert broker.connections == 1, svc.log()
    return broker.acks, asyncio.run(stored(dsn))


def test_bulk_reader_stores_and_acks_what_paho_does(pg_server, tmp_path: Path) -> None:
    packets, mids = packet_stream()
    fast_acks, fast_rows = run_once(tmp_path, new_database(pg_server, "mqtt_bulk_on"), packets,
                                    len(mids), accelerate=True)
    paho_acks, paho_rows = run_once(tmp_path, new_database(pg_server, "mqtt_bulk_off"), packets,
                                    len(mids), accelerate=False)
    assert Counter(paho_acks) == Counter(mids), "paho acked other ids than the QoS 1 ones"
    assert Counter(fast_acks) == Counter(mids), "the bulk reader acked other ids than paho"
    events, dead = fast_rows
    assert len(events) == 1501 and len(dead) >= 20, (len(events), len(dead))
    assert fast_rows == paho_rows


def test_a_broker_that_breaks_the_protocol_or_hangs_up_is_reconnected_to(
        pg_server, tmp_path: Path) -> None:
    """Bytes that are not MQTT end the connection with a DISCONNECT (0x82, protocol error); a
    broker's DISCONNECT and hang-up end it too; each time the service reconnects, and what the
    broker delivers again is stored once."""
    items = water_levels(600, "bulkfault", devices=10)
    packets = [publish(f"ioc/v1/events/{device}", payload, i + 1)
               for i, (device, _, payload) in enumerate(items)]
    qos2 = b"\x34" + packets[0][1:]  # the same PUBLISH at QoS 2, which a QoS 1 subscription never gets
    streams = [
        b"".join(packets[:200]) + qos2 + b"".join(packets[200:300]),
        b"".join(packets[:400]) + packet(0xE0, b"\x8e\x00"),  # "session taken over"
        b"".join(packets),
    ]
    dsn = new_database(pg_server, "mqtt_bulk_fault")
    with ScriptedBroker(streams, seed=3, hang_up=frozenset({1})) as broker:
        svc = ServiceProcess(tmp_path, {"IOC_DATABASE_URL": dsn,
                                        "IOC_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
                                        "IOC_MQTT_CLIENT_ID": "ioc-bulk-fault"})
        svc.start()
        try:
            assert broker.played[2].wait(60), svc.log()
            ids = wait_for_count(dsn, "bulkfault", len(items), timeout=60)
            assert sorted(ids) == sorted(event_id for _, event_id, _ in items)
            log = svc.log()
            assert "not MQTT: a PUBLISH at QoS 2" in log
            assert "closing the connection: Session taken over (0x8e)" in log
            assert svc.running()
        finally:
            svc.kill()
    assert broker.disconnects[:1] == [0x82], broker.disconnects
    assert broker.connections == 3


def tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it (openssl, as an operator
    would make them): (ca.crt, server.crt, server.key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ioc test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return d / "ca.crt", d / "server.crt", d / "server.key"


def test_mqtts_is_read_in_bulk_through_tls(pg_server, tmp_path: Path) -> None:
    """The bulk reader on a TLS connection (TLS may hold decrypted bytes the socket's
    readiness never shows): every event stored once, every message acked."""
    ca, cert, key = tls_files(tmp_path)
    (tmp_path / "again").mkdir()
    tls_port = free_port()
    with EmbeddedMosquitto(extra=[f"listener {tls_port} 127.0.0.1", f"cafile {ca}",
                                  f"certfile {cert}", f"keyfile {key}"]) as broker:
        env = {"IOC_DATABASE_URL": new_database(pg_server, "mqtt_bulk_tls"),
               "IOC_MQTT_URL": f"mqtts://127.0.0.1:{tls_port}",
               "IOC_MQTT_CLIENT_ID": "ioc-bulk-tls", "SSL_CERT_FILE": str(ca)}
        dsn = env["IOC_DATABASE_URL"]
        svc = ServiceProcess(tmp_path, env).start()
        try:
            items = water_levels(20000, "bulktls")
            mqtt_publish(broker.url, as_mqtt(items))
            ids = wait_for_count(dsn, "bulktls", len(items), timeout=90)
            assert sorted(ids) == sorted(event_id for _, event_id, _ in items)
            assert "bulk reading on" in svc.log() and svc.running()
        finally:
            svc.stop()
        # Every message was acked: the session has nothing to deliver to the next start.
        again = ServiceProcess(tmp_path / "again", env).start()
        try:
            time.sleep(3)
            _, metrics = http("GET", f"{again.url}/metrics")
            assert 'ioc_events_received_total{source="mqtt"}' not in str(metrics)
        finally:
            again.kill()
