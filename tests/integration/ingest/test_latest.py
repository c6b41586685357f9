"""Latest values per device and kind reach the device view within seconds of ingest."""

from __future__ import annotations

import datetime as dt
import json
import time

from tests.conftest import new_database
from tests.support.service import http

VN = dt.timezone(dt.timedelta(hours=7))


def test_device_view_shows_newest_value_per_kind(pg_server, service_factory) -> None:
    dsn = new_database(pg_server, "latest")
    svc = service_factory(IOC_DATABASE_URL=dsn).start()
    t0 = dt.datetime.now(VN).replace(microsecond=0) - dt.timedelta(minutes=10)
    events = [
        {"device_id": "hg-vt-wl-001", "kind": "water_level", "value": 1.5,
         "ts": (t0 + dt.timedelta(minutes=5)).isoformat()},
        {"device_id": "hg-vt-wl-001", "kind": "water_level", "value": 1.2, "ts": t0.isoformat()},
        {"device_id": "hg-vt-wl-001", "kind": "rainfall", "value": 12.5, "ts": t0.isoformat()},
    ]
    status, body = http("POST", f"{svc.url}/api/v1/ingest", json.dumps(events).encode())
    assert status == 200 and body["accepted"] == 3
    # An older reading sent later must not replace the newer one.
    late = {**events[1], "value": 0.9, "ts": (t0 - dt.timedelta(minutes=1)).isoformat()}
    assert http("POST", f"{svc.url}/api/v1/ingest", json.dumps(late).encode())[0] == 200
    deadline = time.monotonic() + 10
    device: dict = {}
    while time.monotonic() < deadline:
        status, device = http("GET", f"{svc.url}/api/v1/devices/hg-vt-wl-001")
        if status == 200 and len(device.get("last_values") or {}) == 2:
            break
        time.sleep(0.5)
    assert device["last_values"]["water_level"]["value"] == 1.5
    assert device["last_values"]["rainfall"]["value"] == 12.5
    assert device["online"] is True
