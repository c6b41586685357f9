"""A mosquitto broker on a loopback port, tuned with the lines of config/mosquitto.conf."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ioc.embedded.process import ServerProcess, free_port, port_open

CONFIG = Path(__file__).resolve().parents[2] / "config" / "mosquitto.conf"
TUNING_KEYS = {
    "max_inflight_messages", "max_queued_messages", "max_queued_bytes", "max_packet_size",
    "persistence", "autosave_interval", "upgrade_outgoing_qos",
}


def tuning_lines(path: Path = CONFIG) -> list[str]:
    """The broker tuning the project ships, so tests and the demo run the deployed settings."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and line.split()[0] in TUNING_KEYS:
            lines.append(line)
    return lines


class EmbeddedMosquitto:
    """mosquitto with persistence in a temp dir; keeps the dir across :meth:`restart`."""

    def __init__(self, *, port: int | None = None, extra: list[str] | None = None) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise RuntimeError("mosquitto not found: `apt-get install mosquitto mosquitto-clients`")
        self.binary = binary
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="ioc-mqtt-"))
        conf = [
            *tuning_lines(),
            f"persistence_location {self.base}/",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            *(extra or []),
        ]
        if os.geteuid() == 0:
            conf.insert(0, "user root")
        self.conf_path = self.base / "mosquitto.conf"
        self.conf_path.write_text("\n".join(conf) + "\n")
        self._server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server else None

    def start(self) -> EmbeddedMosquitto:
        self._server = ServerProcess(
            "mosquitto", [self.binary, "-c", str(self.conf_path)], self.base / "mosquitto.log"
        )
        self._server.start(lambda: port_open(self.port), timeout=20)
        return self

    def stop_server(self) -> None:
        """Graceful stop: mosquitto saves queued persistent-session messages on SIGTERM."""
        if self._server:
            self._server.stop()

    def restart(self) -> None:
        self.stop_server()
        self.start()

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedMosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
