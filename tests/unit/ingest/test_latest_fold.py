"""The in-memory fold of the newest reading per device and kind (ioc/ingest/latest.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.ingest.latest import LatestValues
from ioc.model import EventBatch


def batch(rows: list[tuple[str, str, int, float]]) -> EventBatch:
    return EventBatch(
        device_id=[r[0] for r in rows], event_id=[str(i) for i in range(len(rows))],
        kind=[r[1] for r in rows], ts=np.array([r[2] for r in rows], dtype=np.int64),
        value=np.array([r[3] for r in rows], dtype=np.float64),
        unit=[None] * len(rows), attrs=[None] * len(rows))


def test_newest_reading_wins_within_and_across_batches() -> None:
    latest = LatestValues(pool=None)  # type: ignore[arg-type]
    latest.fold(batch([("a", "rain", 5, 1.0), ("a", "rain", 3, 2.0), ("b", "rain", 1, 3.0)]),
                np.ones(3, dtype=bool))
    latest.fold(batch([("a", "rain", 4, 9.0), ("a", "level", 2, 4.0), ("b", "rain", 7, 5.0)]),
                np.array([True, True, False]))
    assert latest._dirty == {("a", "rain"): (5, 1.0), ("b", "rain"): (1, 3.0),
                             ("a", "level"): (2, 4.0)}


rows = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]),
                          st.integers(0, 20), st.floats(-5, 5)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(rows, st.randoms()), max_size=4))
def test_fold_equals_a_plain_scan_with_or_without_prepare(batches: list) -> None:
    latest = LatestValues(pool=None)  # type: ignore[arg-type]
    want: dict[tuple[str, str], tuple[int, float]] = {}
    for events, rnd in batches:
        mask = np.array([rnd.random() < 0.8 for _ in events], dtype=bool)
        if not mask.any():
            continue
        b = batch(events)
        ahead = rnd.random()
        if ahead < 0.4:  # evaluated ahead during the COPY, as the pipeline does
            latest.prepare(b)
        elif ahead < 0.6:  # a stale preparation (another batch) must be ignored
            latest.prepare(batch(events[::-1]))
        latest.fold(b, mask)
        newest: dict[tuple[str, str], tuple[int, float]] = {}
        for (device, kind, ts, value), new in zip(events, mask, strict=True):
            if new and ((device, kind) not in newest or ts >= newest[(device, kind)][0]):
                newest[(device, kind)] = (ts, value)
        for pair, item in newest.items():
            if pair not in want or item[0] >= want[pair][0]:
                want[pair] = item
    assert latest._dirty == want
