"""The MQTT v5 data path in bulk: PUBLISH packets split out of whole socket reads, PUBACKs of a
committed batch built as one buffer.

Reference: paho-mqtt, which reads a packet with three ``recv`` calls and a dozen Python calls
(``loop_read`` → ``_packet_read`` → ``_handle_publish`` → an ``MQTTMessage`` and its properties)
and acks it with one queued packet each (``Client.ack``). The MQTT source runs paho for the
whole connection when the accelerators are off, and for the connection's set-up either way
(TLS, credentials, CONNECT, CONNACK, SUBSCRIBE); from the CONNACK on it reads the socket
itself through :class:`PacketReader` and writes acks with :func:`pubacks`.

Only what a subscriber at QoS 1 receives is understood: PUBLISH (QoS 0 or 1), SUBACK, PINGRESP
and DISCONNECT; other packets are returned whole for the caller to refuse. Topic aliases are not
(the service announces no Topic Alias Maximum, so the broker may not use them); PUBLISH
properties are skipped, as the source never read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PUBLISH, SUBACK, PINGRESP, DISCONNECT = 3, 9, 13, 14
PINGREQ = b"\xc0\x00"
TOPIC_CACHE_MAX = 65536  # distinct topics kept decoded; a flood of new topics empties it


class ProtocolError(ValueError):
    """The broker's bytes are not MQTT: the connection must be dropped (and the broker
    redelivers what was not acked)."""


@dataclass(slots=True)
class Packets:
    """What one read brought, in arrival order per column.

    ``mids`` holds the packet ids of the QoS 1 messages (QoS 0 ones have none, and are never
    acked); ``others`` the first byte and body of every packet that is not a PUBLISH.
    """

    payloads: list[bytes] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    others: list[tuple[int, bytes]] = field(default_factory=list)


class PacketReader:
    """Splits the byte stream of one connection into packets; keeps an incomplete tail."""

    def __init__(self) -> None:
        self._tail = bytearray()
        self._need = 0  # bytes the tail must reach before its first packet is whole
        self._topics: dict[bytes, str] = {}

    def feed(self, chunk: bytes) -> Packets:
        """The packets completed by ``chunk``. Raises :class:`ProtocolError` on bytes that
        cannot be MQTT; the reader is then unusable (the connection is dropped)."""
        out = Packets()
        if self._tail:
            self._tail += chunk
            if len(self._tail) < self._need:
                return out  # a large packet still arriving: no re-parse of its start
            data = bytes(self._tail)
            self._tail.clear()
        else:
            data = chunk
        used, need = self._split(data, out)
        if used < len(data):
            self._tail += data[used:]
            self._need = need - used
        return out

    def _split(self, data: bytes, out: Packets) -> tuple[int, int]:
        """Whole packets of ``data`` into ``out``; how many bytes they took, and the length
        the rest must reach to hold its next packet."""
        payloads, topics, mids, others = out.payloads, out.topics, out.mids, out.others
        cache = self._topics
        n = len(data)
        i = 0
        while i + 2 <= n:
            first = data[i]
            length = data[i + 1]
            j = i + 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                while True:
                    if j >= n:
                        return i, j + 1
                    byte = data[j]
                    j += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("a remaining length longer than four bytes")
            end = j + length
            if end > n:
                return i, end
            if first >> 4 == PUBLISH:
                qos = (first >> 1) & 3
                if qos > 1:
                    raise ProtocolError(f"a PUBLISH at QoS {qos} on a QoS 1 subscription")
                k = j + 2 + ((data[j] << 8) | data[j + 1]) if length >= 2 else end + 1
                name = data[j + 2:k]
                if qos:
                    if k + 2 > end:
                        raise ProtocolError("a PUBLISH shorter than its topic and packet id")
                    mid = (data[k] << 8) | data[k + 1]
                    if mid == 0:
                        raise ProtocolError("a QoS 1 PUBLISH with packet id 0")
                    k += 2
                if k >= end:
                    raise ProtocolError("a PUBLISH shorter than its topic and properties length")
                k = _skip_properties(data, k, end)
                topic = cache.get(name)
                if topic is None:
                    if len(cache) >= TOPIC_CACHE_MAX:
                        cache.clear()
                    topic = cache[name] = name.decode("utf-8", "replace")
                if qos:
                    mids.append(mid)
                topics.append(topic)
                payloads.append(data[k:end])
            else:
                others.append((first, data[j:end]))
            i = end
        return i, i + 2


def _skip_properties(data: bytes, k: int, end: int) -> int:
    """The offset after the properties (a variable byte integer length, then that many bytes)."""
    length = data[k]
    k += 1
    shift = 7
    byte = length
    length &= 0x7F
    while byte & 0x80:
        if k >= end or shift > 21:
            raise ProtocolError("a PUBLISH whose properties length runs past the packet")
        byte = data[k]
        k += 1
        length |= (byte & 0x7F) << shift
        shift += 7
    k += length
    if k > end:
        raise ProtocolError("a PUBLISH whose properties run past the packet")
    return k


def pubacks(mids: list[int]) -> bytes:
    """The PUBACK packets (reason Success, which MQTT v5 lets a 2-byte body imply) of ``mids``,
    back to back, to be written in one send."""
    out = np.empty((len(mids), 4), np.uint8)
    out[:, 0] = 0x40
    out[:, 1] = 2
    out[:, 2:].view(">u2")[:, 0] = mids
    return out.tobytes()


def disconnect_reason(body: bytes) -> int:
    """The reason code of a DISCONNECT body (0, normal disconnection, when left out)."""
    return body[0] if body else 0


def suback_codes(body: bytes) -> list[int]:
    """The reason codes of a SUBACK body (after its packet id and properties), one per topic
    filter: the granted QoS, or 0x80 and up for a refusal."""
    if len(body) < 3:
        raise ProtocolError("a SUBACK shorter than its packet id and properties length")
    return list(body[_skip_properties(body, 2, len(body)):])
