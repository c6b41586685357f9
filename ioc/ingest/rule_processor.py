"""The rule engine inside each batch's transaction: evaluate new events, persist state, record alerts.

Only events stored for the first time are evaluated (a replay was evaluated when it was
first stored). The engine's state changes (and its checkpoints) are written to
``rule_state`` and its transitions and corrections handed to the alert sink in the same
transaction, and applied to the in-memory engine only after that transaction committed —
so a crash or a failed transaction neither loses a pending ``for`` timer, nor fires twice,
nor loses the corrections of a late event (redelivered, it replays again). Empty tick
batches run the absence timer.

Rule and device changes (file reload, API) are queued and applied at the start of the next
batch, because the engine must not change between an evaluation and its commit.

A batch is evaluated ahead, as if all its events were new, while the database takes its
COPY (``prepare``): the evaluation then costs the transaction no time. ``process`` uses it if
the events did all prove new and the engine has not changed since; else it evaluates again.

The absence timer compares device clocks with "now" minus the pipeline's backlog lag. While a
backlog drains (after an outage), every device's clock trails the wall clock by the backlog's
age; judging silence by the wall clock then would report the whole province offline. A batch's
lag is how far its median event trailed its arrival, and the lag applied is the largest of the
batches of the last ``LAG_HOLD_S``: fresh readings of a few live devices mixed into a draining
backlog (a batch's newest event, as the lag once was) made it zero for a tick, and every
device of the backlog offline. Once no batch has arrived for ``LAG_HOLD_S`` no lag applies:
devices that send nothing really are silent.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import asyncpg
import numpy as np

from ioc.metrics import Metrics
from ioc.model import EventBatch
from ioc.rules import Correction, DeviceMeta, Evaluation, Rule, RuleBatch, RuleEngine, Transition
from ioc.storage.rules import delete_states, save_checkpoints, save_states

log = logging.getLogger(__name__)

PostCommit = Callable[[], None]
LAG_HOLD_S = 10.0


class AlertSink(Protocol):
    async def record(
        self, conn: asyncpg.Connection, transitions: Sequence[Transition], received_at: float,
        corrections: Sequence[Correction] = (),
    ) -> PostCommit | None: ...


class RuleProcessor:
    def __init__(self, engine: RuleEngine, metrics: Metrics, sink: AlertSink | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.sink = sink
        self._pending_rules: tuple[Rule, ...] | None = None
        self._pending_devices: list[DeviceMeta] = []
        # (seen at, lag) of the recent batches whose lag no later batch's exceeds: the
        # window's largest is the first one still within LAG_HOLD_S.
        self._lags: deque[tuple[float, int]] = deque()
        self._prepared: tuple[EventBatch, Evaluation] | None = None

    def replace_rules(self, rules: Sequence[Rule]) -> None:
        """Use ``rules`` from the next batch on (state of unchanged rules is kept)."""
        self._pending_rules = tuple(rules)

    def upsert_devices(self, devices: Sequence[DeviceMeta]) -> None:
        self._pending_devices.extend(devices)

    async def _apply_pending(self, conn: asyncpg.Connection) -> None:
        if self._pending_devices:
            self.engine.upsert_devices(self._pending_devices)
            self._pending_devices = []
        if self._pending_rules is not None:
            rules, self._pending_rules = self._pending_rules, None
            dropped = self.engine.set_rules(rules)
            await delete_states(conn, dropped)
            log.info("rule engine now has %d rules (%d enabled); state reset for %s",
                     len(rules), sum(r.enabled for r in rules), dropped or "none")

    def prepare(self, events: EventBatch) -> None:
        self._prepared = None
        if len(events) and self._pending_rules is None and not self._pending_devices:
            self._prepared = events, self._evaluate(
                RuleBatch(events.device_id, events.kind, events.ts, events.value))

    async def process(
        self, conn: asyncpg.Connection, events: EventBatch, new_mask: np.ndarray,
        received_at: float,
    ) -> PostCommit | None:
        await self._apply_pending(conn)
        prepared, self._prepared = self._prepared, None
        if len(events) == 0:
            ev = self.engine.check_absent(self._absence_now_us())
        else:
            self._note_lag(events, received_at)
            if new_mask.all():
                if (prepared is not None and prepared[0] is events
                        and self.engine.is_current(prepared[1])):
                    ev = prepared[1]
                else:
                    ev = self._evaluate(
                        RuleBatch(events.device_id, events.kind, events.ts, events.value))
            elif new_mask.any():
                idx = np.flatnonzero(new_mask)
                ev = self._evaluate(RuleBatch(np.asarray(events.device_id, dtype=object)[idx],
                                              np.asarray(events.kind, dtype=object)[idx],
                                              events.ts[idx], events.value[idx]))
            else:
                return None
        await save_states(conn, ev.state_rows())
        checkpoints = ev.checkpoint_changes()
        await save_checkpoints(conn, checkpoints.dropped, checkpoints.taken, checkpoints.horizons,
                               checkpoints.written, checkpoints.rows)
        after_sink = None
        if (ev.transitions or ev.corrections) and self.sink is not None:
            after_sink = await self.sink.record(conn, ev.transitions, received_at, ev.corrections)
        engine, metrics = self.engine, self.metrics

        def after_commit() -> None:
            engine.commit(ev)
            for c in ev.corrections:
                metrics.rule_corrections.labels(c.action).inc()
            metrics.rule_recent_events.set(engine.recent_events)
            if after_sink is not None:
                after_sink()

        return after_commit

    def _evaluate(self, batch: RuleBatch) -> Evaluation:
        started = time.perf_counter()
        ev = self.engine.evaluate(batch)
        self.metrics.rule_eval_seconds.observe(time.perf_counter() - started)
        return ev

    def _note_lag(self, events: EventBatch, received_at: float) -> None:
        lag = max(0, int(received_at * 1e6) - int(np.median(events.ts)))
        lags = self._lags
        while lags and lags[-1][1] <= lag:
            lags.pop()
        lags.append((time.monotonic(), lag))

    def _absence_now_us(self) -> int:
        """Wall-clock now, less the backlog lag while batches are still arriving."""
        lags = self._lags
        since = time.monotonic() - LAG_HOLD_S
        while lags and lags[0][0] <= since:
            lags.popleft()
        return time.time_ns() // 1000 - (lags[0][1] if lags else 0)
