"""Serving the app with uvicorn inside a loop the caller owns (``ioc run``, ``ioc demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ioc.settings import Settings


class Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT/SIGTERM without re-raising the signal afterwards,
    so that the caller can drain the pipeline and stop what it started. Open live-feed
    streams are ended at the signal, or the graceful shutdown would wait for them forever."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGINT, signal.SIGTERM)
        for sig in sigs:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in sigs:
                loop.remove_signal_handler(sig)


def make_server(app: FastAPI, settings: Settings, port: int | None = None,
                on_exit: Callable[[], None] | None = None) -> Server:
    config = uvicorn.Config(app, host=settings.api_host, port=port or settings.api_port,
                            log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=10)
    return Server(config, on_exit)
