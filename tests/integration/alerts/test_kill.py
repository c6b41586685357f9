"""kill -9 around the webhook send: the notification survives in the outbox and arrives after a
restart, signed, under the delivery id it was written with.

The notifier runs in a child process (``notifier_child.py``: Alerts built against the test
database) so that it can be killed with SIGKILL at the chosen moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ioc.embedded.postgres import EmbeddedPostgres
from tests.conftest import new_database
from tests.integration.alerts.notifier_child import SECRET, TIMEOUT_S
from tests.integration.alerts.receiver import Receiver

REPO = Path(__file__).resolve().parents[3]


class Child:
    def __init__(self, log: Path, *args: str) -> None:
        self.log = log.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.alerts.notifier_child", *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)

    def expect(self, line: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            got = self.proc.stdout.readline().decode().strip()
            if got == line:
                return
            if not got and self.proc.poll() is not None:
                break
        pytest.fail(f"child did not print {line!r}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Any]:
    started: list[Child] = []

    def start(*args: str) -> Child:
        child = Child(tmp_path / "child.log", *args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


def sql(dsn: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    return asyncio.run(run())


def devices(dsn: str) -> None:
    sql(dsn, "INSERT INTO devices (id, district, registered_by) VALUES"
             " ('hg-vt-wl-001', 'Vị Thanh', 'file')")


def test_killed_after_commit_before_send(pg_server: EmbeddedPostgres, children: Any) -> None:
    dsn = new_database(pg_server, "kill_before_send")
    devices(dsn)
    with Receiver() as receiver:
        url = f"{receiver.url}/kill"
        # The storm window holds the webhook for 2 s: the kill lands before any send.
        first = children(dsn, url, "2", "kill-flood", "hg-vt-wl-001")
        first.expect("committed")
        first.kill()
        time.sleep(2.5)
        assert receiver.at("/kill") == []
        (row,) = sql(dsn, "SELECT delivery_id, delivered_at, attempts FROM outbox")
        assert row["delivered_at"] is None and row["attempts"] == 0

        second = children(dsn, url, "2")
        second.expect("running")
        got = receiver.wait("/kill", 1, timeout=20)
        time.sleep(1.0)
        assert len(receiver.at("/kill")) == 1
    (req,) = got
    assert req.signed_with(SECRET)
    assert req.delivery_id == req.json["delivery_id"] == str(row["delivery_id"])
    assert req.json["devices"] == ["hg-vt-wl-001"] and req.json["rule_id"] == "kill-flood"
    (after,) = sql(dsn, "SELECT delivered_at, attempts FROM outbox")
    assert after["delivered_at"] is not None and after["attempts"] == 1


def test_killed_while_sending_is_resent_with_the_same_delivery_id(
        pg_server: EmbeddedPostgres, children: Any) -> None:
    dsn = new_database(pg_server, "kill_while_sending")
    devices(dsn)
    # The first request hangs (the child dies before it learns the answer); later ones succeed.
    with Receiver(lambda path, n: (200, 10.0 if n == 0 else 0.0)) as receiver:
        url = f"{receiver.url}/kill"
        first = children(dsn, url, "0", "kill-fire", "hg-vt-wl-001")
        first.expect("committed")
        assert len(receiver.wait("/kill", 1, timeout=10)) == 1
        first.kill()
        (row,) = sql(dsn, "SELECT delivery_id, delivered_at, attempts FROM outbox")
        assert row["delivered_at"] is None and row["attempts"] == 0

        second = children(dsn, url, "0")
        second.expect("running")
        # Re-sent once the dead process's claim lease (timeout + 10 s) has run out.
        got = receiver.wait("/kill", 2, timeout=TIMEOUT_S + 25)
    assert len(got) == 2
    assert {r.delivery_id for r in got} == {str(row["delivery_id"])}
    assert got[0].body == got[1].body and all(r.signed_with(SECRET) for r in got)
    (after,) = sql(dsn, "SELECT delivered_at, attempts FROM outbox")
    assert after["delivered_at"] is not None and after["attempts"] == 1
