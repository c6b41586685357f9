"""MQTT source: paho-mqtt 2.x, QoS 1, persistent session, acks only after commit.

paho runs on the service's asyncio loop through its external-loop interface (``loop_read``,
``loop_write``, ``loop_misc`` and the socket callbacks), not in a thread of its own: paho's
per-message work is pure Python, and a second thread fights the pipeline for the GIL on every
socket call and wakes itself through a socket pair for every ack. Only the blocking TCP (and
TLS) connect runs in a worker thread, while nothing else touches the client.

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
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ioc.ingest.pipeline import DRAIN_TIMEOUT_S, Pipeline, SubmissionResult
from ioc.metrics import Metrics
from ioc.model import RawMessage
from ioc.mqtt_client import client_from_url
from ioc.tasks import Supervisor

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our queue for a week of downtime
KEEPALIVE_S = 30
READ_BURST = 512  # packets read per wake-up before other tasks get the loop back
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
        self._buf: list[tuple[bytes, str, int, int, int]] = []
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._epoch = 0  # connection generation: acks are valid only on the connection they came on
        self._connect_job: asyncio.Future[mqtt.MQTTErrorCode] | None = None
        self._established = False  # the current attempt got a CONNACK
        self._connected = False
        self._subscribed = False
        self._client: mqtt.Client | None = None
        self._sock: socket.socket | None = None
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
        log.info("MQTT source connecting to %s:%d as %s, topic %s, receive maximum %d",
                 host, port, self.client_id, self.topic, self.receive_maximum)

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
            if self._sock is not None and not self._connecting():
                client.loop_misc()

    def _connecting(self) -> bool:
        """A worker thread is inside ``reconnect``: the loop leaves the client alone."""
        return self._connect_job is not None and not self._connect_job.done()

    def _opened(self, sock: socket.socket) -> None:
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock, self._readable)

    def _closed(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError):  # handed over from the worker: already closed
            loop.remove_reader(sock)
            loop.remove_writer(sock)
        if self._sock is sock:
            self._sock = None
            self._lost.set()

    def _want_write(self, sock: socket.socket) -> None:
        if sock is self._sock:
            asyncio.get_running_loop().add_writer(sock, self._writable)

    def _unwant_write(self, sock: socket.socket) -> None:
        if sock is self._sock:
            asyncio.get_running_loop().remove_writer(sock)

    def _readable(self) -> None:
        """Read packets until one brings no message (the socket is drained) or the burst ends.

        The drain task cannot take ``_buf`` during the burst, so its length counts messages.
        """
        client = self._client
        if client is None or self._connecting():
            return
        tls_pending = getattr(self._sock, "pending", None)  # bytes TLS has decrypted already
        for _ in range(READ_BURST):
            seen = len(self._buf)
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return
            if len(self._buf) == seen and not (tls_pending and tls_pending()):
                return

    def _writable(self) -> None:
        if self._client is not None and not self._connecting():
            self._client.loop_write()

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

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int,
        reason_codes: list[ReasonCode], properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("MQTT subscription to %s refused: %s", self.topic, reason_codes)
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
        if not self._stopping:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._buf.append((msg.payload, msg.topic, msg.mid, msg.qos, self._epoch))
        self._wake.set()

    # ---- pipeline side -------------------------------------------------------------------

    async def _drain_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            items, self._buf = self._buf, []
            if not items or self._stopping:
                continue
            messages = [RawMessage(p, "mqtt", t) for p, t, _, _, _ in items]
            acks = [(mid, epoch) for _, _, mid, qos, epoch in items if qos > 0]
            await self.pipeline.submit(messages, lambda _r, acks=acks: self._ack(acks))

    def _ack(self, acks: list[tuple[int, int]], _result: SubmissionResult | None = None) -> None:
        client = self._client
        if client is None:
            return
        current = self._epoch
        stale = 0
        for mid, epoch in acks:
            if epoch == current:
                client.ack(mid, 1)
            else:
                stale += 1
        if stale:
            log.info("%d MQTT message(s) from an earlier connection left unacked; "
                     "the broker redelivers them", stale)
