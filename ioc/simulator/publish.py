"""Publishers for the simulator: MQTT (paho, QoS 1) and Kafka (aiokafka), plus stdout.

Both network publishers apply backpressure instead of buffering without bound:
MQTT keeps at most ``inflight`` unacknowledged messages (paho's own in-flight
window, so paho never queues behind it), Kafka waits when the producer's
accumulator is full. ``close`` waits for every acknowledgement and reports how
many never came, so the caller can tell a complete run from a lossy one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger(__name__)

MQTT_TOPIC_PREFIX = "ioc/v1/events/"
Message = tuple[str, bytes]  # (device_id, payload)
T = TypeVar("T")


class PublishError(Exception):
    """The target cannot be reached or refused us; ``str()`` is one line for the user."""


class Publisher(Protocol):
    target: str

    def start(self) -> None:
        """Connect; raises PublishError with a one-line reason."""

    def send_many(self, messages: Sequence[Message]) -> None:
        """Hand ``messages`` to the transport, blocking while its window is full."""

    def acked(self) -> int:
        """Messages confirmed by the broker so far."""

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for outstanding acknowledgements; the number still missing."""


class StdoutPublisher:
    """Writes payloads as lines (for piping into ``curl``, files or a quick look)."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.target = "stdout"
        self._out = stream or sys.stdout.buffer
        self._count = 0

    def start(self) -> None:
        """Nothing to connect to."""

    def send_many(self, messages: Sequence[Message]) -> None:
        self._out.write(b"".join(p + b"\n" for _, p in messages))
        self._count += len(messages)

    def acked(self) -> int:
        return self._count

    def close(self, timeout: float) -> int:
        self._out.flush()
        return 0


class MqttPublisher:
    """QoS 1 to ``ioc/v1/events/{device_id}`` with a persistent session.

    ``clean_session=False`` and a stable client id keep the session on the
    broker; paho keeps unacked messages and re-sends them (DUP) after an
    automatic reconnect, so a broker restart loses nothing in flight.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        inflight: int = 100,
        topic_prefix: str = MQTT_TOPIC_PREFIX,
        connect_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise PublishError(f"bad MQTT URL {url!r}: expected mqtt://host:1883")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise PublishError(f"bad MQTT URL {url!r}: port must be 1–65535") from None
        self.host = parts.hostname
        self.port = port
        self.target = f"mqtt://{self.host}:{self.port}"
        self.topic_prefix = topic_prefix
        self.connect_timeout = connect_timeout
        self.inflight = max(1, min(inflight, 65535))  # MQTT packet ids are 16-bit
        self._window = threading.BoundedSemaphore(self.inflight)
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()
        self._acked = 0
        self._sent = 0
        self._ever_connected = False
        self._closing = False
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        # Equal to our window, so paho never holds messages back in its own queue. paho scans
        # its in-flight list on every PUBACK, so a large window costs CPU; ~100 keeps a
        # loopback broker busy, a high-latency link wants more.
        client.max_inflight_messages_set(self.inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        if parts.username:
            client.username_pw_set(unquote(parts.username),
                                   unquote(parts.password) if parts.password else None)
        if parts.scheme == "mqtts":
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

    def start(self) -> None:
        """Connect and start paho's network thread; raises PublishError when it does not work."""
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise PublishError(f"cannot connect to {self.target}: {e}") from None
        self._client.loop_start()
        if not self._connected.wait(self.connect_timeout) or self._refused:
            self._client.loop_stop()
            reason = self._refused or f"no CONNACK within {self.connect_timeout:g}s"
            raise PublishError(f"MQTT broker {self.target} refused the connection: {reason}")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        if self._ever_connected:
            log.warning("simulate: reconnected to %s (session present: %s); re-sending "
                        "unacknowledged messages", self.target, flags.session_present)
        self._ever_connected = True
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                       properties: object) -> None:
        if self._ever_connected and not self._closing:
            log.warning("simulate: disconnected from %s (%s); paho reconnects", self.target, reason)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        with self._lock:
            self._acked += 1
        self._window.release()

    def send_many(self, messages: Sequence[Message]) -> None:
        publish, prefix, acquire = self._client.publish, self.topic_prefix, self._window.acquire
        for device_id, payload in messages:
            acquire()
            self._sent += 1
            info = publish(prefix + device_id, payload, qos=1)
            # NO_CONN still queues the message in paho; it goes out after the reconnect.
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._sent -= 1
                self._window.release()
                raise PublishError(f"MQTT publish to {self.target} failed: "
                                   f"{mqtt.error_string(info.rc)}")

    def acked(self) -> int:
        with self._lock:
            return self._acked

    def close(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.acked() < self._sent and time.monotonic() < deadline:
            time.sleep(0.01)
        missing = max(0, self._sent - self.acked())
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        return missing


class KafkaPublisher:
    """aiokafka producer on its own event-loop thread, keyed by device id.

    No idempotence (the brokers we run against lack it); lost acks are retried
    by the producer and may duplicate, which the ingest side's event_id
    deduplication absorbs. ``linger_ms`` and large batches buy throughput.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        acks: int | str = 1,
        linger_ms: int = 10,
        client_id: str = "ioc-simulator",
        connect_timeout: float = 15.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.target = f"kafka://{bootstrap}/{topic}"
        self.acks = acks
        self.linger_ms = linger_ms
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ioc-sim-kafka",
                                        daemon=True)
        self._producer: AIOKafkaProducer | None = None
        self._acked = 0
        self._failed = 0
        self._sent = 0
        self._first_error: BaseException | None = None

    def _run(self, coro: Coroutine[object, object, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        """Connect and fetch the topic's metadata; raises PublishError when it does not work."""
        self._thread.start()

        async def start() -> AIOKafkaProducer:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                acks=self.acks,
                enable_idempotence=False,
                linger_ms=self.linger_ms,
                max_batch_size=512 * 1024,
                max_request_size=4 * 1024 * 1024,
                request_timeout_ms=30000,
            )
            try:
                await asyncio.wait_for(producer.start(), self.connect_timeout)
                await asyncio.wait_for(producer.partitions_for(self.topic), self.connect_timeout)
            except BaseException:
                await producer.stop()
                raise
            return producer

        try:
            self._producer = self._run(start())
        except (KafkaError, OSError, TimeoutError) as e:
            self._stop_loop()
            raise PublishError(f"cannot reach Kafka {self.target}: {type(e).__name__}: {e}"
                               ) from None

    def _on_delivery(self, fut: asyncio.Future[object]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self._failed += 1
            if self._first_error is None:
                self._first_error = fut.exception() if not fut.cancelled() else None
                log.warning("simulate: Kafka delivery to %s failed: %r", self.target,
                            self._first_error)
        else:
            self._acked += 1

    async def _send(self, producer: AIOKafkaProducer, messages: Sequence[Message]) -> None:
        topic, done = self.topic, self._on_delivery
        for device_id, payload in messages:
            fut = await producer.send(topic, payload, key=device_id.encode())
            self._sent += 1
            fut.add_done_callback(done)

    def send_many(self, messages: Sequence[Message]) -> None:
        if self._producer is None:
            raise PublishError("Kafka publisher is not started")
        self._run(self._send(self._producer, messages))

    def acked(self) -> int:
        return self._acked

    def close(self, timeout: float) -> int:
        async def stop(producer: AIOKafkaProducer) -> None:
            try:
                await asyncio.wait_for(producer.flush(), timeout)
            except TimeoutError:
                log.warning("simulate: Kafka flush timed out after %gs", timeout)
            await producer.stop()

        if self._producer is not None:
            try:
                self._run(stop(self._producer), timeout + 10)
            except Exception as e:  # the count below reports what was lost
                log.warning("simulate: Kafka producer did not stop cleanly: %r", e)
        self._stop_loop()
        return max(0, self._sent - self._acked)

    def _stop_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()
