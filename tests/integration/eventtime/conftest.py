"""Services of the event-time tests: `ioc run` children on the scenario's device and rule files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.eventtime.scenario import DEVICES_FILE, RULES_FILE
from tests.integration.ingest.conftest import mqtt_broker  # noqa: F401  (a broker of the test's own)
from tests.support.service import ServiceProcess

ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    """``services(name, dsn, **env)``: a service (not started) with its logs in ``tmp/name``;
    every one of them is killed (by its PID) at the end of the test."""
    started: list[ServiceProcess] = []

    def make(name: str, dsn: str, **env: str) -> ServiceProcess:
        logs = tmp_path / name
        logs.mkdir()
        svc = ServiceProcess(logs, {"IOC_DATABASE_URL": dsn, "IOC_DEVICES_FILE": str(DEVICES_FILE),
                                    "IOC_RULES_FILE": str(RULES_FILE), **env})
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.kill()
