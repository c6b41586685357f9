"""MQTT source: paho-mqtt 2.x, QoS 1, persistent session, acks only after commit.

paho's network loop runs in its own thread. ``on_message`` only appends to a deque and, when
the deque was empty, wakes the asyncio side once, so the per-message cost stays a list append.
Unacked messages are bounded by the MQTT v5 Receive Maximum the service announces (and the
broker's own in-flight limit): the broker stops sending when that many are unacked, which is
the backpressure. An ack is sent only for a message received on the current connection; after
a reconnect the broker redelivers the rest and the idempotent writer absorbs the repeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ioc.ingest.decode import RawMessage
from ioc.ingest.pipeline import DRAIN_TIMEOUT_S, Pipeline, SubmissionResult
from ioc.metrics import Metrics
from ioc.mqtt_client import client_from_url

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our queue for a week of downtime


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
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.url = url
        self.topic = topic
        self.client_id = client_id
        self.receive_maximum = receive_maximum
        self._buf: deque[tuple[bytes, str, int, int, int]] = deque()
        self._wake_scheduled = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._epoch = 0  # connection generation: acks are valid only on the connection they came on
        self._connected = False
        self._subscribed = False
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        client, host, port = client_from_url(self.url, self.client_id, protocol=mqtt.MQTTv5,
                                             manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.receive_maximum
        client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)
        self._client = client
        client.loop_start()
        self._task = asyncio.create_task(self._drain_loop(), name="mqtt-drain")
        log.info("MQTT source connecting to %s:%d as %s, topic %s, receive maximum %d",
                 host, port, self.client_id, self.topic, self.receive_maximum)

    async def stop(self) -> None:
        """Stop taking messages; the pipeline's flush then acks what was already accepted."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task
        if self._client:
            await self.pipeline.flush(DRAIN_TIMEOUT_S)
            client = self._client
            await asyncio.to_thread(self._disconnect, client)
        self.metrics.source_connected.labels(self.name).set(0)

    @staticmethod
    def _disconnect(client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()

    def ready(self) -> bool:
        return self._connected and self._subscribed

    # ---- paho thread -------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
        reason_code: ReasonCode, properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        self._epoch += 1
        self._connected = True
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
        self._connected = False
        self._subscribed = False
        self.metrics.source_connected.labels(self.name).set(0)
        if not self._stopping:
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._buf.append((msg.payload, msg.topic, msg.mid, msg.qos, self._epoch))
        if not self._wake_scheduled and self._loop is not None:
            self._wake_scheduled = True
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---- asyncio side --------------------------------------------------------------------

    async def _drain_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            self._wake_scheduled = False
            buf = self._buf
            items = [buf.popleft() for _ in range(len(buf))]
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
