"""A fault the tests inject into a running service: a batch processor that raises.

Not a setting of the service: the supervision and quarantine tests start ``ioc run`` with
``IOC_TEST_CRASH_DEVICE=<device id>`` (every batch holding an event of that device raises
inside its transaction, as a bug in a processor would) or ``IOC_TEST_CRASH_BATCHES=N`` (the
first N batches with events raise). ``IOC_TEST_STALL_DEVICE=<device id>`` makes every batch
holding an event of that device stop inside its transaction, after the rules wrote their
alerts and corrections, and log "injected stall" at WARNING: the crash tests kill -9 it there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import asyncpg
import numpy as np

from ioc.model import EventBatch

log = logging.getLogger(__name__)
STALL_S = 3600.0


class InjectedCrash(Exception):
    """The exception the injected fault raises."""


class CrashingProcessor:
    def __init__(self, device_id: str | None = None, batches: int = 0,
                 stall_device: str | None = None) -> None:
        self.device_id = device_id
        self.batches = batches
        self.stall_device = stall_device

    def prepare(self, events: EventBatch) -> None:
        return None

    async def process(
        self, conn: asyncpg.Connection, events: EventBatch, new_mask: np.ndarray,
        received_at: float,
    ) -> Callable[[], None] | None:
        if self.device_id is not None and self.device_id in set(events.device_id):
            raise InjectedCrash(f"injected crash on an event of {self.device_id}")
        if self.stall_device is not None and self.stall_device in set(events.device_id):
            log.warning("injected stall on an event of %s", self.stall_device)
            await asyncio.sleep(STALL_S)
        if self.batches > 0 and len(events):
            self.batches -= 1
            raise InjectedCrash(f"injected crash ({self.batches} more to come)")
        return None


def injected_faults() -> list[CrashingProcessor]:
    """The faults asked for in the environment (none in a real deployment)."""
    device = os.environ.get("IOC_TEST_CRASH_DEVICE") or None
    batches = int(os.environ.get("IOC_TEST_CRASH_BATCHES") or 0)
    stall = os.environ.get("IOC_TEST_STALL_DEVICE") or None
    return [CrashingProcessor(device, batches, stall)] if device or batches or stall else []
