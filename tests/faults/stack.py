"""A whole Tenantry on dependencies the test owns, and a bounded load to put on it.

`Stack` runs a real `tenantry serve` (uvicorn) and a real `tenantry worker` as
subprocesses against an embedded PostgreSQL, a Valkey and an aiosmtpd, all started
here. `Load` drives it with a few concurrent clients (list; create with an
Idempotency-Key, retried with the same key until acknowledged) and books every answer
under the phase it arrived in. Both are used by tests/faults/test_faults.py and by
bench/faults.py, which prints the fault table.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tenantry import embedded
from tests.faults.cluster import Cluster, Valkey, free_port
from tests.fixtures.smtp import Recorder

SECRET = "fault-suite-secret-key-long-enough-0123456789"
PASSWORD = "Secret#123"


@dataclass
class Stack:
    base: Path
    cluster: Cluster
    valkey: Valkey = field(init=False)
    recorder: Recorder = field(default_factory=Recorder)
    api_port: int = field(default_factory=free_port)
    worker_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _smtp: Controller | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_health(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}/health"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            ENVIRONMENT="test",
            DATABASE_URL=self.cluster.url(),
            DATABASE_OWNER_URL=self.cluster.url(embedded.OWNER_ROLE),
            REDIS_URL=self.valkey.url,
            QUEUE_NAME=f"faults:{uuid.uuid4().hex[:8]}",
            SECRET_KEY=SECRET,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp_port),
            SMTP_TIMEOUT="3",
            EMAIL_RELAY_INTERVAL_SECONDS="2",
            WORKER_METRICS_PORT=str(self.worker_port),
            WORKER_METRICS_HOST="127.0.0.1",
            RATE_LIMIT_FREE="1000000",
            RATE_LIMIT_LOGIN="1000000",
            RATE_LIMIT_LOGIN_IP="1000000",
            RATE_LIMIT_SIGNUP="1000000",
            DB_CONNECT_TIMEOUT="2",
            DB_POOL_TIMEOUT="3",
            LOG_LEVEL="WARNING",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def start(self) -> None:
        self.valkey = Valkey(self.base)
        self.valkey.start()
        self._smtp = Controller(self.recorder, hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        env = self.env()
        logs = self.base / "logs"
        logs.mkdir(exist_ok=True)
        cli = [sys.executable, "-m", "tenantry.cli"]
        for name, args in (
            ("api", ["serve", "--host", "127.0.0.1", "--port", str(self.api_port)]),
            ("worker", ["worker"]),
        ):
            out = (logs / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(
                [*cli, *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_up()

    def _wait_up(self, limit: float = 90) -> None:
        deadline = time.monotonic() + limit
        for url in (f"{self.api}/health/ready", self.worker_health):
            while True:
                for name, proc in self.procs.items():
                    assert proc.poll() is None, f"{name} exited: {self.log(name)[-3000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"{url} not up"
                time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.base / "logs" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._smtp is not None:
            self._smtp.stop()
        self.valkey.stop()


@dataclass
class Tally:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    ok: int = 0
    seconds: float = 0.0
    missing_retry_after: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Load:
    """`clients` concurrent loops of list + idempotent create, until `stop()`."""

    base_url: str
    headers: dict[str, str]
    clients: int = 4
    phase: str = "warm-up"
    tallies: dict[str, Tally] = field(default_factory=lambda: collections.defaultdict(Tally))
    acknowledged: list[str] = field(default_factory=list)
    # Acknowledged creates that first got a 503 or no answer: their first commit may have
    # landed with its answer lost (PostgreSQL killed mid-commit), which the Redis-held
    # idempotency record cannot cover; they must exist, and may exist twice.
    ambiguous: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _phase_started: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self._phase_started = time.monotonic()
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]

    def enter(self, phase: str) -> None:
        now = time.monotonic()
        self.tallies[self.phase].seconds += now - self._phase_started
        self.phase, self._phase_started = phase, now

    async def stop(self) -> None:
        self.enter("stopped")
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def _book(self, phase: str, response: httpx.Response | None, error: str | None) -> None:
        tally = self.tallies[phase]
        if response is None:
            tally.errors[error or "?"] += 1
            return
        tally.statuses[response.status_code] += 1
        if response.status_code < 400:
            tally.ok += 1
        if response.status_code == 503 and "retry-after" not in response.headers:
            tally.missing_retry_after += 1

    async def _call(self, client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
        # Booked under the phase the answer arrived in: a request caught in flight by
        # a fault counts where its answer shows the fault.
        headers = {**self.headers, **kw.pop("headers", {})}
        try:
            response = await client.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            self._book(self.phase, None, type(exc).__name__)
            return None
        self._book(self.phase, response, None)
        return response

    async def _client(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=20) as client:
            while not self._stop.is_set():
                await self._call(client, "GET", "/api/v1/projects?limit=20")
                await self._create(client)

    async def _create(self, client: httpx.AsyncClient) -> None:
        """Retried with the same key until acknowledged (or the load stops)."""
        name = f"p-{uuid.uuid4().hex[:12]}"
        key = uuid.uuid4().hex
        unanswered = False
        while True:
            response = await self._call(
                client,
                "POST",
                "/api/v1/projects",
                json={"name": name},
                headers={"Idempotency-Key": key},
            )
            if response is not None and response.status_code == 201:
                (self.ambiguous if unanswered else self.acknowledged).append(name)
                return
            unanswered = unanswered or response is None or response.status_code >= 500
            if self._stop.is_set():
                return
            await asyncio.sleep(0.2)
