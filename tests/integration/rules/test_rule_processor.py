"""The rule processor's evaluation ahead (during the COPY) against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import numpy as np
import pytest

from ioc.ingest.rule_processor import RuleProcessor
from ioc.metrics import Metrics
from ioc.model import EventBatch
from ioc.rules import Correction, DeviceMeta, Evaluation, RuleBatch, RuleEngine, Transition, load_rules_text
from tests.support.events import make_batch

RULE = """
rules:
  - id: high-water
    kind: water_level
    when: {{op: ">", value: {limit}}}
    clear: {{op: "<", value: {limit}}}
    message: "{{value:.2f}} m"
"""


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.corrections: list[Correction] = []

    async def record(self, conn: asyncpg.Connection, transitions: Sequence[Transition],
                     received_at: float, corrections: Sequence[Correction] = ()) -> None:
        self.transitions += transitions
        self.corrections += corrections


def processor(limit: float) -> tuple[RuleProcessor, Recorder, list[int]]:
    batch = make_batch(1, seed=0)
    engine = RuleEngine(load_rules_text(RULE.format(limit=limit)),
                        [DeviceMeta(batch.device_id[0], "gauge", "Vị Thanh", ())], 3600.0)
    evaluations: list[int] = []
    evaluate = engine.evaluate

    def counted(b: RuleBatch) -> Evaluation:
        evaluations.append(len(b))
        return evaluate(b)

    engine.evaluate = counted  # type: ignore[method-assign]
    sink = Recorder()
    return RuleProcessor(engine, Metrics(), sink=sink), sink, evaluations


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database)
    try:
        yield conn
    finally:
        await conn.close()


async def run(proc: RuleProcessor, conn: asyncpg.Connection, events: EventBatch,
              mask: np.ndarray) -> None:
    async with conn.transaction():
        after = await proc.process(conn, events, mask, 0.0)
    if after is not None:
        after()


async def test_all_new_batch_uses_the_evaluation_made_during_the_copy(conn: asyncpg.Connection) -> None:
    proc, sink, evaluations = processor(1.2)
    events = make_batch(200, devices=1, seed=4)
    proc.prepare(events)
    await run(proc, conn, events, np.ones(len(events), bool))
    assert evaluations == [200]
    assert sink.transitions and all(t.device_id == events.device_id[0] for t in sink.transitions)


async def test_replay_or_rule_change_evaluates_again(conn: asyncpg.Connection) -> None:
    proc, sink, evaluations = processor(1.2)
    events = make_batch(200, devices=1, seed=5)
    mask = np.zeros(len(events), bool)
    mask[150:] = True  # a partial replay: only the last 50 events are new
    proc.prepare(events)
    await run(proc, conn, events, mask)
    assert evaluations == [200, 50]
    assert all(t.event_index is None or t.event_index < 50 for t in sink.transitions)

    later = make_batch(200, devices=1, seed=6)
    proc.prepare(later)
    proc.replace_rules(load_rules_text(RULE.format(limit=99.0)))  # arrives during the COPY
    sink.transitions.clear()
    await run(proc, conn, later, np.ones(len(later), bool))
    assert evaluations == [200, 50, 200, 200]
    assert not [t for t in sink.transitions if t.action == "fire"]
