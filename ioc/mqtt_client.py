"""A paho-mqtt 2.x client configured from an ``mqtt://user:pass@host:port`` URL.

The MQTT source (ingest) and the alert publisher (alerts) both connect this way; the URL's
credentials and ``mqtts`` scheme (TLS) are handled here once.
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def client_from_url(url: str, client_id: str, **client_args: object) -> tuple[mqtt.Client, str, int]:
    """A new client (not connected) with reconnect backoff, plus the host and port to use."""
    parts = urlsplit(url)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         **client_args)
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    return client, parts.hostname or "127.0.0.1", port
