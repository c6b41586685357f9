"""MQTT source: paho-mqtt 2.x, QoS 1, persistent session, acks only after commit.

paho runs on the service's asyncio loop through its external-loop interface (``loop_read``,
``loop_write``, ``loop_misc`` and the socket callbacks), not in a thread of its own: paho's
per-message work is pure Python, and a second thread fights the pipeline for the GIL on every
socket call and wakes itself through a socket pair for every ack. Only the blocking TCP (and
TLS) connect runs in a worker thread, while nothing else touches the client.

From the CONNACK on, with the accelerators on (``IOC_ACCELERATE``), the source reads the socket
itself (a persistent session's queue follows the CONNACK, ahead of the SUBACK): whole reads
split into PUBLISH packets in bulk by :class:`ioc.fast.mqtt_wire.PacketReader` (paho spends
three ``recv`` calls and a dozen Python calls on each packet), and the acks of a committed
batch written as one buffer. paho keeps the connection's set-up (TLS, credentials, CONNECT,
SUBSCRIBE) and its end (DISCONNECT, and the close when the broker goes away); in between the
source sends the PINGREQs and watches the PINGRESPs itself. With the accelerators off, paho
reads every packet and queues every ack, the reference of the same behaviour.

Unacked messages are bounded by the MQTT v5 Receive Maximum the service announces (and the
broker's own in-flight limit): the broker stops sending when that many are unacked, which is
the backpressure. An ack is sent only for a message received on the current connection; after
a reconnect the broker redelivers the rest and the idempotent writer absorbs the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ioc import fast
from ioc.fast.mqtt_wire import (
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    SUBACK,
    PacketReader,
    Packets,
    ProtocolError,
    disconnect_reason,
    pubacks,
    suback_codes,
)
from ioc.ingest.pipeline import DRAIN_TIMEOUT_S, Pipeline, SubmissionResult
from ioc.metrics import Metrics
from ioc.model import RawMessage
from ioc.mqtt_client import client_from_url
from ioc.tasks import Supervisor

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our queue for a week of downtime
KEEPALIVE_S = 30
READ_BURST = 512  # packets paho reads per wake-up before other tasks get the loop back
RECV_BYTES = 1 << 18  # one read of the bulk reader
READ_BYTES_PER_WAKE = 1 << 21  # the bulk reader's bytes per wake-up, likewise
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 10.0
DISCONNECT_TIMEOUT_S = 5.0


def _on_loop(
    loop: asyncio.AbstractEventLoop, handler: Callable[[socket.socket], None],
) -> Callable[[mqtt.Client, object, socket.socket], None]:
    """A paho socket callback running ``handler`` on the loop.

    On the loop's own thread it runs at once: paho closes the socket right after
    ``on_socket_close``. From the connecting worker thread it is handed over to the loop.
    """
    loop_thread = threading.get_ident()

    def callback(_client: mqtt.Client, _userdata: object, sock: socket.socket) -> None:
        if threading.get_ident() == loop_thread:
            handler(sock)
        else:
            loop.call_soon_threadsafe(handler, sock)

    return callback


def _reason_name(packet_type: int, code: int) -> str:
    try:
        return f"{ReasonCode(packet_type, identifier=code)} (0x{code:02x})"
    except KeyError:
        return f"0x{code:02x}, a reason code MQTT does not define"


class MqttSource:
    name = "mqtt"

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        url: str,
        topic: str,
        client_id: str,
        receive_maximum: int = 20000,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.supervisor = supervisor or Supervisor()
        self.metrics = metrics
        self.url = url
        self.topic = topic
        self.client_id = client_id
        self.receive_maximum = receive_maximum
        # Received and not yet handed to the pipeline: payloads and topics as columns, and the
        # QoS 1 packet ids as runs of one connection each (epoch, ids).
        self._payloads: list[bytes] = []
        self._topics: list[str] = []
        self._acks: list[tuple[int, list[int]]] = []
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._epoch = 0  # connection generation: acks are valid only on the connection they came on
        self._connect_job: asyncio.Future[mqtt.MQTTErrorCode] | None = None
        self._established = False  # the current attempt got a CONNACK
        self._connected = False
        self._subscribed = False
        self._client: mqtt.Client | None = None
        self._sock: socket.socket | None = None
        # Who reads the socket: paho until the CONNACK; then, with the accelerators on, the
        # bulk reader (``_bulk``), from a packet boundary (``_boundary``: paho has just handed
        # over a whole packet) at which paho has nothing left to write.
        self._paho_reads = True
        self._bulk_wanted = False
        self._boundary = False
        self._bulk: PacketReader | None = None
        self._unsent = bytearray()  # bulk acks and pings the socket did not take yet
        self._all_sent = asyncio.Event()  # set while ``_unsent`` is empty
        self._all_sent.set()
        self._last_in = self._last_out = 0.0
        self._ping_sent: float | None = None
        self._dropped = False  # the bulk reader ended the connection and said why
        self._tasks: list[asyncio.Task[None]] = []
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        client, host, port = client_from_url(self.url, self.client_id, protocol=mqtt.MQTTv5,
                                             manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = _on_loop(loop, self._opened)
        client.on_socket_close = _on_loop(loop, self._closed)
        client.on_socket_register_write = _on_loop(loop, self._want_write)
        client.on_socket_unregister_write = _on_loop(loop, self._unwant_write)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.receive_maximum
        client.connect_async(host, port, keepalive=KEEPALIVE_S, clean_start=False,
                             properties=props)
        self._client = client
        spawn = self.supervisor.spawn
        self._tasks = [spawn("mqtt-connect", lambda: self._connection_loop(client)),
                       spawn("mqtt-keepalive", lambda: self._keepalive_loop(client))]
        # Messages the drain task took and had not handed on would be neither stored nor acked.
        self._drain = spawn("mqtt-drain", self._drain_loop, fatal=True)
        log.info("MQTT source connecting to %s:%d as %s, topic %s, receive maximum %d, "
                 "bulk reading %s", host, port, self.client_id, self.topic,
                 self.receive_maximum, "on" if fast.enabled() else "off")

    async def stop(self) -> None:
        """Stop taking messages; the pipeline's flush then acks what was already accepted."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._connect_job is not None:
            await asyncio.wait([self._connect_job])
        if self._drain:
            await self._drain
        if self._client:
            await self.pipeline.flush(DRAIN_TIMEOUT_S)
            if self._sock is not None:
                if self._bulk is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._all_sent.wait(), DISCONNECT_TIMEOUT_S)
                    self._end_bulk()
                self._lost.clear()
                self._client.disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), DISCONNECT_TIMEOUT_S)
        self.metrics.source_connected.labels(self.name).set(0)

    def ready(self) -> bool:
        return self._connected and self._subscribed

    # ---- connection --------------------------------------------------------------------

    async def _connection_loop(self, client: mqtt.Client) -> None:
        """Connect; when the connection drops, reconnect with a doubling delay."""
        delay = RECONNECT_MIN_S
        while True:
            self._lost.clear()
            self._established = False
            self._connect_job = asyncio.ensure_future(asyncio.to_thread(client.reconnect))
            try:
                await asyncio.shield(self._connect_job)
            except OSError as exc:
                log.warning("MQTT connect to %s:%d failed (%s); next try in %.0f s",
                            client.host, client.port, exc, delay)
            else:
                await self._lost.wait()
            if self._established:
                delay = RECONNECT_MIN_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _keepalive_loop(self, client: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(1)
            if self._sock is None or self._connecting():
                continue
            if self._bulk is not None:
                self._bulk_keepalive()
            elif self._paho_reads:
                client.loop_misc()

    def _connecting(self) -> bool:
        """A worker thread is inside ``reconnect``: the loop leaves the client alone."""
        return self._connect_job is not None and not self._connect_job.done()

    def _opened(self, sock: socket.socket) -> None:
        self._sock = sock
        self._paho_reads = True
        asyncio.get_running_loop().add_reader(sock, self._readable)

    def _closed(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError):  # handed over from the worker: already closed
            loop.remove_reader(sock)
            loop.remove_writer(sock)
        if self._sock is sock:
            with contextlib.suppress(ValueError):  # its state is reset before the removals
                self._end_bulk()
            self._sock = None
            self._bulk_wanted = False
            self._lost.set()

    def _want_write(self, sock: socket.socket) -> None:
        if sock is self._sock:
            asyncio.get_running_loop().add_writer(sock, self._writable)

    def _unwant_write(self, sock: socket.socket) -> None:
        if sock is self._sock:
            asyncio.get_running_loop().remove_writer(sock)

    def _readable(self) -> None:
        client = self._client
        if client is None or self._connecting():
            return
        if self._paho_reads:
            self._read_with_paho(client)
        if self._bulk is not None:
            self._read_bulk(self._bulk)

    def _writable(self) -> None:
        if self._bulk is not None:
            self._send_unsent()
        elif self._client is not None and not self._connecting():
            self._client.loop_write()
            self._maybe_start_bulk(self._client)

    # ---- reading with paho (set-up, and everything with the accelerators off) -------------

    def _read_with_paho(self, client: mqtt.Client) -> None:
        """Read packets until one brings no message (the socket is drained), the burst ends or
        the bulk reader takes over. ``loop_read`` reads at most one packet here (no QoS 2 and
        nothing published), so a callback during it marks a packet boundary.

        The drain task cannot take the columns during the burst, so their length counts
        messages.
        """
        tls_pending = getattr(self._sock, "pending", None)  # bytes TLS has decrypted already
        for _ in range(READ_BURST):
            seen = len(self._payloads)
            self._boundary = False
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return
            if self._maybe_start_bulk(client):
                return
            if len(self._payloads) == seen and not (tls_pending and tls_pending()):
                return

    def _maybe_start_bulk(self, client: mqtt.Client) -> bool:
        if not (self._bulk_wanted and self._boundary and self._paho_reads):
            return False
        if client.want_write():
            # paho's queued acks would interleave with the bulk writes: written first. Left
            # to the writer callback, acks queued meanwhile kept the switch off for seconds
            # in a flood.
            client.loop_write()
            if client.want_write():
                return False
        self._paho_reads = False
        self._bulk_wanted = False
        self._bulk = PacketReader()
        self._last_in = self._last_out = time.monotonic()
        self._ping_sent = None
        log.debug("MQTT: reading the connection in bulk")
        return True

    # ---- paho callbacks (on the loop) ----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        self._epoch += 1
        self._connected = self._established = True
        log.info("MQTT connected (session present: %s); subscribing to %s",
                 flags.session_present, self.topic)
        client.subscribe(self.topic, qos=1)
        # A persistent session's queue follows the CONNACK at once, a Receive Maximum of
        # messages before the SUBACK: the bulk reader takes over here, and reads the SUBACK.
        self._boundary = True
        self._bulk_wanted = fast.enabled()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_codes: list[ReasonCode], properties: Properties | None,
    ) -> None:
        self._boundary = True
        self._subscription_answered([rc.value for rc in reason_codes])

    def _subscription_answered(self, codes: list[int]) -> None:
        """The SUBACK's reason codes (paho's or the bulk reader's): 0x80 and up refuse."""
        if any(code >= 0x80 for code in codes):
            log.error("MQTT subscription to %s refused: %s", self.topic,
                      ", ".join(_reason_name(PacketTypes.SUBACK, code) for code in codes))
            return
        self._subscribed = True
        self.metrics.source_connected.labels(self.name).set(1)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        self._epoch += 1
        self._connected = False
        self._subscribed = False
        self.metrics.source_connected.labels(self.name).set(0)
        if not (self._stopping or self._dropped):
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)
        self._dropped = False

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._boundary = True
        self._payloads.append(msg.payload)
        self._topics.append(msg.topic)
        if msg.qos:
            self._note_acks([msg.mid])
        self._wake.set()

    # ---- reading in bulk (the accelerators on, from the CONNACK) -------------------------

    def _read_bulk(self, reader: PacketReader) -> None:
        """Read and split what the socket holds, up to a bound per wake-up; a bound reached
        reads on in a later loop turn (TLS may hold decrypted bytes the selector never sees).
        """
        sock = self._sock
        if sock is None:
            return
        taken = 0
        while taken < READ_BYTES_PER_WAKE:
            try:
                chunk = sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._hand_back_at_eof()
                return
            taken += len(chunk)
            self._last_in = time.monotonic()
            try:
                self._take(reader.feed(chunk))
            except ProtocolError as exc:
                self._drop(f"the broker sent bytes that are not MQTT: {exc}", "Protocol error")
                return
        asyncio.get_running_loop().call_soon(self._readable)

    def _take(self, packets: Packets) -> None:
        if packets.payloads:
            self._payloads += packets.payloads
            self._topics += packets.topics
            if packets.mids:
                self._note_acks(packets.mids)
            self._wake.set()
        for first, body in packets.others:
            kind = first >> 4
            if kind == PINGRESP:
                self._ping_sent = None
            elif kind == DISCONNECT:
                log.warning("MQTT broker is closing the connection: %s",
                            _reason_name(PacketTypes.DISCONNECT, disconnect_reason(body)))
            elif kind == SUBACK:
                self._subscription_answered(suback_codes(body))
            else:
                raise ProtocolError(f"an unexpected packet of type {kind}")

    def _hand_back_at_eof(self) -> None:
        """The connection ended: paho's own read sees the end and runs its disconnect (the
        callbacks above, then the reconnect)."""
        self._end_bulk()
        if self._client is not None:
            self._client.loop_read()

    def _drop(self, why: str, reason: str) -> None:
        """End a connection the bulk reader cannot go on with; the broker keeps the session and
        redelivers what was not acked."""
        log.warning("MQTT: %s; reconnecting", why)
        self._dropped = True
        self._end_bulk()
        if self._client is not None:
            self._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, reason))

    def _end_bulk(self) -> None:
        """Give the connection back to paho for its end; nobody reads it any more."""
        if self._bulk is None:
            return
        self._bulk = None
        self._unsent.clear()
        self._all_sent.set()
        if self._sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock)
            loop.remove_writer(self._sock)

    def _bulk_keepalive(self) -> None:
        now = time.monotonic()
        if self._ping_sent is not None:
            if now - self._ping_sent > KEEPALIVE_S:
                self._drop(f"no PINGRESP within {KEEPALIVE_S} s", "Unspecified error")
        elif now - max(self._last_in, self._last_out) >= KEEPALIVE_S / 2:
            self._ping_sent = now
            self._send(PINGREQ)

    def _send(self, data: bytes) -> None:
        """Write now what the socket takes; keep the rest, in order, for when it is writable."""
        sock = self._sock
        if sock is None:
            return
        self._last_out = time.monotonic()
        if self._unsent:
            self._unsent += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError:
            return  # the reader meets the connection's end
        if sent < len(data):
            self._unsent += memoryview(data)[sent:]
            self._all_sent.clear()
            asyncio.get_running_loop().add_writer(sock, self._writable)

    def _send_unsent(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._unsent)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            sent = len(self._unsent)  # the reader meets the connection's end
        del self._unsent[:sent]
        if not self._unsent:
            self._all_sent.set()
            asyncio.get_running_loop().remove_writer(sock)

    # ---- pipeline side -------------------------------------------------------------------

    def _note_acks(self, mids: list[int]) -> None:
        if self._acks and self._acks[-1][0] == self._epoch:
            self._acks[-1][1].extend(mids)
        else:
            self._acks.append((self._epoch, mids))

    async def _drain_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            payloads, topics, acks = self._payloads, self._topics, self._acks
            self._payloads, self._topics, self._acks = [], [], []
            if not payloads or self._stopping:
                continue
            messages = [RawMessage(p, "mqtt", t) for p, t in zip(payloads, topics, strict=True)]
            await self.pipeline.submit(messages, lambda _r, acks=acks: self._ack(acks))

    def _ack(self, acks: list[tuple[int, list[int]]],
             _result: SubmissionResult | None = None) -> None:
        client = self._client
        if client is None:
            return
        current = self._epoch
        stale = 0
        for epoch, mids in acks:
            if epoch != current:
                stale += len(mids)
            elif self._bulk is not None:
                self._send(pubacks(mids))
            else:
                for mid in mids:
                    client.ack(mid, 1)
        if stale:
            log.info("%d MQTT message(s) from an earlier connection left unacked; "
                     "the broker redelivers them", stale)
