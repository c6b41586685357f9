"""The operator console in Debian's Chromium (Playwright) against the real service.

The service runs as `ioc run` (IOC_AUTH=on) on a database of this module's own, with the
province's device registry, a small rules file without ``for`` (so that one reading fires) and
a real mosquitto; events come in over MQTT (``mosquitto_pub``) and the HTTP ingest API.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import shutil
import subprocess
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from tests.conftest import new_database
from tests.support.db import fetch, make_keys
from tests.support.service import REPO, ServiceProcess, http

CHROMIUM = "/usr/bin/chromium"
VENDOR = REPO / "ioc" / "static" / "vendor" / "uPlot.iife.min.js"
SCREENSHOTS = Path(__file__).parent / "screenshots"
VN = dt.timezone(dt.timedelta(hours=7))
T = TypeVar("T")

RULES_YAML = """
rules:
  - id: flood-vi-thanh
    kind: water_level
    where: {district: "Vị Thanh"}
    when: {op: ">", value: 1.8}
    clear: {op: "<", value: 1.7}
    severity: critical
    message: "Mực nước {value:.2f} m tại {device_name} vượt báo động 1,80 m"
  - id: flood-nga-bay
    kind: water_level
    where: {district: "Ngã Bảy"}
    when: {op: ">", value: 1.9}
    clear: {op: "<", value: 1.8}
    severity: critical
    message: "Mực nước {value:.2f} m tại {device_name} (Ngã Bảy) vượt báo động 1,90 m"
  - id: heavy-rain
    kind: rainfall
    when: {op: ">=", value: 50}
    clear: {op: "<", value: 20}
    severity: warning
    message: "Mưa lớn {value:.0f} mm/giờ tại {device_name} ({district})"
  - id: pm25-unhealthy
    kind: pm25
    when: {op: ">", value: 55}
    clear: {op: "<=", value: 50}
    severity: warning
    message: "Bụi mịn PM2.5 {value:.0f} µg/m³ tại {device_name} vượt 55 µg/m³"
  - id: salinity-watch
    kind: salinity
    when: {op: ">", value: 2.0}
    clear: {op: "<", value: 1.5}
    severity: info
    message: "Độ mặn {value:.1f} g/L tại {device_name} — theo dõi lấy nước tưới"
"""

# Test name -> (role, districts) of the key.
ROLES: dict[str, tuple[str, list[str] | None]] = {
    "admin": ("admin", None),
    "operator": ("operator", None),
    "agency_vt": ("agency", ["Vị Thanh"]),
    "ingest": ("ingest", None),
}

# Normal readings per main kind (none breaks a rule), to bring devices online.
NORMAL = {"water_level": ("water_level", 1.2, "m"), "rainfall": ("rainfall", 4.0, "mm"),
          "salinity": ("salinity", 0.8, "g/L"), "pm25": ("pm25", 24.0, "µg/m³"),
          "traffic_count": ("traffic_count", 84.0, None), "camera": ("camera.crowd", 0.12, None)}


def now_ts(offset_s: float = 0) -> str:
    return (dt.datetime.now(VN) + dt.timedelta(seconds=offset_s)).isoformat(timespec="milliseconds")


def event(device: str, kind: str, value: float, unit: str | None = None, ts: str | None = None
          ) -> dict[str, Any]:
    return {"device_id": device, "kind": kind, "ts": ts or now_ts(), "value": value, "unit": unit}


@dataclass
class Console:
    service: ServiceProcess
    broker: EmbeddedMosquitto
    dsn: str
    browser: Browser
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.service.url

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return run(fetch(self.dsn, query, *args))

    def publish(self, payload: dict[str, Any]) -> None:
        """One reading over MQTT, QoS 1, as a field device sends it."""
        subprocess.run(
            [shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", "127.0.0.1",
             "-p", str(self.broker.port), "-q", "1", "-t", f"ioc/v1/events/{payload['device_id']}",
             "-m", json.dumps(payload, ensure_ascii=False)],
            check=True, timeout=10,
        )

    def ingest(self, events: list[dict[str, Any]]) -> None:
        status, body = http("POST", f"{self.url}/api/v1/ingest",
                            json.dumps(events, ensure_ascii=False).encode(), key=self.keys["ingest"])
        assert status in (200, 202), body

    def open(self, role: str, hash_path: str = "/", *, width: int = 1920, height: int = 1080) -> Page:
        """A page signed in with ``role``'s key, live (the alert stream is connected)."""
        page = self.browser.new_context(viewport={"width": width, "height": height},
                                        timezone_id="Asia/Ho_Chi_Minh", locale="vi-VN").new_page()
        page.goto(f"{self.url}/#{hash_path}")
        page.fill("#login-key", self.keys[role])
        page.click("#login-form button[type=submit]")
        page.wait_for_selector('#conn[data-state="live"]', timeout=15_000)
        return page


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a thread of its own: Playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def tide(i: int) -> float:
    """A semi-diurnal tide (12.4 h) around 1.35 m that peaks above the 1.8 m alarm."""
    return round(1.35 + 0.55 * math.sin(2 * math.pi * i * 300 / (12.42 * 3600)), 3)


def seed(console: Console) -> None:
    """A province that looks like a morning at the IOC: most devices reporting, some alerts,
    and 24 h of tide at hg-vt-wl-001 with a two-hour outage."""
    devices = console.sql("SELECT id, kind FROM devices ORDER BY id")
    start = dt.datetime.now(VN) - dt.timedelta(hours=24)
    history = [
        event("hg-vt-wl-001", "water_level", tide(i), "m",
              (start + dt.timedelta(minutes=5 * i)).isoformat())
        for i in range(288) if not 150 <= i < 174
    ]
    console.ingest(history)
    alerting = {"hg-nb-wl-001": ("water_level", 2.04, "m"), "hg-vth-rf-001": ("rainfall", 62, "mm"),
                "hg-ph-pm-001": ("pm25", 71, "µg/m³"), "hg-ct-sal-001": ("salinity", 2.6, "g/L")}
    console.ingest([event(d["id"], *NORMAL[d["kind"]]) for i, d in enumerate(devices)
                    if d["kind"] in NORMAL and i % 7 != 3 and d["id"] not in alerting
                    and d["id"] != "hg-vt-wl-001"])
    console.ingest([event(device, *reading, ts=now_ts(-1500 + 300 * i))
                    for i, (device, reading) in enumerate(alerting.items())])
    for k in range(3):
        console.ingest([event("hg-ph-pm-001", "pm25", 73 + 4 * k, "µg/m³", now_ts(-90 + 30 * k))])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is missing: run `make setup` (scripts/setup-os.sh installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-gpu"])
        yield b
        b.close()


@contextlib.contextmanager
def running_console(pg_server: EmbeddedPostgres, mosquitto: EmbeddedMosquitto, browser: Browser,
                    tmp: Path, name: str, rules_yaml: str, env: dict[str, str] | None = None
                    ) -> Iterator[Console]:
    """`ioc run` with authentication on, a database called ``name`` and ``rules_yaml``."""
    if not VENDOR.exists():
        pytest.fail(f"{VENDOR.relative_to(REPO)} is missing: run `make setup` (npm ci + copy)")
    rules = tmp / "rules.yaml"
    rules.write_text(rules_yaml, encoding="utf-8")
    dsn = new_database(pg_server, name)
    service = ServiceProcess(tmp, {
        "IOC_DATABASE_URL": dsn, "IOC_AUTH": "on", "IOC_TIMESCALEDB": "off",
        "IOC_MQTT_URL": mosquitto.url, "IOC_MQTT_CLIENT_ID": f"ioc-{name}-{os.getpid()}",
        "IOC_RULES_FILE": str(rules), **(env or {}),
    })
    service.start()
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        yield Console(service, mosquitto, dsn, browser, run(make_keys(dsn, ROLES)))
    finally:
        service.stop()


@pytest.fixture(scope="module")
def console(pg_server: EmbeddedPostgres, mosquitto: EmbeddedMosquitto, browser: Browser,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    # These tests follow single alerts row by row: storm grouping is off (test_storm.py has it;
    # the five Vị Thanh gauges these tests raise within seconds would make one).
    with running_console(pg_server, mosquitto, browser, tmp_path_factory.mktemp("console"),
                         "console", RULES_YAML, {"IOC_STORM_WINDOW": "0"}) as running:
        seed(running)
        yield running
