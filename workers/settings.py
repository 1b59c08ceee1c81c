"""WorkerSettings: the functions, cron jobs and hooks of `tenantry worker`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from arq import func
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from arq.worker import Function

from tenantry.config import get_settings
from tenantry.db import Database
from tenantry.jobs import QUEUE_NAME, Job, json_dumps, json_loads
from tenantry.observability.metrics import init_known_series
from tenantry.observability.worker import MetricsServer, instrument_job
from tenantry.redis_client import create_redis
from workers import system

logger = logging.getLogger("tenantry.worker")


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database.from_settings(settings)
    # A client with our timeouts for job code; ctx["redis"] is ARQ's own pool.
    ctx["app_redis"] = create_redis(settings)
    init_known_series(f.name for f in WorkerSettings.functions if isinstance(f, Function))
    # on_startup runs inside ARQ's main task: while it runs, the worker is alive.
    server = MetricsServer(
        redis=ctx["app_redis"],
        queue_name=QUEUE_NAME,
        main_task=asyncio.current_task(),
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
    )
    ctx["metrics_port"] = await server.start()
    ctx["metrics_server"] = server
    logger.info("worker started")


async def shutdown(ctx: dict[str, Any]) -> None:
    if "metrics_server" in ctx:
        await ctx["metrics_server"].stop()
    await ctx["app_redis"].aclose()
    await ctx["db"].dispose()
    logger.info("worker stopped")


JOB_TIMEOUT = 60


def _functions() -> list[Function | WorkerCoroutine]:
    functions = [
        func(system.ping, name=Job.PING.value, timeout=10, max_tries=3),
    ]
    # Every job records its duration, outcome and retries (tenantry_jobs_total, …).
    return [instrument_job(f, default_timeout=JOB_TIMEOUT) for f in functions]


class WorkerSettings:
    functions: ClassVar[list[Function | WorkerCoroutine]] = _functions()
    queue_name = QUEUE_NAME
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = staticmethod(json_dumps)
    job_deserializer = staticmethod(json_loads)
    # Short, so `tenantry worker --check` works as a Kubernetes probe.
    health_check_interval = 5
    job_timeout = JOB_TIMEOUT
    max_tries = 5
    keep_result = 3600
    poll_delay = 0.2
    max_jobs = 20
