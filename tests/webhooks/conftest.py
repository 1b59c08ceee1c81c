"""Webhook tests: settings that reach a loopback receiver and retry within a second."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.main import create_app
from tests.fixtures.services import TestServices
from tests.fixtures.worker import burst_worker, worker_process
from tests.webhooks.receiver import Receiver

WEBHOOK_TEST_SETTINGS: dict[str, object] = {
    "webhook_allow_private_networks": True,
    "webhook_retry_schedule": [0.1, 0.2],
    "webhook_timeout_seconds": 2.0,
    "webhook_disable_after": 3,
    "webhook_concurrency_per_endpoint": 2,
}


@pytest.fixture(scope="session")
def settings(test_services: TestServices) -> Settings:
    return test_services.settings(**WEBHOOK_TEST_SETTINGS)


@pytest.fixture(scope="session")
def strict_settings(test_services: TestServices) -> Settings:
    """As production sees addresses: private networks refused."""
    return test_services.settings(
        **{**WEBHOOK_TEST_SETTINGS, "webhook_allow_private_networks": False}
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def make_worker(settings: Settings, *, burst: bool = True, max_jobs: int = 20) -> Worker:
    return burst_worker(
        settings, burst=burst, ctx={"settings": settings}, cron_jobs=[], max_jobs=max_jobs
    )


async def drain(settings: Settings) -> None:
    """A real ARQ worker in this process until the queue (deferred retries too) is empty."""
    worker = make_worker(settings)
    try:
        await asyncio.wait_for(worker.main(), timeout=60)
    finally:
        await worker.close()


@pytest.fixture
async def strict_client(
    strict_settings: Settings, db: Database, redis: object
) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(strict_settings, db=db)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def start_worker(**env: str) -> subprocess.Popen[bytes]:
    """`tenantry worker` in its own process, configured like the tests' settings."""
    values = {
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "WEBHOOK_RETRY_SCHEDULE": "0.1,0.2",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_RELAY_INTERVAL_SECONDS": "1",
        **env,
    }
    return worker_process(values)


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=15)


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], seconds: float = 120) -> None:
    """Poll until `condition` holds; the bound only keeps a broken run from hanging."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value if isinstance(value, bool) else await value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still false after {seconds} s")
