"""`tenantry worker --check`, the worker's exec probe and Docker healthcheck: it asks this
container's worker, and it imports next to nothing (it runs every few seconds, and
importing the worker's settings took seconds of CPU on a busy node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.jobs import Job
from tenantry.observability import probe
from tests.fixtures.smtp import free_port
from tests.fixtures.worker import worker_process

HEAVY = ("sqlalchemy", "arq", "pydantic", "fastapi", "redis", "tenantry.config", "workers")


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenantry.cli", "worker", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_are_the_settings_defaults() -> None:
    fields = Settings.model_fields
    assert fields["worker_metrics_port"].default == probe.DEFAULT_PORT
    assert fields["worker_metrics_host"].default == probe.DEFAULT_HOST
    assert fields["redis_url"].default == probe.DEFAULT_REDIS_URL
    assert fields["queue_name"].default == probe.DEFAULT_QUEUE_NAME


def test_the_check_imports_only_the_standard_library() -> None:
    port = free_port()  # nothing listens: the check fails, after importing what it needs
    code = (
        "import sys, json\n"
        "from tenantry.cli import app\n"
        "try:\n"
        "    app(['worker', '--check'])\n"
        "except SystemExit as exit:\n"
        "    print(json.dumps({'code': exit.code, 'modules': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "WORKER_METRICS_PORT": str(port), "WORKER_METRICS_HOST": "127.0.0.1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 1
    assert "127.0.0.1" in result.stderr
    loaded = [n for n in report["modules"] if n in HEAVY or n.split(".")[0] in HEAVY]
    assert loaded == []


async def test_asks_this_containers_worker(redis: ArqRedis) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WORKER_METRICS_PORT": str(port),
        "WORKER_METRICS_HOST": "127.0.0.1",
    }
    proc = worker_process(env)
    try:
        job = await redis.enqueue_job(Job.PING.value)
        assert job is not None
        await job.result(timeout=60)  # the worker is up and consuming
        alive = _check(env)
        assert alive.returncode == 0, alive.stderr
        # A worker listening on every address is asked on loopback.
        assert _check({**env, "WORKER_METRICS_HOST": "0.0.0.0"}).returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    gone = _check(env)
    assert gone.returncode == 1
    assert "worker unhealthy" in gone.stderr
