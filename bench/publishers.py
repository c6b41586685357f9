"""MQTT publishers for the benchmarks: processes that write pre-encoded QoS 1 PUBLISH packets.

paho publishing one message per call tops out near 15k events/s in a process, and `ioc
simulate` near 9k one-event messages/s, below the rates the service must be measured at; a
publisher here encodes its packets (MQTT 5, each to its device's topic
``ioc/v1/events/<device>``) before it is told to go, then writes them in bulk, at most
``PUBLISH_WINDOW`` unacknowledged, either as fast as the broker takes them or paced to a rate.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from queue import Empty
from typing import Any

from ioc.fast.mqtt_wire import PacketReader
from tests.support.mqtt_wire import packet, publish, read_packet, utf8

# Below the Receive Maximum mosquitto announces (max_inflight_messages in config/mosquitto.conf).
PUBLISH_WINDOW = 10_000
# The devices are elsewhere in a deployment; here 20 publisher processes would otherwise get 20
# of every 23 time slices of the 2 cores while the service, PostgreSQL and the broker want
# them (with paho publishers, the service stored nothing until publishing was over). Niced,
# they get what the others leave.
PUBLISHER_NICE = 19
PACE_SLICE_S = 0.01
PUBACK = 4


def publish_shard(port: int, client_id: str, messages: list[tuple[str, bytes]], ready: Any,
                  go: Any, done: Any, rate: float | None = None) -> None:
    """One publisher process: connect, wait for ``go``, publish, wait for every PUBACK; puts
    its finishing time and the number of PUBLISHes left unacked on ``done``.

    With ``rate`` (messages/s), the packets due by each 10 ms slice are written at its start.
    """
    os.nice(PUBLISHER_NICE)
    packets = [publish(f"ioc/v1/events/{device}", payload, i % 65535 + 1)
               for i, (device, payload) in enumerate(messages)]
    n = len(packets)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        # CONNECT: protocol MQTT 5, clean start, keepalive 60 s, no properties, the client id.
        conn.sendall(packet(0x10, utf8("MQTT") + b"\x05\x02" + struct.pack("!H", 60) + b"\x00"
                            + utf8(client_id)))
        connack = read_packet(conn)
        if connack is None or connack[0] != 0x20 or connack[1][1] != 0:
            raise RuntimeError(f"{client_id}: no CONNACK: {connack}")
        ready.put(client_id)
        go.wait()
        reader = PacketReader()
        t0 = time.monotonic()
        sent = acked = 0
        while acked < n:
            due = n if rate is None else min(n, int((time.monotonic() - t0) * rate) + 1)
            room = min(PUBLISH_WINDOW - (sent - acked), due - sent)
            if room > 0:
                conn.sendall(b"".join(packets[sent:sent + room]))
                sent += room
            conn.settimeout(PACE_SLICE_S if rate is not None and sent < n else None)
            try:
                data = conn.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                raise RuntimeError(f"{client_id}: the broker hung up after {acked} PUBACKs")
            acked += sum(first >> 4 == PUBACK for first, _ in reader.feed(data).others)
        conn.sendall(b"\xe0\x00")  # DISCONNECT
    done.put((time.monotonic(), n - acked))


def gather(queue: Any, procs: list[Any], timeout: float) -> list[Any]:
    """One item from each publisher process; fails early when one of them died."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < len(procs):
        with contextlib.suppress(Empty):
            items.append(queue.get(timeout=0.5))
            continue
        if any(p.exitcode for p in procs) or time.monotonic() > deadline:
            raise RuntimeError(f"publishers failed: exit codes {[p.exitcode for p in procs]}")
    return items


def shards(items: list[tuple[str, bytes]], k: int) -> list[list[tuple[str, bytes]]]:
    """``k`` lists of messages, each device's messages in one list in their order."""
    devices = sorted({d for d, _ in items})
    shard_of = {d: i % k for i, d in enumerate(devices)}
    out: list[list[tuple[str, bytes]]] = [[] for _ in range(k)]
    for device, payload in items:
        out[shard_of[device]].append((device, payload))
    return out
