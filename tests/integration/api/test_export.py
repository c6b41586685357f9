"""A 1M-row CSV export streams with flat server memory and every row once."""

from __future__ import annotations

import time

import httpx
import numpy as np
import psutil

from ioc.model import EventBatch
from tests.integration.api.conftest import Api

ROWS = 1_000_000
CHUNK = 100_000


def test_csv_export_of_a_million_rows_keeps_memory_flat(api: Api) -> None:
    start_us = (int(time.time()) // 86400 - 2) * 86400 * 1_000_000
    devices = [f"hg-vt-wl-{i:03d}" for i in range(100)]
    for c in range(ROWS // CHUNK):
        idx = np.arange(c * CHUNK, (c + 1) * CHUNK)
        api.store(EventBatch(
            device_id=[devices[i % 100] for i in idx.tolist()],
            event_id=[f"x{i}" for i in idx.tolist()], kind=["water_level"] * CHUNK,
            ts=(start_us + idx * 100_000).astype(np.int64), value=np.round(idx / 7.0, 3),
            unit=["m"] * CHUNK, attrs=['{"station": "Cầu Cái Nhúc, bến \\"A\\""}'] * CHUNK))
    server = psutil.Process(api.service.pid)
    rss: list[int] = []
    lines = 0
    first = last = b""
    with httpx.stream("GET", api.url + "/events", params={"format": "csv", "order": "asc"},
                      headers=api.headers("agency_all"), timeout=300) as r:
        assert r.status_code == 200
        for i, chunk in enumerate(r.iter_bytes(1 << 16)):
            if i == 0:
                first = chunk
            lines += chunk.count(b"\n")
            last = chunk
            if i % 50 == 0:
                rss.append(server.memory_info().rss)
    assert lines == ROWS + 1
    assert first.startswith(b"event_id,device_id,kind,ts,value,unit,attrs\r\nx0,hg-vt-wl-000,")
    assert last.rstrip().endswith(',142857.0,m,"{""station"": ""Cầu Cái Nhúc, bến \\""A\\""""}"'
                                  .encode())
    # About 110 MB of CSV went through; the server's memory must not follow it.
    baseline = rss[1]
    assert len(rss) > 20 and max(rss) - baseline < 40 * 2**20, [r // 2**20 for r in rss]
