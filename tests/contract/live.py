"""A real API server for the contract checks: uvicorn in its own process on a free port,
against this run's test database and Redis, with an owner signed up over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Str0ng!Passw0rd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Owner:
    username: str
    password: str
    token: str
    tenant_slug: str


@dataclass(frozen=True)
class LiveServer:
    url: str

    @property
    def schema_url(self) -> str:
        return f"{self.url}/api/openapi.json"

    def sign_up_owner(self) -> Owner:
        """A person, their tenant, and an access token bound to it (15 minutes)."""
        suffix = uuid.uuid4().hex[:10]
        username = f"owner_{suffix}"
        with httpx.Client(base_url=self.url, timeout=30) as api:
            created = api.post(
                "/api/v1/users/",
                json={
                    "email": f"{username}@example.com",
                    "username": username,
                    "password": PASSWORD,
                    "full_name": "Contract Owner",
                },
            )
            assert created.status_code == 201, created.text
            pair = api.post(
                "/api/v1/auth/login", data={"username": username, "password": PASSWORD}
            ).json()
            headers = {"Authorization": f"Bearer {pair['access_token']}"}
            slug = f"t-{suffix}"
            tenant = api.post(
                "/api/v1/tenants", json={"name": "Contract", "slug": slug}, headers=headers
            )
            assert tenant.status_code == 201, tenant.text
            switched = api.post(
                "/api/v1/auth/switch-tenant", json={"tenant": slug}, headers=headers
            )
            assert switched.status_code == 200, switched.text
            return Owner(username, PASSWORD, switched.json()["access_token"], slug)


@dataclass
class _Process:
    process: subprocess.Popen[bytes]
    log: Path


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the API server did not start")


def serve(tmp: Path, **env: str) -> Iterator[LiveServer]:
    """Run the API with uvicorn until the generator is closed (a fixture's body)."""
    port = free_port()
    log = tmp / "uvicorn.log"
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
        **env,
    )
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tenantry.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, log)
        yield LiveServer(url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
