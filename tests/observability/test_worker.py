"""Worker observability: job metrics, queue gauges, and the /metrics + /health server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import Retry, func
from arq.connections import ArqRedis
from prometheus_client import REGISTRY

from tenantry.config import Settings
from tenantry.context import job_id_var, tenant_id_var
from tenantry.jobs import Job
from tenantry.observability.queue import observe_queue
from tenantry.observability.worker import MetricsServer, instrument_job
from tenantry.redis_client import create_redis
from tests.fixtures.worker import drain_queue, worker_process


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


seen: dict[str, Any] = {}


async def succeed(ctx: dict[str, Any], tenant_id: str | None = None) -> str:
    seen["tenant"] = tenant_id_var.get()
    seen["job_id"] = job_id_var.get()
    return "ok"


async def fail(ctx: dict[str, Any]) -> None:
    raise ValueError("broken job")


async def retry_once(ctx: dict[str, Any]) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.01)
    return "second time lucky"


async def sleepy(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(5)


FUNCTIONS = [
    instrument_job(func(succeed, name="test.succeed")),
    instrument_job(func(fail, name="test.fail", max_tries=1)),
    instrument_job(func(retry_once, name="test.retry", max_tries=3)),
    instrument_job(func(sleepy, name="test.sleepy", timeout=0.2, max_tries=1)),
]


async def run_burst(settings: Settings) -> None:
    await drain_queue(settings, functions=FUNCTIONS, poll_delay=0.02)


class TestJobMetrics:
    async def test_success_counts_and_times(self, settings: Settings, redis: ArqRedis) -> None:
        before = sample("tenantry_jobs_total", function="test.succeed", outcome="success")
        count = sample("tenantry_job_duration_seconds_count", function="test.succeed")
        await redis.enqueue_job("test.succeed", tenant_id="t-123")
        await run_burst(settings)
        assert (
            sample("tenantry_jobs_total", function="test.succeed", outcome="success") == before + 1
        )
        assert sample("tenantry_job_duration_seconds_count", function="test.succeed") == count + 1

    async def test_job_context_carries_tenant_and_id(
        self, settings: Settings, redis: ArqRedis
    ) -> None:
        job = await redis.enqueue_job("test.succeed", tenant_id="t-456")
        assert job is not None
        await run_burst(settings)
        assert seen["tenant"] == "t-456"
        assert seen["job_id"] == job.job_id

    async def test_failure_is_counted(self, settings: Settings, redis: ArqRedis) -> None:
        before = sample("tenantry_jobs_total", function="test.fail", outcome="failure")
        await redis.enqueue_job("test.fail")
        await run_burst(settings)
        assert sample("tenantry_jobs_total", function="test.fail", outcome="failure") == before + 1

    async def test_retry_is_counted(self, settings: Settings, redis: ArqRedis) -> None:
        retries = sample("tenantry_job_retries_total", function="test.retry")
        retry_runs = sample("tenantry_jobs_total", function="test.retry", outcome="retry")
        successes = sample("tenantry_jobs_total", function="test.retry", outcome="success")
        await redis.enqueue_job("test.retry")
        await run_burst(settings)
        assert sample("tenantry_job_retries_total", function="test.retry") == retries + 1
        assert (
            sample("tenantry_jobs_total", function="test.retry", outcome="retry") == retry_runs + 1
        )
        assert (
            sample("tenantry_jobs_total", function="test.retry", outcome="success") == successes + 1
        )

    async def test_timeout_is_counted(self, settings: Settings, redis: ArqRedis) -> None:
        before = sample("tenantry_jobs_total", function="test.sleepy", outcome="timeout")
        await redis.enqueue_job("test.sleepy")
        await run_burst(settings)
        assert (
            sample("tenantry_jobs_total", function="test.sleepy", outcome="timeout") == before + 1
        )
        assert sample("tenantry_jobs_in_progress") == 0


@pytest.fixture
def queue(redis: ArqRedis) -> str:
    """A queue of this test's own: no worker (test_dashboards' module-scoped one included)
    polls it, so nothing the test enqueues is picked up behind its back."""
    return f"{redis.default_queue_name}:gauges:{uuid.uuid4().hex[:8]}"


class TestQueueGauges:
    async def test_depth_age_and_deferred(self, redis: ArqRedis, queue: str) -> None:
        for _ in range(3):
            await redis.enqueue_job(Job.PING.value, _queue_name=queue)
        await redis.enqueue_job(Job.PING.value, _defer_by=3600, _queue_name=queue)
        await asyncio.sleep(0.3)
        await observe_queue(redis, queue)
        assert sample("tenantry_queue_depth") == 3
        assert sample("tenantry_queue_deferred") == 1
        assert 0.3 <= sample("tenantry_queue_oldest_age_seconds") < 30

    async def test_running_jobs_are_not_waiting(self, redis: ArqRedis, queue: str) -> None:
        first = await redis.enqueue_job(Job.PING.value, _queue_name=queue)
        await asyncio.sleep(0.2)
        await redis.enqueue_job(Job.PING.value, _queue_name=queue)
        assert first is not None
        await redis.set(f"arq:in-progress:{first.job_id}", b"1")  # what a worker does on pick
        await observe_queue(redis, queue)
        assert sample("tenantry_queue_depth") == 1
        assert sample("tenantry_queue_oldest_age_seconds") < 0.2

    async def test_a_job_enqueued_a_moment_ago_is_waiting_not_deferred(
        self, redis: ArqRedis, queue: str
    ) -> None:
        # ARQ rounds a job's score to the ms; a raw clock read right after can be below it.
        for count in range(1, 41):
            await redis.enqueue_job(Job.PING.value, _queue_name=queue)
            await observe_queue(redis, queue)
            assert (sample("tenantry_queue_depth"), sample("tenantry_queue_deferred")) == (
                count,
                0,
            )

    async def test_empty_queue_is_zero(self, redis: ArqRedis, queue: str) -> None:
        await observe_queue(redis, queue)
        assert sample("tenantry_queue_depth") == 0
        assert sample("tenantry_queue_oldest_age_seconds") == 0


@pytest.fixture
async def server(redis: ArqRedis) -> AsyncIterator[MetricsServer]:
    main_task = asyncio.get_running_loop().create_future()
    srv = MetricsServer(redis=redis, main_task=None, host="127.0.0.1", port=0)
    await srv.start()
    yield srv
    await srv.stop()
    main_task.cancel()


class TestMetricsServer:
    async def test_metrics(self, server: MetricsServer) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "tenantry_jobs_total" in response.text
        # The API's gauges are not the worker's to report (a 0 here would page someone).
        for family in ("tenantry_ready", "tenantry_dependency_up", "tenantry_queue_depth"):
            assert family not in response.text

    async def test_health_ok(self, server: MetricsServer) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/health")
        assert response.status_code == 200
        assert response.json()["status"] == "healthy"

    async def test_health_503_when_redis_down(
        self, server: MetricsServer, settings: Settings
    ) -> None:
        server.redis = create_redis(settings, url="redis://127.0.0.1:1/0")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/health")
            live = await client.get(f"http://127.0.0.1:{server.port}/health/live")
        await server.redis.aclose()
        assert response.status_code == 503
        assert response.json()["checks"]["redis"].startswith("unavailable")
        # Not ready, but alive: liveness must not restart a worker riding out an outage.
        assert live.status_code == 200

    async def test_health_503_when_worker_loop_stopped(self, server: MetricsServer) -> None:
        async def _done() -> None:
            return None

        task = asyncio.get_running_loop().create_task(_done())
        await task
        server.main_task = task
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/health")
            live = await client.get(f"http://127.0.0.1:{server.port}/health/live")
        assert response.status_code == 503
        assert response.json()["checks"]["worker"] == "stopped"
        assert live.status_code == 503

    async def test_unknown_path_404(self, server: MetricsServer) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/nope")
        assert response.status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_worker_process_serves_metrics_and_health(
    settings: Settings, redis: ArqRedis
) -> None:
    port = free_port()
    proc = worker_process(
        {
            "REDIS_URL": settings.redis_url,
            "WORKER_METRICS_PORT": str(port),
            "WORKER_METRICS_HOST": "127.0.0.1",
        },
        stderr=subprocess.PIPE,
    )
    try:
        job = await redis.enqueue_job(Job.PING.value)
        assert job is not None
        # Generous: a worker starting on a busy machine takes tens of seconds.
        await job.result(timeout=120)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = await client.get("/health")
            text = (await client.get("/metrics")).text
        assert health.status_code == 200
        assert 'tenantry_jobs_total{function="system.ping",outcome="success"} 1.0' in text
        assert 'tenantry_emails_total{outcome="dead"} 0.0' in text
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
        print(stderr.decode())
