"""WorkerSettings: the functions, cron jobs and hooks of `tenantry worker`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from arq.worker import Function

from tenantry.config import get_settings
from tenantry.db import Database
from tenantry.jobs import QUEUE_NAME, Job, json_dumps, json_loads
from tenantry.redis_client import create_redis
from workers import system, tenants

logger = logging.getLogger("tenantry.worker")


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database.from_settings(settings)
    # A client with our timeouts for job code; ctx["redis"] is ARQ's own pool.
    ctx["app_redis"] = create_redis(settings)
    logger.info("worker started")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["app_redis"].aclose()
    await ctx["db"].dispose()
    logger.info("worker stopped")


def _functions() -> list[Function | WorkerCoroutine]:
    return [
        func(system.ping, name=Job.PING.value, timeout=10, max_tries=3),
        # keep_result=0 frees the job id at once, so the relay can enqueue it again.
        func(
            tenants.purge,
            name=Job.PURGE_TENANT.value,
            max_tries=tenants.PURGE_MAX_TRIES,
            keep_result=0,
        ),
    ]


class WorkerSettings:
    functions: ClassVar[list[Function | WorkerCoroutine]] = _functions()
    cron_jobs: ClassVar[list[Any]] = [
        cron(tenants.relay_purges, name="tenants.relay_purges", minute=set(range(0, 60, 5))),
    ]
    queue_name = QUEUE_NAME
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = staticmethod(json_dumps)
    job_deserializer = staticmethod(json_loads)
    # Short, so `tenantry worker --check` works as a Kubernetes probe.
    health_check_interval = 5
    job_timeout = 60
    max_tries = 5
    keep_result = 3600
    poll_delay = 0.2
    max_jobs = 20
