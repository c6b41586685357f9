"""Real servers for the test session: PostgreSQL (and TimescaleDB when installed), mosquitto, tansu.

Each server starts once per session on a free loopback port in a temp dir and is stopped by
PID at the end; each test module gets a database of its own, migrated.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres, timescaledb_installed
from ioc.embedded.process import ServerProcess
from ioc.storage.migrations import migrate_url

TESTS = Path(__file__).parent
ServerProcess.die_with_parent = True  # an interrupted run must not leave servers behind


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (TESTS / "integration") in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def tsdb_server() -> Iterator[EmbeddedPostgres]:
    if not timescaledb_installed():
        pytest.skip("TimescaleDB is not installed on this machine (see README: TimescaleDB tests)")
    with EmbeddedPostgres(timescaledb=True) as pg:
        yield pg


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[EmbeddedMosquitto]:
    with EmbeddedMosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    with EmbeddedKafka() as broker:
        yield broker


_counter = iter(range(1_000_000))


def new_database(server: EmbeddedPostgres, hint: str, *, migrated: bool = True) -> str:
    """A fresh database on ``server`` (migrated unless asked not to); returns its DSN."""
    name = re.sub(r"[^a-z0-9_]", "_", hint.lower())[-40:] + f"_{next(_counter)}"
    dsn = server.create_database(name)
    if migrated:
        # A thread of its own, so this also works from inside a running event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, migrate_url(dsn)).result()
    return dsn


@pytest.fixture(scope="module")
def database(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> str:
    """A migrated plain-PostgreSQL database for this test module."""
    return new_database(pg_server, request.module.__name__)


@pytest.fixture(scope="module")
def tsdb_database(request: pytest.FixtureRequest, tsdb_server: EmbeddedPostgres) -> str:
    """A migrated TimescaleDB database for this test module."""
    return new_database(tsdb_server, "ts_" + request.module.__name__)
