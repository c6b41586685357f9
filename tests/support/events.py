"""Builders for realistic event batches (Hậu Giang devices) used across tests."""

from __future__ import annotations

import time
import uuid

import numpy as np

from ioc.model import EventBatch

DISTRICT_CODES = ("vt", "nb", "lm", "vth", "ct", "cta", "ph")


def make_batch(
    n: int,
    *,
    devices: int = 50,
    start_us: int | None = None,
    step_us: int = 1_000_000,
    kind: str = "water_level",
    seed: int = 0,
    prefix: str = "hg",
) -> EventBatch:
    rng = np.random.default_rng(seed)
    start = start_us if start_us is not None else int(time.time() * 1e6) - n * step_us
    dev_idx = rng.integers(0, devices, n)
    return EventBatch(
        device_id=[f"{prefix}-{DISTRICT_CODES[i % 7]}-wl-{i:03d}" for i in dev_idx.tolist()],
        event_id=[str(uuid.UUID(int=int(x))) for x in rng.integers(0, 2**62, n).tolist()],
        kind=[kind] * n,
        ts=start + np.arange(n, dtype=np.int64) * step_us,
        value=np.round(rng.normal(1.2, 0.4, n), 3),
        unit=["m"] * n,
        attrs=['{"station": "Cầu Cái Nhúc"}' if i % 3 == 0 else None for i in range(n)],
    )
