"""MQTT v5 packets as a broker writes them, for tests that play a byte stream to the service."""

from __future__ import annotations

import socket
import struct


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def publish(topic: str, payload: bytes, mid: int | None, *, dup: bool = False,
            properties: bytes = b"") -> bytes:
    """A PUBLISH at QoS 1 with packet id ``mid``, or at QoS 0 when ``mid`` is None."""
    qos = 0 if mid is None else 1
    first = 0x30 | (0x08 if dup else 0) | (qos << 1)
    head = utf8(topic) + (b"" if mid is None else struct.pack("!H", mid))
    return packet(first, head + varint(len(properties)) + properties + payload)


def some_properties(content_type: str = "application/json") -> bytes:
    """Payload format indicator, message expiry, content type and a user property."""
    return (b"\x01\x01" + b"\x02" + struct.pack("!I", 3600) + b"\x03" + utf8(content_type)
            + b"\x26" + utf8("gateway") + utf8("gw-01"))


CONNACK = packet(0x20, b"\x00\x00\x00")
PINGRESP = b"\xd0\x00"


def suback(mid: int) -> bytes:
    return packet(0x90, struct.pack("!H", mid) + b"\x00\x01")


def read_packet(conn: socket.socket) -> tuple[int, bytes] | None:
    """The next packet's first byte and body from a blocking socket; None at its end."""
    head = _read(conn, 1)
    if head is None:
        return None
    length = shift = 0
    while True:
        byte = _read(conn, 1)
        if byte is None:
            return None
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = _read(conn, length) if length else b""
    return None if body is None else (head[0], body)


def _read(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
