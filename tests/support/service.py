"""`ioc run` as a real child process, for tests that kill -9 it, restart it and call its API."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ioc.embedded.process import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
# IOC_* variables of the test run that every service it starts takes on (all others are
# dropped): `make test` runs an ingest module again with IOC_ACCELERATE=false.
PASSED_ON = ("IOC_ACCELERATE",)


def http(method: str, url: str, body: bytes | None = None, key: str | None = None,
         timeout: float = 30) -> tuple[int, dict | list | str]:
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class ServiceProcess:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.env = {
            "IOC_API_PORT": str(self.port),
            "IOC_AUTH": "off",
            "IOC_DEVICES_FILE": str(REPO / "config" / "devices.yaml"),
            "IOC_RULES_FILE": str(REPO / "config" / "rules.yaml"),
            "IOC_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "IOC_LOG_LEVEL": "INFO",
            **env,
        }
        self.runs = 0
        self._proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            status, _ = http("GET", f"{self.url}/readyz", timeout=2)
        except OSError:
            return False
        return status == 200

    def child_env(self) -> dict[str, str]:
        """This process's environment without its IOC_* settings (but those PASSED_ON), and
        the service's own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_") or k in PASSED_ON}
        return {**env, **self.env}

    def start(self, timeout: float = 60) -> ServiceProcess:
        self.runs += 1
        self._proc = ServerProcess(
            "ioc", [sys.executable, "-m", "ioc.cli", "run"], self.tmp / f"ioc-{self.runs}.log",
            env=self.child_env(),
        )
        self._proc.start(self.ready, timeout=timeout)
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def kill(self) -> None:
        """kill -9: no chance to drain, ack or commit."""
        if self._proc:
            self._proc.kill()

    def stop(self) -> None:
        """SIGTERM: the service drains and confirms what it holds, then exits."""
        if self._proc:
            self._proc.stop(timeout=60)

    @property
    def returncode(self) -> int | None:
        return self._proc.proc.returncode if self._proc and self._proc.proc else None

    def running(self) -> bool:
        return bool(self._proc and self._proc.running())

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("ioc-*.log")))
