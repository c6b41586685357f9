"""Settings: every bad value stops a command with exit 2 and one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ioc.durations import format_duration, parse_duration
from ioc.settings import Settings

BAD = [
    ("IOC_API_PORT", "70000"),
    ("IOC_API_PORT", "0"),
    ("IOC_API_PORT", "http"),
    ("IOC_BATCH_MAX", "0"),
    ("IOC_BATCH_MAX", "-5"),
    ("IOC_BATCH_WAIT_MS", "0"),
    ("IOC_QUEUE_MAX", "-1"),
    ("IOC_DATABASE_URL", "mysql://db/ioc"),
    ("IOC_DATABASE_URL", "postgresql://h:99999/ioc"),
    ("IOC_MQTT_URL", "ftp://broker"),
    ("IOC_MQTT_URL", "mqtt://:1883"),
    ("IOC_KAFKA_BOOTSTRAP", "kafka:notaport"),
    ("IOC_MAX_LATENESS", "soon"),
    ("IOC_MAX_LATENESS", "-5m"),
    ("IOC_RETENTION", "0s"),
    ("IOC_AUTH", "maybe"),
    ("IOC_LOG_LEVEL", "loud"),
    ("IOC_MQTT_RECEIVE_MAXIMUM", "70000"),
    ("IOC_KAFKA_SESSION_TIMEOUT_MS", "abc"),
    ("IOC_REQUIRE_KNOWN_DEVICES", "perhaps"),
]


def run_ioc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run([sys.executable, "-m", "ioc.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, cwd="/")


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_setting_fails_with_one_line(name: str, value: str) -> None:
    result = run_ioc("migrate", env={name: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and "Traceback" not in result.stderr


def test_defaults_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("IOC_"):
            monkeypatch.delenv(key)
    s = Settings(_env_file=None)
    assert (s.api_host, s.api_port, s.mqtt_topic, s.kafka_topic, s.kafka_group) == (
        "127.0.0.1", 8000, "ioc/v1/events/#", "ioc.events", "ioc-ingest")
    assert s.max_lateness == 3600 and s.kafka_session_timeout_ms == 10000 and s.auth == "on"


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("IOC_API_PORT=8123\nIOC_MAX_LATENESS=90m\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IOC_API_PORT", raising=False)
    monkeypatch.delenv("IOC_MAX_LATENESS", raising=False)
    s = Settings()
    assert s.api_port == 8123 and s.max_lateness == 5400


def test_example_env_documents_every_setting() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "config" / "ioc.example.env").read_text()
    documented = {line.split("=", 1)[0] for line in text.splitlines()
                  if line.startswith("IOC_")}
    assert documented == {f"IOC_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600),
    ("90", 90), (15, 15),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "1h-5m", "-1s", True, "nan"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]
