"""The real service (`ioc run`) on a database of the module's own, with one API key per role.

Events are stored with the production BatchWriter; devices come from a small registry file
(plus rows added by the tests themselves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from ioc.embedded.postgres import EmbeddedPostgres
from ioc.ingest.latest import LatestValues
from ioc.model import EventBatch
from ioc.storage.partitions import PartitionManager
from ioc.storage.pool import create_pool
from ioc.storage.writer import BatchWriter
from tests.conftest import new_database
from tests.support.db import fetch, make_keys
from tests.support.service import ServiceProcess

DEVICES_YAML = """
devices:
  - id: hg-vt-wl-001
    name: "Trạm Cầu Cái Nhúc"
    kind: water_level
    district: "Vị Thanh"
    ward: "Phường 1"
    location: [9.7842, 105.4701]
    interval: 5m
    tags: [river, tide]
  - id: hg-vt-rf-001
    name: "Trạm mưa Vị Thanh"
    kind: rainfall
    district: "Vị Thanh"
    interval: 15m
    tags: [rain]
  - id: hg-cta-wl-001
    name: "Trạm Một Ngàn"
    kind: water_level
    district: "Châu Thành A"
    ward: "Thị trấn Một Ngàn"
    interval: 5m
    tags: [river]
  - id: hg-nb-wl-001
    name: "Trạm Ngã Bảy"
    kind: water_level
    district: "Ngã Bảy"
    interval: 1m
    tags: [canal]
"""

# Role name in tests -> (role, districts) of the key.
ROLES: dict[str, tuple[str, list[str] | None]] = {
    "admin": ("admin", None),
    "operator": ("operator", None),
    "agency_vt": ("agency", ["Vị Thanh"]),
    "agency_all": ("agency", None),
    "ingest": ("ingest", None),
}


@dataclass
class Api:
    service: ServiceProcess
    dsn: str
    flavour: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.service.url + "/api/v1"

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def get(self, path: str, role: str | None = "admin", params: Any = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> httpx.Response:
        return httpx.get(self.url + path, params=params,
                         headers={**self.headers(role), **(headers or {})}, timeout=timeout)

    def post(self, path: str, role: str | None = "admin", json: Any = None,
             content: bytes | None = None, timeout: float = 60) -> httpx.Response:
        return httpx.post(self.url + path, json=json, content=content,
                          headers=self.headers(role), timeout=timeout)

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return asyncio.run(fetch(self.dsn, query, *args))

    def store(self, batch: EventBatch) -> int:
        """Store events with the production writer (and the service's latest-values fold);
        returns how many were new."""
        return asyncio.run(_store(self.dsn, self.flavour, batch))


async def _store(dsn: str, flavour: str, batch: EventBatch) -> int:
    pool = await create_pool(dsn, size=2, writer=True)
    try:
        writer = BatchWriter(pool, PartitionManager(flavour))
        await writer.start()
        result = await writer.write(batch)
        latest = LatestValues(pool)
        latest.fold(batch, result.new_mask)
        await latest.flush()
        return result.new
    finally:
        await pool.close()


def start_api(server: EmbeddedPostgres, hint: str, tmp: Path, **env: str) -> Api:
    dsn = new_database(server, hint)
    devices = tmp / "devices.yaml"
    devices.write_text(DEVICES_YAML, encoding="utf-8")
    svc = ServiceProcess(tmp, {"IOC_DATABASE_URL": dsn, "IOC_AUTH": "on",
                               "IOC_DEVICES_FILE": str(devices), **env})
    svc.start()
    flavour = asyncio.run(fetch(dsn, "SELECT value FROM schema_meta WHERE key = 'flavour'"))[0][0]
    return Api(svc, dsn, flavour, asyncio.run(make_keys(dsn, ROLES)))


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The service on plain PostgreSQL (IOC_TIMESCALEDB=off), for this module."""
    running = start_api(pg_server, request.module.__name__, tmp_path_factory.mktemp("api"),
                        IOC_TIMESCALEDB="off")
    yield running
    running.service.stop()


@pytest.fixture(scope="module")
def tsdb_api(request: pytest.FixtureRequest, tsdb_server: EmbeddedPostgres,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The service on TimescaleDB, for this module."""
    running = start_api(tsdb_server, "ts_" + request.module.__name__,
                        tmp_path_factory.mktemp("tsdb-api"), IOC_TIMESCALEDB="on")
    yield running
    running.service.stop()


def readings(device: str, start_us: int, n: int, *, step_s: float = 60, kind: str = "water_level",
             unit: str | None = "m", prefix: str = "e", value0: float = 1.0,
             attrs: str | None = None) -> EventBatch:
    """``n`` readings of one device every ``step_s`` seconds from ``start_us``."""
    step = int(step_s * 1_000_000)
    return EventBatch(
        device_id=[device] * n,
        event_id=[f"{prefix}-{device}-{kind}-{i:07d}" for i in range(n)],
        kind=[kind] * n,
        ts=np.arange(n, dtype=np.int64) * step + start_us,
        value=np.round(value0 + np.sin(np.arange(n) / 7.0), 4),
        unit=[unit] * n,
        attrs=[attrs] * n,
    )
