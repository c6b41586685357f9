"""`ioc demo` starts every part, serves, and on Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil

from ioc.embedded.process import free_port
from tests.support.service import http


def test_demo_runs_and_stops_cleanly(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ioc.cli", "demo", "--rate", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "IOC_API_PORT": str(free_port())},
    )
    children: list[psutil.Process] = []
    try:
        url = key = None
        deadline = time.monotonic() + 90
        lines = []
        while time.monotonic() < deadline and not (url and key):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"API docs\s+(http://\S+)/docs", line):
                url = m.group(1)
            if m := re.search(r"admin key\s+(\S+)", line):
                key = m.group(1)
        assert url and key, "".join(lines[-30:])
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "postgres" in names and "mosquitto" in names and "tansu" in names
        assert "simulate" in names
        deadline = time.monotonic() + 30
        stored = 0
        while time.monotonic() < deadline and stored == 0:
            status, body = http("GET", f"{url}/metrics")
            m = re.search(r"^ioc_events_stored_total (\S+)$", body, re.M) if status == 200 else None
            stored = float(m.group(1)) if m else 0
            time.sleep(1)
        assert stored > 0, "the simulators' events should be stored"
        status, body = http("GET", f"{url}/readyz")
        assert status == 200, body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        time.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [c.cmdline() for c in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in children:
            if c.is_running():
                c.kill()
