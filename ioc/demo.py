"""`ioc demo`: the embedded default — every part started locally, stopped on Ctrl-C.

PostgreSQL (with TimescaleDB when it is installed), mosquitto, a Kafka-protocol broker, the
service and two simulators (MQTT with the Vị Thanh flood, Kafka with the rest of the
province). Everything runs from temp dirs on loopback ports and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
from pathlib import Path

from ioc import logs
from ioc.api.server import make_server
from ioc.embedded.kafka import EmbeddedKafka
from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres, timescaledb_installed
from ioc.embedded.process import ServerProcess, free_port, port_open
from ioc.settings import Settings, get_settings
from ioc.storage.keys import create_key
from ioc.storage.pool import connect

log = logging.getLogger(__name__)


async def _create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()


async def _admin_key(dsn: str) -> str:
    conn = await connect(dsn)
    try:
        key, _ = await create_key(conn, "admin", name="demo")
        return key
    finally:
        await conn.close()


def _simulator(args: list[str], log_dir: Path, name: str) -> ServerProcess:
    proc = ServerProcess(name, [sys.executable, "-m", "ioc.cli", "simulate", *args],
                         log_dir / f"{name}.log")
    proc.start(lambda: True)
    return proc


async def run_demo(args: argparse.Namespace) -> int:
    base = get_settings()
    logs.configure(base.log_level)
    work = Path(tempfile.mkdtemp(prefix="ioc-demo-"))
    started: list = []
    service = None
    try:
        pg = EmbeddedPostgres(timescaledb=timescaledb_installed())
        await asyncio.to_thread(pg.start)
        started.append(pg)
        dsn = await asyncio.to_thread(pg.create_database, "ioc")
        mqtt = await asyncio.to_thread(EmbeddedMosquitto().start)
        started.append(mqtt)
        kafka = await asyncio.to_thread(EmbeddedKafka().start)
        started.append(kafka)
        await _create_topic(kafka.bootstrap, base.kafka_topic)

        port = base.api_port if not port_open(base.api_port) else free_port()
        settings = Settings(**{
            **base.model_dump(),
            "database_url": dsn, "mqtt_url": mqtt.url, "kafka_bootstrap": kafka.bootstrap,
            "kafka_session_timeout_ms": 3000, "api_port": port, "auth": "on",
        })
        from ioc.api.app import create_app
        from ioc.service import Service

        service = Service(settings)
        await service.start()
        key = await _admin_key(dsn)

        flood = [] if args.no_flood else ["--scenario", "flood"]
        started.append(_simulator(["--mqtt", mqtt.url, "--rate", str(args.rate),
                                   "--client-id", "ioc-demo-sim", *flood], work, "sim-mqtt"))
        started.append(_simulator(["--kafka", kafka.bootstrap, "--topic", settings.kafka_topic,
                                   "--rate", str(args.rate), "--form", "multi"], work, "sim-kafka"))
        server = make_server(create_app(settings, service), settings, port,
                             on_exit=service.close_streams)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers only a flag
            await asyncio.sleep(0.05)
        url = f"http://{settings.api_host}:{port}"
        print(
            f"\nioc demo is running ({service.flavour}).\n"
            f"  console      {url}/\n"
            f"  API docs     {url}/docs\n"
            f"  metrics      {url}/metrics\n"
            f"  admin key    {key}\n"
            f"  MQTT         {mqtt.url}  (topic ioc/v1/events/<device_id>)\n"
            f"  Kafka        {kafka.bootstrap}  (topic {settings.kafka_topic})\n"
            f"  PostgreSQL   {dsn}\n"
            f"  logs         {work}\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        await serving
        return 0
    finally:
        for proc in reversed(started):
            if isinstance(proc, ServerProcess):
                proc.stop()
        if service is not None:
            await service.stop()
        for server in reversed(started):
            if not isinstance(server, ServerProcess):
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(server.stop)
        log.info("demo stopped; logs kept in %s", work)
