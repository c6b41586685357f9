"""The service's settings: one pydantic-settings object read from ``IOC_*`` and ``.env``.

Every command that needs settings loads them once through :func:`get_settings`;
a bad value stops the command with one line naming the variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ioc.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[Seconds, AfterValidator(lambda v: _positive(v))]
Port = Annotated[int, Field(ge=1, le=65535)]


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError("must be greater than zero")
    return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IOC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/ioc"
    db_pool_size: Annotated[int, Field(ge=2, le=100)] = 8
    timescaledb: Literal["auto", "on", "off"] = "auto"
    retention: PositiveSeconds = 365 * 86400.0

    mqtt_url: str = ""
    mqtt_topic: str = "ioc/v1/events/#"
    mqtt_client_id: str = "ioc-ingest"
    mqtt_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 20000

    kafka_bootstrap: str = ""
    kafka_topic: str = "ioc.events"
    kafka_group: str = "ioc-ingest"
    kafka_session_timeout_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 10000

    rules_file: str = "config/rules.yaml"
    devices_file: str = "config/devices.yaml"
    require_known_devices: bool = False
    notifications_file: str = "config/notifications.yaml"

    storm_window: Seconds = 30.0
    alerts_mqtt_publish: bool = False

    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    auth: Literal["on", "off"] = "on"

    batch_max: Annotated[int, Field(gt=0, le=1_000_000)] = 5000
    batch_wait_ms: Annotated[int, Field(gt=0, le=60_000)] = 50
    queue_max: Annotated[int, Field(gt=0)] = 200_000
    max_payload_bytes: Annotated[int, Field(gt=0)] = 256 * 1024
    ingest_timeout: PositiveSeconds = 30.0
    max_lateness: PositiveSeconds = 3600.0
    max_event_age: PositiveSeconds = 365 * 86400.0
    max_future_skew: PositiveSeconds = 3600.0
    # false: run the plain reference of every compiled accelerator (ioc/fast), end to end.
    accelerate: bool = True

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or parts.path):
            raise ValueError("expected postgresql://user@host:port/dbname")
        _check_port(parts)
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError("expected mqtt://host:1883 (or empty to turn MQTT off)")
        _check_port(parts)
        return v

    @field_validator("kafka_bootstrap")
    @classmethod
    def _kafka(cls, v: str) -> str:
        for server in filter(None, (s.strip() for s in v.split(","))):
            parts = urlsplit(f"//{server}")
            if not parts.hostname:
                raise ValueError(f"expected host:port[,host:port], got {server!r}")
            _check_port(parts)
        return v

    @field_validator("alerts_mqtt_publish")
    @classmethod
    def _publish_needs_broker(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("mqtt_url"):
            raise ValueError("needs IOC_MQTT_URL, the broker to publish alerts to")
        return v

    @field_validator("mqtt_topic", "kafka_topic", "kafka_group", "mqtt_client_id")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


def _check_port(parts) -> None:
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError("port must be a number between 1 and 65535") from e
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("port must be between 1 and 65535")


class SettingsError(Exception):
    """A setting has a bad value; ``str()`` is the one line shown to the user."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        err = e.errors()[0]
        name = "IOC_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}={err.get('input')!r}: {msg}") from None
