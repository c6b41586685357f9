"""Alerts against a real PostgreSQL: pools, devices, transitions, and the API on real uvicorn.

Until the service wires :class:`ioc.alerts.Alerts` in, the HTTP tests serve ``create_app`` with
:class:`Harness` standing in for ``ioc.service.Service``: the attributes the routers use
(settings, api_pool, keys, metrics, alerts), backed by the real database and a real Alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from ioc.alerts import Alerts, NotificationConfig
from ioc.api.app import create_app
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.embedded.process import free_port
from ioc.metrics import Metrics
from ioc.rules import Transition
from ioc.settings import Settings
from ioc.storage.key_cache import KeyCache
from ioc.storage.keys import create_key
from ioc.storage.pool import create_pool
from tests.conftest import new_database

VI_THANH = "Vị Thanh"
NGA_BAY = "Ngã Bảy"
VT_DEVICES = [f"hg-vt-wl-{i:03d}" for i in range(1, 16)]
NB_DEVICES = [f"hg-nb-wl-{i:03d}" for i in range(1, 4)]
UNPLACED = "hg-xx-wl-001"  # auto-registered: no district
BASE_US = 1_790_000_000_000_000


def fire(rule: str, device: str, ts_us: int = BASE_US, *, value: float = 1.95,
         severity: str = "critical", kind: str = "water_level") -> Transition:
    return Transition(rule, device, "fire", ts_us, value, severity,
                      f"Mực nước {value:.2f} m tại {device}", kind, 0)


def clear(rule: str, device: str, ts_us: int = BASE_US + 60_000_000, *,
          severity: str = "critical") -> Transition:
    return Transition(rule, device, "clear", ts_us, 1.5, severity, "", "water_level", 0)


async def record(alerts: Alerts, pool: asyncpg.Pool, transitions: Sequence[Transition],
                 received_at: float | None = None) -> None:
    """As the pipeline does: inside a transaction, then the callback after commit."""
    async with pool.acquire() as conn, conn.transaction():
        done = await alerts.record(conn, transitions, received_at)
    if done is not None:
        done()


def make_alerts(pool: asyncpg.Pool, config: NotificationConfig | None = None,
                **kw: Any) -> Alerts:
    """Alerts with short poll intervals, so that tests run in seconds."""
    kw = {"storm_window_s": 0.0, "feed_poll_s": 0.1, "notify_poll_s": 0.1, **kw}
    return Alerts(pool, Metrics(), notifications=config or NotificationConfig(), **kw)


async def add_devices(pool: asyncpg.Pool) -> None:
    rows = [(d, VI_THANH) for d in VT_DEVICES] + [(d, NGA_BAY) for d in NB_DEVICES]
    rows.append((UNPLACED, None))
    await pool.executemany(
        "INSERT INTO devices (id, kind, district, registered_by) VALUES ($1, 'water_level', $2,"
        " 'file') ON CONFLICT (id) DO NOTHING", rows)


@pytest.fixture(scope="module")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """An API-style pool (timestamps as datetime) on the module's migrated database."""
    p = await create_pool(database, size=60)
    await add_devices(p)
    yield p
    await p.close()


@pytest.fixture
async def fresh_pool(request: pytest.FixtureRequest,
                     pg_server: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of this test's own, for tests whose notifier claims every row."""
    p = await create_pool(new_database(pg_server, request.node.name), size=20)
    await add_devices(p)
    yield p
    await p.close()


@pytest.fixture(scope="module")
async def writer_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool with the batch writer's codecs (timestamps as int microseconds)."""
    p = await create_pool(database, size=30, writer=True)
    yield p
    await p.close()


async def until(predicate: Any, within: float = 10.0, step: float = 0.05) -> None:
    """Wait for an async predicate to hold (fails the test when it does not in time)."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {predicate.__name__}")
        await asyncio.sleep(step)


# ---- the API on a real uvicorn server ----------------------------------------------------


@dataclass
class Harness:
    """The parts of ``ioc.service.Service`` that the alert and silence routers use."""

    settings: Settings
    api_pool: asyncpg.Pool
    alerts: Alerts
    metrics: Metrics = field(default_factory=Metrics)
    keys: KeyCache = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyCache(self.api_pool)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the signals


@dataclass
class Api:
    url: str
    keys: dict[str, str]
    alerts: Alerts

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def client(self, role: str = "admin", timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url + "/api/v1", headers=self.headers(role),
                                 timeout=timeout)


ROLES: dict[str, tuple[str, list[str] | None]] = {
    "admin": ("admin", None), "operator": ("operator", None),
    "agency_vt": ("agency", [VI_THANH]), "agency_all": ("agency", None), "ingest": ("ingest", None),
}


@contextlib.asynccontextmanager
async def serve(database: str, pool: asyncpg.Pool, alerts: Alerts) -> AsyncIterator[Api]:
    """The FastAPI app on 127.0.0.1:<free port>, with one key per role; Alerts started."""
    keys = {}
    async with pool.acquire() as conn:
        for name, (role, districts) in ROLES.items():
            keys[name], _ = await create_key(conn, role, name=f"test-{name}", districts=districts)
    settings = Settings(_env_file=None, database_url=database, auth="on")
    app = create_app(settings, service=Harness(settings, pool, alerts))  # type: ignore[arg-type]
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                    access_log=False, lifespan="on"))
    await alerts.start()
    task = asyncio.create_task(server.serve())
    while True:
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield Api(f"http://127.0.0.1:{port}", keys, alerts)
    finally:
        alerts.close_streams()
        server.should_exit = True
        await task
        await alerts.stop()
