"""WorkerSettings: the functions, cron jobs and hooks of `tenantry worker`."""

from __future__ import annotations

from tenantry.kit.startup import startup_imports

# Everything the worker needs loads here, with the garbage collector paused (kit.startup).
with startup_imports():
    import asyncio
    import contextlib
    import logging
    from typing import Any, ClassVar

    from arq import cron, func
    from arq.connections import RedisSettings
    from arq.cron import CronJob
    from arq.typing import WorkerCoroutine
    from arq.worker import Function

    from tenantry.config import get_settings
    from tenantry.db import Database
    from tenantry.jobs import Job, json_dumps, json_loads
    from tenantry.observability.metrics import init_known_series
    from tenantry.observability.worker import MetricsServer, instrument_job
    from tenantry.redis_client import create_redis
    from tenantry.webhooks.delivery import close_client as close_webhook_client
    from workers import emails, reports, system, tenants, usage, webhooks

logger = logging.getLogger("tenantry.worker")


async def startup(ctx: dict[str, Any]) -> None:
    # Tests pass their own settings in `Worker(ctx=...)`; processes read the environment.
    settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database.from_settings(settings)
    # A client with our timeouts for job code; ctx["redis"] is ARQ's own pool.
    ctx["app_redis"] = create_redis(settings)
    init_known_series(f.name for f in WorkerSettings.functions if isinstance(f, Function))
    # on_startup runs inside ARQ's main task: while it runs, the worker is alive.
    server = MetricsServer(
        redis=ctx["app_redis"],
        main_task=asyncio.current_task(),
        host=settings.worker_metrics_host,
        port=settings.worker_metrics_port,
    )
    ctx["metrics_port"] = await server.start()
    ctx["metrics_server"] = server
    ctx["webhook_gauges"] = asyncio.create_task(webhooks.watch_gauges(ctx))
    logger.info("worker started")


async def shutdown(ctx: dict[str, Any]) -> None:
    if "webhook_gauges" in ctx:
        ctx["webhook_gauges"].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx["webhook_gauges"]
    await close_webhook_client()
    if "metrics_server" in ctx:
        await ctx["metrics_server"].stop()
    await ctx["app_redis"].aclose()
    await ctx["db"].dispose()
    logger.info("worker stopped")


JOB_TIMEOUT = 60


def _functions() -> list[Function | WorkerCoroutine]:
    functions = [
        func(system.ping, name=Job.PING.value, timeout=10, max_tries=3),
        func(
            reports.build,
            name=Job.BUILD_REPORT.value,
            timeout=get_settings().report_job_timeout,
            max_tries=reports.MAX_TRIES,
        ),
        # A send is bounded by 2 × SMTP_TIMEOUT (20 s by default); the row's claim lease
        # (EMAIL_CLAIM_LEASE_SECONDS) outlasts this timeout.
        func(emails.deliver, name=Job.DELIVER_EMAIL.value, timeout=30, max_tries=3, keep_result=60),
        # Bounded by its drain budget and one attempt; keep_result=0 frees the id at once.
        func(
            webhooks.deliver,
            name=Job.DELIVER_WEBHOOKS.value,
            timeout=webhooks.job_timeout(get_settings().webhook_timeout_seconds),
            max_tries=3,
            keep_result=0,
        ),
        # keep_result=0 frees the job id at once, so the relay can enqueue it again.
        func(
            tenants.purge,
            name=Job.PURGE_TENANT.value,
            max_tries=tenants.PURGE_MAX_TRIES,
            keep_result=0,
        ),
    ]
    # Every job records its duration, outcome and retries (tenantry_jobs_total, …).
    return [instrument_job(f, default_timeout=JOB_TIMEOUT) for f in functions]


# ARQ re-runs a killed worker's job once its in-progress key expires, after the LONGEST
# timeout of any function or cron job + 10 s: keep every timeout here short.
def cron_jobs() -> list[CronJob]:
    """Fresh CronJob objects (ARQ keeps each one's next run time on the object itself).

    `unique=True` (the default) makes ARQ take a per-run job id, so with several workers
    each cron tick runs once.
    """
    every = max(1, min(60, get_settings().email_relay_interval_seconds))
    return [
        cron(reports.relay, name=Job.RELAY_REPORTS.value, second={0, 30}, timeout=10, max_tries=1),
        cron(usage.flush_usage, name=Job.FLUSH_USAGE.value, second={15}, timeout=10, max_tries=1),
        cron(
            emails.relay,
            name=Job.RELAY_OUTBOX.value,
            second=set(range(0, 60, every)),
            run_at_startup=True,
            timeout=10,
            max_tries=1,
        ),
        cron(
            webhooks.relay,
            name=Job.RELAY_WEBHOOKS.value,
            second=set(
                range(0, 60, max(1, min(60, get_settings().webhook_relay_interval_seconds)))
            ),
            run_at_startup=True,
            timeout=10,
            max_tries=1,
        ),
        cron(
            webhooks.prune,
            name=Job.PRUNE_WEBHOOKS.value,
            minute={17},
            second={30},
            timeout=50,
            max_tries=1,
        ),
        cron(
            tenants.relay_purges,
            name=Job.RELAY_PURGES.value,
            minute=set(range(0, 60, 5)),
            second={45},
            timeout=10,
            max_tries=1,
        ),
    ]


def completion_wait(
    functions: list[Function | WorkerCoroutine], crons: list[CronJob], default: float
) -> int:
    """Seconds a stopping worker lets its running jobs finish (ARQ cancels them, and
    spends a try, only after this): longer than the longest job may run, so a job
    started before SIGTERM ends on its own. Kubernetes' terminationGracePeriodSeconds
    (the chart's worker.terminationGracePeriodSeconds) must be longer still."""
    timeouts = [
        job.timeout_s if job.timeout_s is not None else default
        for job in [*functions, *crons]
        if isinstance(job, Function | CronJob)
    ]
    return int(max(timeouts, default=default)) + 5


class WorkerSettings:
    functions: ClassVar[list[Function | WorkerCoroutine]] = _functions()
    cron_jobs: ClassVar[list[CronJob]] = cron_jobs()
    queue_name = get_settings().queue_name
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
    # On SIGTERM: stop picking jobs, let the running ones finish, then stop. (Without
    # it ARQ cancels running jobs at once and re-queues them, spending a try.)
    job_completion_wait = completion_wait(functions, cron_jobs, JOB_TIMEOUT)
