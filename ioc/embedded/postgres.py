"""A throwaway PostgreSQL cluster from the OS package, with TimescaleDB when it is installed."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ioc.embedded.process import ServerProcess, free_port, port_open

# Durability is traded for speed only in throwaway clusters; production keeps the defaults.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "200",
    "log_min_messages": "warning",
}


def pg_bindir() -> Path:
    """The newest installed server's bin directory (Debian keeps them per major version)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError(
        "PostgreSQL server not found: install it with `apt-get install postgresql` "
        "(or run `make test`, which does)"
    )


def timescaledb_installed(bindir: Path | None = None) -> bool:
    bindir = bindir or pg_bindir()
    pkglib = subprocess.run(
        [str(bindir / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(pkglib) and bool(glob.glob(os.path.join(pkglib, "timescaledb*.so")))


class EmbeddedPostgres:
    """initdb into a temp dir, start on a free loopback port, stop and delete on :meth:`stop`."""

    def __init__(
        self,
        *,
        timescaledb: bool = False,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.bindir = pg_bindir()
        self.timescaledb = timescaledb
        self.port = port or free_port()
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        if timescaledb:
            self.settings["shared_preload_libraries"] = "timescaledb"
            self.settings["timescaledb.telemetry_level"] = "off"
        self._own_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="ioc-pg-"))
        self.datadir = self.base / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.superuser = "postgres"
        self._server: ServerProcess | None = None

    @property
    def dsn_base(self) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"{self.dsn_base}/{dbname}"

    def _run(self, *argv: str) -> None:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                                user=self.user, group=self.user, cwd=self.base)
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"{argv[0]} failed: {output}")

    def start(self) -> EmbeddedPostgres:
        if not self.datadir.exists():
            if self.user:
                shutil.chown(self.base, self.user, self.user)
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.superuser,
                "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            )
        self._launch()
        return self

    def _launch(self) -> None:
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.base}"]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        self._server = ServerProcess("postgres", argv, self.base / "postgres.log", user=self.user)
        self._server.start(self._ready, timeout=60)

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        probe = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True, check=False,
        )
        return probe.returncode == 0

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server else None

    def stop_server(self, *, immediate: bool = False) -> None:
        """Stop the server but keep the data directory (to start it again)."""
        if self._server:
            import signal

            self._server.stop(signal.SIGQUIT if immediate else signal.SIGINT, timeout=30)

    def restart(self) -> None:
        self.stop_server()
        self._launch()

    def create_database(self, name: str) -> str:
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", self.superuser, name)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending its sessions (autovacuum workers included) first."""
        self._run(str(self.bindir / "dropdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", self.superuser, "--force", name)

    def stop(self) -> None:
        self.stop_server()
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
