"""Deployable files: docker-compose.yml is valid and wired as documented; mosquitto tuning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ioc.embedded.mosquitto import tuning_lines

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_services_healthchecks_and_order() -> None:
    services = compose()["services"]
    assert {"timescaledb", "mosquitto", "kafka", "migrate", "ioc"} <= set(services)
    for name in ("timescaledb", "mosquitto", "kafka"):
        assert "healthcheck" in services[name], name
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    assert services["migrate"]["command"] == ["ioc", "migrate"]
    deps = services["ioc"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["kafka"]["condition"] == deps["mosquitto"]["condition"] == "service_healthy"
    env = services["ioc"]["environment"]
    assert env["IOC_TIMESCALEDB"] == "on" and env["IOC_AUTH"] == "on"


def compose_command() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose`, whichever answers here."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run(
            [*cmd, "version"], capture_output=True, timeout=30, check=False
        ).returncode == 0:
            return cmd
    return None


def test_docker_compose_config_passes() -> None:
    cmd = compose_command()
    if cmd is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*cmd, "config", "-q"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_mosquitto_acl_limits_devices_to_their_topic() -> None:
    acl = (REPO / "config" / "mosquitto.acl").read_text()
    assert "pattern write ioc/v1/events/%u" in acl
    conf = (REPO / "config" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file" in conf


def test_mosquitto_tuning_has_a_large_window_and_keeps_queues() -> None:
    tuning = dict(line.split(maxsplit=1) for line in tuning_lines())
    assert int(tuning["max_inflight_messages"]) >= 10000
    assert int(tuning["max_queued_messages"]) >= 1_000_000
    assert tuning["persistence"] == "true"
