"""The pipeline against a real PostgreSQL when the database refuses a row or our code raises.

Refused rows become ``db_rejected`` dead letters of the messages they came in; a batch that
crashes the writer is written again in halves and the message that crashes it alone twice
becomes a ``poison`` dead letter; the crash counts survive a restart (ingest_suspects).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from ioc.ingest.decode import DecodeLimits
from ioc.ingest.faults import CrashingProcessor
from ioc.ingest.pipeline import Pipeline, SubmissionResult
from ioc.ingest.quarantine import Quarantine
from ioc.metrics import Metrics
from ioc.model import PartitionMessages, RawMessage
from ioc.storage.partitions import PartitionManager
from ioc.storage.pool import create_pool
from ioc.storage.writer import BatchWriter
from ioc.tasks import Supervisor
from tests.conftest import new_database
from tests.integration.ingest.conftest import query
from tests.support.payloads import water_levels


@asynccontextmanager
async def pipeline(dsn: str, *processors: object, **kw: object) -> AsyncIterator[Pipeline]:
    writer_pool = await create_pool(dsn, size=2, writer=True)
    pool = await create_pool(dsn, size=2)
    writer = BatchWriter(writer_pool, PartitionManager("postgres"))
    await writer.start()
    metrics = Metrics()
    supervisor = Supervisor(lambda task: metrics.task_failures.labels(task).inc(), settle_s=1.0)
    pipe = Pipeline(writer, metrics, limits=DecodeLimits(), batch_wait_s=0.01,
                    processors=list(processors), supervisor=supervisor,
                    quarantine=Quarantine(pool), **kw)  # type: ignore[arg-type]
    try:
        async with pipe:
            yield pipe
    finally:
        await pool.close()
        await writer_pool.close()


class Confirmations:
    """Every confirmation a submission got (there must be exactly one each)."""

    def __init__(self) -> None:
        self.results: dict[int, list[SubmissionResult]] = {}

    def callback(self, n: int):
        self.results[n] = []
        return self.results[n].append


def sample(pipe: Pipeline, name: str, **labels: str) -> float | None:
    return pipe.metrics.registry.get_sample_value(name, labels)


def readings(prefix: str, n: int) -> list[bytes]:
    return [payload for _, _, payload in water_levels(n, prefix, devices=5)]


@pytest.fixture
def dsn(pg_server) -> str:
    return new_database(pg_server, "poison")


async def test_refused_row_is_dead_letter_of_its_original_message(dsn: str) -> None:
    """What the database refuses for one event keeps the original bytes and transport position,
    and the caller is told it was rejected, not that it was a duplicate."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("ALTER TABLE events ADD CONSTRAINT no_666 CHECK (value <> 666)")
    await conn.close()
    good = readings("refuse", 6)
    bad = json.loads(good[5])
    bad.update(event_id="refuse-bad", value=666)
    array = b"[" + b",".join([*good[:2], json.dumps(bad).encode()]) + b"]"
    kafka = PartitionMessages("ioc.events", 3, [good[2], json.dumps(bad).encode() + b" ",
                                                good[3]],
                              [json.loads(p)["device_id"].encode() for p in (good[2], good[5],
                                                                             good[3])],
                              [40, 41, 42])
    async with pipeline(dsn) as pipe:
        http_result = await pipe.submit_and_wait([RawMessage(array, "http")])
        kafka_result = await pipe.submit_and_wait(kafka)
        again = await pipe.submit_and_wait([RawMessage(array, "http")])
        assert sample(pipe, "ioc_events_rejected_total",
                      source="kafka", reason="db_rejected") == 1
    assert (http_result.accepted, http_result.duplicates) == (2, 0)
    assert [d.reason for d in http_result.rejected] == ["db_rejected"]
    assert (kafka_result.accepted, kafka_result.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates, len(again.rejected)) == (0, 2, 1)
    rows = await query(dsn, 'SELECT source, topic, "partition", "offset", reason, detail, raw '
                            "FROM dead_letters ORDER BY id")
    assert [r["reason"] for r in rows] == ["db_rejected"] * 3
    assert bytes(rows[0]["raw"]) == array and rows[0]["source"] == "http"
    assert "refuse-bad" in rows[0]["detail"] and "no_666" in rows[0]["detail"]
    assert (rows[1]["source"], rows[1]["topic"], rows[1]["partition"], rows[1]["offset"]) == \
        ("kafka", "ioc.events", 3, 41)
    assert bytes(rows[1]["raw"]) == json.dumps(bad).encode() + b" "
    stored = await query(dsn, "SELECT event_id FROM events ORDER BY event_id")
    assert [r[0] for r in stored] == sorted(["refuse-00000000", "refuse-00000001",
                                             "refuse-00000002", "refuse-00000003"])


async def test_message_that_crashes_the_writer_is_quarantined(dsn: str) -> None:
    crash = CrashingProcessor(device_id="poison-vt-wl-000")
    good = readings("calm", 200)
    poison = readings("poison", 1)[0]
    confirmations = Confirmations()
    async with pipeline(dsn, crash) as pipe:
        for i in range(0, 200, 20):  # several submissions in one batch, the poison inside one
            chunk = [RawMessage(p, "mqtt", "ioc/v1/events/" + json.loads(p)["device_id"])
                     for p in good[i:i + 20]]
            if i == 100:
                chunk.insert(7, RawMessage(poison, "mqtt", "ioc/v1/events/poison-vt-wl-000"))
            await pipe.submit(chunk, confirmations.callback(i))
        await asyncio.sleep(0.2)
        assert "pipeline-writer" in pipe.supervisor.failing
        assert "InjectedCrash" in pipe.supervisor.failing["pipeline-writer"]
        async with asyncio.timeout(60):
            await pipe.flush()
        assert pipe.quarantine.active  # the poison message is remembered
        await asyncio.sleep(1.5)
        assert pipe.supervisor.failing == {}
    assert all(len(r) == 1 for r in confirmations.results.values()), confirmations.results
    assert sum(r[0].accepted for r in confirmations.results.values()) == 200
    assert [d.reason for d in confirmations.results[100][0].rejected] == ["poison"]
    rows = await query(dsn, "SELECT source, topic, reason, detail, raw FROM dead_letters")
    assert len(rows) == 1 and rows[0]["reason"] == "poison" and bytes(rows[0]["raw"]) == poison
    assert rows[0]["topic"] == "ioc/v1/events/poison-vt-wl-000"
    assert "InjectedCrash" in rows[0]["detail"]
    assert (await query(dsn, "SELECT count(*) FROM events"))[0][0] == 200
    suspects = await query(dsn, "SELECT crashes FROM ingest_suspects")
    assert [r[0] for r in suspects] == [max(r[0] for r in suspects)]  # only the poison is left
    assert suspects[0][0] >= 2

    # Redelivered to a new process (the restart after kill -9): quarantined at once.
    async with pipeline(dsn, CrashingProcessor(device_id="poison-vt-wl-000")) as pipe:
        result = await pipe.submit_and_wait(
            [RawMessage(poison, "mqtt", "ioc/v1/events/poison-vt-wl-000")])
        assert pipe.supervisor.failing == {}
    assert [d.reason for d in result.rejected] == ["poison"]


async def test_a_crash_that_passes_loses_and_doubles_nothing(dsn: str) -> None:
    """A fault that is not about one message: written again, stored once, confirmed once."""
    good = readings("flaky", 300)
    confirmations = Confirmations()
    async with pipeline(dsn, CrashingProcessor(batches=2)) as pipe:
        for i in range(0, 300, 30):
            await pipe.submit([RawMessage(p, "http") for p in good[i:i + 30]],
                              confirmations.callback(i))
        async with asyncio.timeout(60):
            await pipe.flush()
        assert sample(pipe, "ioc_task_failures_total", task="pipeline-writer") == 2
    assert all(len(r) == 1 for r in confirmations.results.values())
    assert sum(r[0].accepted for r in confirmations.results.values()) == 300
    assert all(not r[0].rejected and not r[0].duplicates for r in confirmations.results.values())
    assert (await query(dsn, "SELECT count(*) FROM events"))[0][0] == 300
    assert (await query(dsn, "SELECT count(*) FROM dead_letters"))[0][0] == 0
    assert (await query(dsn, "SELECT count(*) FROM ingest_suspects"))[0][0] == 0


async def test_a_suspect_from_before_the_restart_crashes_once_more_then_is_poison(dsn: str) -> None:
    poison = RawMessage(readings("again", 1)[0], "kafka", "ioc.events", 0, 7, b"again-vt-wl-000")
    async with pipeline(dsn, CrashingProcessor(device_id="again-vt-wl-000")) as pipe:
        pending = asyncio.create_task(pipe.submit_and_wait([poison]))
        for _ in range(100):
            rows = await query(dsn, "SELECT crashes FROM ingest_suspects")
            if rows:
                break
            await asyncio.sleep(0.05)
        assert [r[0] for r in rows] == [1]
        assert [d.reason for d in (await pending).rejected] == ["poison"]
    # The state a kill -9 right after the first crash leaves behind (a real one: test_crash.py).
    await query(dsn, "DELETE FROM dead_letters")
    await query(dsn, "UPDATE ingest_suspects SET crashes = 1")

    async with pipeline(dsn, CrashingProcessor(device_id="again-vt-wl-000")) as pipe:
        assert pipe.quarantine.crashes(poison) == 1
        others = [RawMessage(p, "kafka", "ioc.events", 0, 8 + i,
                             json.loads(p)["device_id"].encode())
                  for i, p in enumerate(readings("after", 5))]
        result = await pipe.submit_and_wait([poison, *others])
    assert result.accepted == 5 and [d.reason for d in result.rejected] == ["poison"]
    rows = await query(dsn, 'SELECT reason, "offset" FROM dead_letters')
    assert [(r[0], r[1]) for r in rows] == [("poison", 7)]
