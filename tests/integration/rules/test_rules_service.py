"""The rule engine inside the running service: state across kill -9, live changes, backtest."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.support.db import fetch
from tests.support.service import ServiceProcess, http

VN = dt.timezone(dt.timedelta(hours=7))
DEVICE = "hg-vt-wl-001"  # Vị Thanh in config/devices.yaml
RULES = """
rules:
  - id: flood-test
    kind: water_level
    where: {district: "Vị Thanh"}
    when: {op: ">", value: 1.8}
    for: 5m
    clear: {op: "<", value: 1.7}
    severity: critical
    message: "Mực nước {value:.2f} m tại {device_name}"
"""


def reading(ts: dt.datetime, value: float, device: str = DEVICE) -> dict:
    return {"device_id": device, "kind": "water_level", "ts": ts.isoformat(), "value": value,
            "unit": "m"}


def ingest(svc: ServiceProcess, *events: dict) -> dict:
    status, body = http("POST", f"{svc.url}/api/v1/ingest", json.dumps(list(events)).encode())
    assert status == 200, body
    return body


def states(dsn: str, rule_id: str) -> dict[str, dict]:
    rows = asyncio.run(fetch(dsn, "SELECT device_id, state::text FROM rule_state WHERE rule_id = $1",
                             rule_id))
    return {r[0]: json.loads(r[1]) for r in rows}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def start(tmp_path: Path, dsn: str, rules_file: Path) -> ServiceProcess:
    return ServiceProcess(tmp_path, {"IOC_DATABASE_URL": dsn,
                                     "IOC_RULES_FILE": str(rules_file)}).start()


def test_pending_for_timer_survives_kill9(pg_server, tmp_path, rules_file) -> None:
    dsn = new_database(pg_server, "rules_kill")
    svc = start(tmp_path, dsn, rules_file)
    try:
        t0 = dt.datetime.now(VN).replace(microsecond=0) - dt.timedelta(minutes=30)
        ingest(svc, reading(t0, 2.0), reading(t0 + dt.timedelta(minutes=3), 2.05))
        pending = states(dsn, "flood-test")[DEVICE]
        assert pending.get("run_start") == int(t0.timestamp() * 1e6)
        assert not pending.get("firing")

        svc.kill()
        svc.start()
        ingest(svc, reading(t0 + dt.timedelta(minutes=6), 2.1))
        fired = states(dsn, "flood-test")[DEVICE]
        assert fired.get("firing") is True, fired

        svc.kill()
        svc.start()
        # Still firing after another crash: a further high reading must not fire again.
        ingest(svc, reading(t0 + dt.timedelta(minutes=7), 2.2))
        assert states(dsn, "flood-test")[DEVICE].get("firing") is True
        ingest(svc, reading(t0 + dt.timedelta(minutes=8), 1.6))
        assert not states(dsn, "flood-test")[DEVICE].get("firing")
        alerts = asyncio.run(fetch(dsn, "SELECT state, count, started_at, resolved_at, district, "
                                        "value FROM alerts WHERE rule_id = 'flood-test'"))
        assert len(alerts) == 1, "fired exactly once across two kill -9s"
        alert = alerts[0]
        assert (alert["state"], alert["count"], alert["district"]) == ("resolved", 1, "Vị Thanh")
        assert alert["started_at"] == t0 + dt.timedelta(minutes=6)
        assert alert["resolved_at"] == t0 + dt.timedelta(minutes=8)
    finally:
        svc.kill()


def test_rules_api_changes_take_effect_without_restart(pg_server, tmp_path, rules_file) -> None:
    dsn = new_database(pg_server, "rules_api")
    svc = start(tmp_path, dsn, rules_file)
    try:
        base = f"{svc.url}/api/v1/rules"
        status, body = http("GET", base)
        assert status == 200 and [r["id"] for r in body["items"]] == ["flood-test"]
        assert body["items"][0]["source"] == "file"

        bad = {"id": "bad", "kind": "water_level", "when": {"op": "~", "value": 1}}
        status, body = http("POST", base, json.dumps(bad).encode())
        assert status == 422 and body["error"] == "invalid_rule"
        assert body["detail"] == ["rule 'bad': when.op: must be one of >, >=, <, <=, ==, !=, "
                                  "between, outside"]

        rule = {"id": "nga-bay-low", "kind": "water_level", "where": {"district": "Ngã Bảy"},
                "when": {"op": "<", "value": 0.2}, "severity": "warning"}
        status, body = http("POST", base, json.dumps(rule).encode())
        assert status == 201 and body["version"] == 1 and body["source"] == "api"
        status, body = http("POST", base, json.dumps(rule).encode())
        assert status == 409

        now = dt.datetime.now(VN).replace(microsecond=0) - dt.timedelta(minutes=5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "hg-nb-wl-001" not in states(dsn, "nga-bay-low"):
            ingest(svc, reading(now, 0.1, device="hg-nb-wl-001"))
            now += dt.timedelta(seconds=30)
            time.sleep(0.5)
        assert states(dsn, "nga-bay-low")["hg-nb-wl-001"].get("firing") is True

        status, body = http("PUT", f"{base}/nga-bay-low",
                            json.dumps({**rule, "severity": "critical"}).encode())
        assert status == 200 and body["version"] == 2
        status, body = http("GET", f"{base}/nga-bay-low")
        assert [h["action"] for h in body["history"]] == ["create", "update"]
        status, _ = http("DELETE", f"{base}/nga-bay-low")
        assert status == 204
        status, _ = http("GET", f"{base}/nga-bay-low")
        assert status == 404
    finally:
        svc.kill()


def test_backtest_over_stored_history(pg_server, tmp_path, rules_file) -> None:
    dsn = new_database(pg_server, "rules_backtest")
    svc = start(tmp_path, dsn, rules_file)
    try:
        t0 = dt.datetime.now(VN).replace(microsecond=0) - dt.timedelta(hours=3)
        levels = [1.5, 1.9, 2.0, 2.1, 2.2, 1.6, 1.5]  # one reading every 2 minutes
        ingest(svc, *[reading(t0 + dt.timedelta(minutes=2 * i), v) for i, v in enumerate(levels)])
        q = f"from={(t0 - dt.timedelta(minutes=1)).isoformat()}&to={dt.datetime.now(VN).isoformat()}"
        status, body = http("POST", f"{svc.url}/api/v1/rules/flood-test/backtest?"
                            + q.replace("+", "%2B"))
        assert status == 200, body
        assert body["events"] == len(levels)
        actions = [(t["action"], t["value"]) for t in body["transitions"]]
        # Run starts at 1.9 (t=2m); held 5m at t=8m (2.2) -> fire; 1.6 < 1.7 -> clear.
        assert actions == [("fire", 2.2), ("clear", 1.6)]
        assert body["transitions"][0]["message"] == "Mực nước 2.20 m tại Trạm Cầu Cái Nhúc"
    finally:
        svc.kill()


def test_sighup_reloads_rules_and_keeps_last_good(pg_server, tmp_path, rules_file) -> None:
    dsn = new_database(pg_server, "rules_sighup")
    svc = start(tmp_path, dsn, rules_file)
    try:
        rules_file.write_text(RULES + """
  - id: rain-heavy
    kind: rainfall
    when: {op: ">", value: 50}
    severity: warning
""")
        os.kill(svc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        ids: list[str] = []
        while time.monotonic() < deadline and "rain-heavy" not in ids:
            time.sleep(0.3)
            ids = [r["id"] for r in http("GET", f"{svc.url}/api/v1/rules")[1]["items"]]
        assert ids == ["flood-test", "rain-heavy"]

        rules_file.write_text("rules:\n  - id: broken\n    when: {op: '>'}\n")
        os.kill(svc.pid, signal.SIGHUP)
        time.sleep(1.5)
        ids = [r["id"] for r in http("GET", f"{svc.url}/api/v1/rules")[1]["items"]]
        assert ids == ["flood-test", "rain-heavy"], "an invalid file must keep the last good rules"
        assert "reload refused" in svc.log()
        assert svc.running()
    finally:
        svc.kill()


def test_service_refuses_to_start_on_an_invalid_rule_file(tmp_path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: flood\n    kind: water_level\n    when: {op: '>>', value: 2}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    result = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "run"], capture_output=True, text=True, timeout=60,
        env={**env, "IOC_RULES_FILE": str(bad), "IOC_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"},
    )
    assert result.returncode == 1
    assert f"{bad}:4: rule 'flood': when.op: must be one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_offline_storm_while_a_backlog_drains(pg_server, tmp_path) -> None:
    """Old events arriving (a backlog after an outage) are not silence, even with a live
    device's fresh reading in every batch; real silence is."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: offline\n    absent: {for: 10s}\n    severity: info\n")
    dsn = new_database(pg_server, "rules_backlog")
    svc = start(tmp_path, dsn, rules)
    try:
        t0 = dt.datetime.now(VN).replace(microsecond=0) - dt.timedelta(hours=1)
        devices = ["hg-vt-wl-001", "hg-vt-wl-002", "hg-nb-wl-001"]
        live = "hg-nb-wl-002"
        for second in range(0, 24, 2):  # 12 s of draining, two absence ticks at least
            ingest(svc, *[reading(t0 + dt.timedelta(seconds=second), 1.0, device=d)
                          for d in devices], reading(dt.datetime.now(VN), 1.0, device=live))
            time.sleep(1)
        fired = asyncio.run(fetch(dsn, "SELECT count(*) FROM alerts WHERE rule_id = 'offline'"))
        assert fired[0][0] == 0, "a draining backlog must not look like silence"
        deadline = time.monotonic() + 40
        n = 0
        while time.monotonic() < deadline and n < len(devices) + 1:
            time.sleep(1)
            n = asyncio.run(fetch(dsn, "SELECT count(*) FROM alerts WHERE rule_id = 'offline'"))[0][0]
        assert n == len(devices) + 1, "once nothing arrives, silent devices are reported"
    finally:
        svc.kill()
