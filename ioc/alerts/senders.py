"""Notification channels: signed webhooks over HTTP and MQTT publishes, one attempt each.

Retries, backoff and bookkeeping belong to the notifier; a sender only says whether an attempt
worked and, if not, whether trying again can help (:class:`SendError`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ioc.alerts.config import Webhook
from ioc.mqtt_client import client_from_url

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-IOC-Delivery-Id"
SIGNATURE_HEADER = "X-IOC-Signature"
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class SendError(Exception):
    """One failed attempt; ``permanent`` when repeating the same request cannot succeed."""

    def __init__(self, message: str, *, permanent: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


def signature(secret: str, body: bytes) -> str:
    """The ``X-IOC-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs JSON bodies with the delivery id and HMAC signature headers."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(headers={"User-Agent": "ioc-ingest"},
                                         follow_redirects=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, hook: Webhook, delivery_id: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id,
                   SIGNATURE_HEADER: signature(hook.secret, body)}
        try:
            # httpx times each phase; the outer limit bounds a server that trickles its answer.
            async with asyncio.timeout(hook.timeout_s):
                resp = await self._client.post(hook.url, content=body, headers=headers,
                                               timeout=hook.timeout_s)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if 200 <= resp.status_code < 300:
            return
        retryable = resp.status_code >= 500 or resp.status_code in _RETRYABLE_STATUS
        retry_after = resp.headers.get("Retry-After", "")
        raise SendError(f"HTTP {resp.status_code}", permanent=not retryable,
                        retry_after_s=float(retry_after) if retry_after.isdigit() else None)


class MqttPublisher:
    """QoS 1 publishes; an attempt succeeds when the broker's PUBACK arrives in time.

    paho's network loop runs in its own thread; its callbacks only resolve futures on the event
    loop; they run holding paho's own locks, so this class never calls paho holding its lock.
    A publish while disconnected fails at once (the outbox retries it later).
    """

    def __init__(self, url: str, client_id: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._early: dict[int, float] = {}  # mid -> when its PUBACK came before registration
        self._connected = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        client, host, port = client_from_url(self.url, self.client_id, protocol=mqtt.MQTTv311,
                                             clean_session=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(1000)
        client.connect_async(host, port, keepalive=30)
        self._client = client
        client.loop_start()
        log.info("alert publishing to MQTT %s:%d as %s", host, port, self.client_id)

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(_disconnect, client)
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.cancel()

    @property
    def connected(self) -> bool:
        return self._connected

    async def publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None or not self._connected or self._loop is None:
            raise SendError("not connected to the MQTT broker")
        fut: asyncio.Future[None] = self._loop.create_future()
        # Never call into paho while holding our lock: paho calls on_publish holding its own.
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SendError(f"publish refused: {mqtt.error_string(info.rc)}")
        with self._lock:
            acked_at = self._early.pop(info.mid, None)
            if acked_at is not None and time.monotonic() - acked_at < self.timeout_s:
                fut.set_result(None)  # the PUBACK beat the registration
            else:
                self._pending[info.mid] = fut
        try:
            async with asyncio.timeout(self.timeout_s):
                await fut
        except TimeoutError:
            raise SendError("no PUBACK from the broker in time") from None
        finally:
            with self._lock:
                self._pending.pop(info.mid, None)

    # ---- paho thread -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT alert publisher: connect refused (%s)", reason_code)
            return
        self._connected = True
        log.info("MQTT alert publisher connected")

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        if self._connected:
            log.warning("MQTT alert publisher disconnected (%s); reconnecting", reason_code)
        self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._lock:
            fut = self._pending.get(mid)
            if fut is None:
                now = time.monotonic()
                if len(self._early) > 1000:
                    self._early = {m: t for m, t in self._early.items() if now - t < 60}
                self._early[mid] = now
        if fut is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_settle, fut)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _disconnect(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
