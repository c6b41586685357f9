"""A child process running Alerts against a test database, for the kill -9 tests.

    python -m tests.integration.alerts.notifier_child DSN HOOK_URL STORM_WINDOW_S [RULE DEVICE]

Starts Alerts (live feed and notifier) with one webhook ``kill`` at HOOK_URL. With RULE and
DEVICE it first records one fire the way the pipeline does (in a transaction, callback after
commit) and prints ``committed``; then it prints ``running`` and serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
import time

from ioc.alerts import Alerts, NotificationConfig, Webhook
from ioc.metrics import Metrics
from ioc.rules import Transition
from ioc.storage.pool import create_pool

SECRET = "kill-9-secret"
TIMEOUT_S = 2.0


async def main(dsn: str, url: str, window_s: float, fire: list[str]) -> None:
    pool = await create_pool(dsn, size=4)
    config = NotificationConfig((Webhook("kill", url, SECRET, timeout_s=TIMEOUT_S),))
    alerts = Alerts(pool, Metrics(), notifications=config, storm_window_s=window_s,
                    notify_poll_s=0.2, feed_poll_s=0.2)
    await alerts.start()
    if fire:
        rule, device = fire
        t = Transition(rule, device, "fire", int(time.time() * 1e6), 1.9, "critical",
                       "Mực nước 1.90 m", "water_level", 0)
        async with pool.acquire() as conn, conn.transaction():
            done = await alerts.record(conn, [t], time.time())
        if done is not None:
            done()
        print("committed", flush=True)
    print("running", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:6]))
