"""The supervisor: a failing task is logged, counted, reported, and restarted or made fatal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ioc.tasks import Supervisor, cancel_and_wait


async def test_a_failing_task_is_restarted_and_reported_until_it_settles(
        caplog: pytest.LogCaptureFixture) -> None:
    failures: list[str] = []
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"boom {runs}")
        await asyncio.sleep(3600)

    supervisor = Supervisor(failures.append, first_backoff_s=0.05, settle_s=0.2)
    with caplog.at_level(logging.ERROR):
        task = supervisor.spawn("flusher", flaky)
        await asyncio.sleep(0.03)
        assert supervisor.failing == {"flusher": "RuntimeError: boom 1"}
        await asyncio.sleep(0.25)
        assert runs == 3 and failures == ["flusher", "flusher"]
        assert "RuntimeError: boom 2" in supervisor.failing["flusher"]
        await asyncio.sleep(0.3)
        assert supervisor.failing == {}
        await cancel_and_wait(task)
    assert [r.exc_info is not None for r in caplog.records] == [True, True]
    assert not supervisor.fatal.is_set()


async def test_a_fatal_task_asks_the_service_to_stop() -> None:
    async def broken() -> None:
        raise ValueError("lost track of the partition")

    supervisor = Supervisor(first_backoff_s=0.01, settle_s=0.01)
    task = supervisor.spawn("kafka-consume", broken, fatal=True)
    async with asyncio.timeout(1):
        await supervisor.fatal.wait()
    await task
    assert supervisor.fatal_reason == "kafka-consume: ValueError: lost track of the partition"
    await asyncio.sleep(0.05)
    assert "kafka-consume" in supervisor.failing  # for good: the service is stopping


async def test_a_task_that_ends_or_is_cancelled_is_no_failure() -> None:
    supervisor = Supervisor()

    async def done() -> None:
        return None

    await supervisor.spawn("once", done)
    forever = supervisor.spawn("forever", lambda: asyncio.sleep(3600))
    await cancel_and_wait(forever)
    assert supervisor.failing == {} and not supervisor.fatal.is_set()
