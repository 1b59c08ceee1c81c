"""A real ARQ worker runs a real job through Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.jobs import Job
from tests.fixtures.worker import drain_queue, worker_process


async def test_ping_round_trip_in_process(settings: Settings, redis: ArqRedis) -> None:
    job = await redis.enqueue_job(Job.PING.value, message="hello")
    assert job is not None
    # Jobs are JSON, not pickle: the queued payload is readable by anything.
    raw = await redis.get(f"arq:job:{job.job_id}")
    assert raw is not None and b'"hello"' in raw

    await drain_queue(settings)
    result = await job.result(timeout=5)
    assert result["message"] == "hello"
    assert result["db_time"]


async def test_double_enqueue_with_job_id_runs_once(redis: ArqRedis) -> None:
    first = await redis.enqueue_job(Job.PING.value, _job_id="ping-once")
    second = await redis.enqueue_job(Job.PING.value, _job_id="ping-once")
    assert first is not None
    assert second is None


async def test_worker_process_reports_health(settings: Settings, redis: ArqRedis) -> None:
    env = {**os.environ, "REDIS_URL": settings.redis_url}
    proc = worker_process(env)
    try:
        job = await redis.enqueue_job(Job.PING.value, message="from-process")
        assert job is not None
        result = await job.result(timeout=30)
        assert result["message"] == "from-process"
        check = subprocess.run(
            [sys.executable, "-m", "tenantry.cli", "worker", "--check"], env=env, check=False
        )
        assert check.returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # SIGTERM is a graceful stop, not a crash.
    assert proc.returncode in (0, -15)
    await asyncio.sleep(0)
