"""Background tasks: one supervisor runs them all, and they end the same way everywhere.

A long-lived task that raises must not die silently: the service would go on answering
``/readyz`` 200 while no message is ever confirmed again. Every such task is spawned through
one :class:`Supervisor`, which logs the failure once with its traceback, counts it, reports
the task as failing to ``/readyz``, and then either restarts the task with backoff (loops
that are safe to run again from the top: flushers, pumps, committers, maintenance) or, for a
task whose restart could skip or double-confirm messages, asks the service to drain what is
safe and exit non-zero so that its process manager restarts it (``fatal=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
# A restarted task that has run this long without failing again is reported healthy.
SETTLE_S = 5.0


class Supervisor:
    """Runs the service's long-lived tasks and knows which of them are failing."""

    def __init__(
        self,
        on_failure: Callable[[str], None] | None = None,
        *,
        first_backoff_s: float = FIRST_BACKOFF_S,
        settle_s: float = SETTLE_S,
    ) -> None:
        self._on_failure = on_failure
        self._first_backoff_s = first_backoff_s
        self._settle_s = settle_s
        self._failing: dict[str, str] = {}
        self._generation: dict[str, int] = {}
        self.fatal = asyncio.Event()
        self.fatal_reason: str | None = None

    def spawn(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], *, fatal: bool = False,
    ) -> asyncio.Task[None]:
        """Run ``run()`` as task ``name``; on an unexpected exception restart it (or, with
        ``fatal``, ask for the service to stop). Cancel the returned task to stop it."""
        return asyncio.create_task(self._supervise(name, run, fatal), name=name)

    @property
    def failing(self) -> dict[str, str]:
        """Task name -> what went wrong, for the tasks that are failing now."""
        return dict(self._failing)

    def failed(self, name: str, exc: BaseException, *, hold_s: float | None = None) -> None:
        """Record a failure of ``name`` (also one a task handles itself, such as a batch the
        writer isolates): counted, and reported by /readyz until ``hold_s`` (default: the
        settle time) passes without another failure of it. ``hold_s=inf``: for good."""
        self._failing[name] = f"{type(exc).__name__}: {exc}"[:300]
        generation = self._generation[name] = self._generation.get(name, 0) + 1
        if self._on_failure is not None:
            self._on_failure(name)
        hold = self._settle_s if hold_s is None else hold_s
        if hold != float("inf"):
            asyncio.get_running_loop().call_later(hold, self._settle, name, generation)

    async def _supervise(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], fatal: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        delay = self._first_backoff_s
        while True:
            started = loop.time()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if fatal:
                    self.failed(name, exc, hold_s=float("inf"))
                    log.error("task %s failed; stopping the service so that it restarts "
                              "clean", name, exc_info=exc)
                    self.fatal_reason = f"{name}: {type(exc).__name__}: {exc}"[:300]
                    self.fatal.set()
                    return
                if loop.time() - started > MAX_BACKOFF_S:
                    delay = self._first_backoff_s
                self.failed(name, exc, hold_s=delay + self._settle_s)
                log.error("task %s failed; restarting it in %.0f s", name, delay, exc_info=exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _settle(self, name: str, generation: int) -> None:
        if self._generation.get(name) == generation:
            self._failing.pop(name, None)


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks (None is skipped) and wait until each has finished unwinding."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError):
            await task
