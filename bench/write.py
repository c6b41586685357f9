"""Writer throughput: 1M events in batches of 5k, beside its ceilings on the same server.

    .venv/bin/python bench/write.py [--events 1000000] [--batch 5000] [--timescaledb]

Prints a table and writes bench/results/write[-timescaledb].json. The server is a throwaway
cluster with fsync off (as in the project's other measurements); the three figures share it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bare_copy_rate, median, naive_idempotent_rate, write_result
from ioc.embedded.postgres import EmbeddedPostgres
from ioc.storage.migrations import migrate
from ioc.storage.partitions import PartitionManager
from ioc.storage.pool import connect, create_pool, use_microsecond_timestamps
from ioc.storage.writer import BatchWriter
from tests.support.events import make_batch


async def writer_rate(dsn: str, flavour: str, batches: list, replay: bool = False) -> float:
    pool = await create_pool(dsn, size=2, writer=True)
    try:
        writer = BatchWriter(pool, PartitionManager(flavour))
        await writer.start()
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE events")
        if replay:
            for b in batches:
                await writer.write(b)
        async with pool.acquire() as conn:
            await conn.execute("CHECKPOINT")  # as before every timed run (bench/common.py)
        start = time.perf_counter()
        for b in batches:
            await writer.write(b)
        return sum(len(b) for b in batches) / (time.perf_counter() - start)
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timescaledb", action="store_true")
    args = parser.parse_args()

    n_batches = args.events // args.batch
    batches = [make_batch(args.batch, devices=args.devices, seed=i,
                          start_us=1_795_000_000_000_000 + i * args.batch * 1000, step_us=1000)
               for i in range(n_batches)]
    with EmbeddedPostgres(timescaledb=args.timescaledb) as pg:
        dsn = pg.create_database("bench")
        conn = await connect(dsn)
        report = await migrate(conn, timescaledb="on" if args.timescaledb else "off")
        await use_microsecond_timestamps(conn)
        figures: dict[str, list[float]] = {"bare_copy": [], "naive_idempotent": [], "writer": [],
                                           "writer_replay": []}
        for _ in range(args.rounds):
            figures["bare_copy"].append(await bare_copy_rate(conn, batches))
            figures["naive_idempotent"].append(await naive_idempotent_rate(conn, batches))
            figures["writer"].append(await writer_rate(dsn, report.flavour, batches))
        figures["writer_replay"].append(
            await writer_rate(dsn, report.flavour, batches[: max(1, n_batches // 5)], replay=True))
        await conn.close()

    med = {k: median(v) for k, v in figures.items()}
    result = {
        "events": n_batches * args.batch, "batch": args.batch, "devices": args.devices,
        "flavour": report.flavour, "rounds": args.rounds,
        "rows_per_s": {k: round(v) for k, v in med.items()},
        "all_rounds": {k: [round(x) for x in v] for k, v in figures.items()},
        "writer_vs_bare_copy": round(med["writer"] / med["bare_copy"], 3),
        "writer_vs_naive": round(med["writer"] / med["naive_idempotent"], 2),
        "goal": "writer >= 0.6x bare COPY",
    }
    name = "write-timescaledb" if args.timescaledb else "write"
    path = write_result(name, result)
    print(f"{'path':<22}{'rows/s':>12}")
    for k, v in med.items():
        print(f"{k:<22}{v:>12,.0f}")
    print(f"writer / bare COPY = {result['writer_vs_bare_copy']:.2f}  "
          f"(goal 0.6); writer / naive = {result['writer_vs_naive']:.2f}x  -> {path}")


if __name__ == "__main__":
    asyncio.run(main())
