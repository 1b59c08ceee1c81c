"""SIGTERM in the middle of a job: the worker stops picking jobs, lets the running one
finish, and exits; the job ran once and is not queued again.

Kubernetes sends SIGTERM when it stops a pod (a rollout, a scale-down, a drain) and
SIGKILL after terminationGracePeriodSeconds; ARQ waits for running jobs only when
`job_completion_wait` is set (see workers.settings and TestShutdown in test_helm_chart).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

from arq.connections import ArqRedis
from arq.jobs import JobStatus

from tests.deploy.slow_worker import SLOW_JOB
from workers.settings import WorkerSettings


async def _wait_for(redis: ArqRedis, key: str, *, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if await redis.exists(key):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_sigterm_lets_the_running_job_finish_once(redis: ArqRedis) -> None:
    queue = f"{redis.default_queue_name}:shutdown:{uuid.uuid4().hex[:8]}"
    key = f"tenantry:test:slow:{uuid.uuid4().hex[:8]}"
    job_seconds = 4.0
    assert job_seconds < WorkerSettings.job_completion_wait
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.slow_worker"],
        env={**os.environ, "QUEUE_NAME": queue},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        job = await redis.enqueue_job(SLOW_JOB, key, job_seconds, _queue_name=queue)
        assert job is not None
        assert await _wait_for(redis, f"{key}:started", seconds=240), "the job never started"
        assert not await redis.exists(f"{key}:finished")
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "shutdown on SIGTERM" in log, log
    # It ran to its end, once, on its first try, and nothing is left to run it again.
    assert await redis.get(f"{key}:finished") == b"1", log
    assert await redis.get(f"{key}:started") == b"1"
    result = await job.result_info()
    assert result is not None and result.success and result.result == "finished"
    assert await job.status() is JobStatus.complete
    assert await redis.zcard(queue) == 0
    await redis.delete(f"{key}:started", f"{key}:finished")
