"""A fault the tests inject into a running service: a batch processor that raises.

Not a setting of the service: the supervision and quarantine tests start ``ioc run`` with
``IOC_TEST_CRASH_DEVICE=<device id>`` (every batch holding an event of that device raises
inside its transaction, as a bug in a processor would) or ``IOC_TEST_CRASH_BATCHES=N`` (the
first N batches with events raise).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import asyncpg
import numpy as np

from ioc.model import EventBatch


class InjectedCrash(Exception):
    """The exception the injected fault raises."""


class CrashingProcessor:
    def __init__(self, device_id: str | None = None, batches: int = 0) -> None:
        self.device_id = device_id
        self.batches = batches

    def prepare(self, events: EventBatch) -> None:
        return None

    async def process(
        self, conn: asyncpg.Connection, events: EventBatch, new_mask: np.ndarray,
        received_at: float,
    ) -> Callable[[], None] | None:
        if self.device_id is not None and self.device_id in set(events.device_id):
            raise InjectedCrash(f"injected crash on an event of {self.device_id}")
        if self.batches > 0 and len(events):
            self.batches -= 1
            raise InjectedCrash(f"injected crash ({self.batches} more to come)")
        return None


def injected_faults() -> list[CrashingProcessor]:
    """The faults asked for in the environment (none in a real deployment)."""
    device = os.environ.get("IOC_TEST_CRASH_DEVICE") or None
    batches = int(os.environ.get("IOC_TEST_CRASH_BATCHES") or 0)
    return [CrashingProcessor(device, batches)] if device or batches else []
