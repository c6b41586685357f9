"""`ioc keys create | list | revoke`: printed once, listed without the secret, revocable."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import new_database
from tests.support.service import ServiceProcess, http


def ioc(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run([sys.executable, "-m", "ioc.cli", "keys", *args], capture_output=True,
                          text=True, timeout=60, env={**env, "IOC_DATABASE_URL": dsn})


def test_create_list_revoke(pg_server, tmp_path) -> None:
    dsn = new_database(pg_server, "keys")
    key = ioc(dsn, "create", "--role", "agency", "--districts", "Vị Thanh", "--name", "sở TN&MT")
    assert key.returncode == 0
    secret = key.stdout.strip()
    listed = ioc(dsn, "list")
    assert listed.returncode == 0
    line = listed.stdout.strip()
    assert "agency" in line and "Vị Thanh" in line and "sở TN&MT" in line and "active" in line
    assert secret not in listed.stdout and secret[:12] in listed.stdout

    svc = ServiceProcess(tmp_path, {"IOC_DATABASE_URL": dsn, "IOC_AUTH": "on"}).start()
    try:
        assert http("GET", f"{svc.url}/api/v1/devices", key=secret)[0] == 200
        key_id = line.split("\t")[0]
        assert ioc(dsn, "revoke", key_id).returncode == 0
        svc.stop()
        svc.start()
        status, body = http("GET", f"{svc.url}/api/v1/devices", key=secret)
        assert status == 401 and body["error"] == "unauthorized"
        assert "revoked" in ioc(dsn, "list").stdout
        again = ioc(dsn, "revoke", key_id)
        assert again.returncode == 1 and again.stderr.strip() == \
            f"ioc keys: no active key with id {key_id}"
    finally:
        svc.kill()
