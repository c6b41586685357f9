"""A webhook receiver for tests: stdlib http.server in a thread on a loopback port.

It checks nothing itself; it records every request (path, headers, body) so that tests can
verify signatures and delivery ids, and answers as told (a status per request, optional delay).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ioc.alerts import DELIVERY_HEADER, SIGNATURE_HEADER, signature


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers[DELIVERY_HEADER.lower()]

    def signed_with(self, secret: str) -> bool:
        return self.headers.get(SIGNATURE_HEADER.lower()) == signature(secret, self.body)


# (path, number of earlier requests to that path) -> (status, delay in seconds)
Behaviour = Callable[[str, int], tuple[int, float]]


class Receiver:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour: Behaviour = behaviour or (lambda path, n: (200, 0.0))
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    n = sum(1 for r in receiver.requests if r.path == self.path)
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic()))
                status, delay = receiver.behaviour(self.path, n)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, n: int, timeout: float = 30.0) -> list[Received]:
        """Block until ``n`` requests reached ``path`` (or time runs out); returns them."""
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.at(path)

    async def until(self, path: str, n: int, within: float = 30.0) -> list[Received]:
        """:meth:`wait` for tests whose event loop runs the notifier."""
        deadline = time.monotonic() + within
        while True:
            got = self.at(path)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)
