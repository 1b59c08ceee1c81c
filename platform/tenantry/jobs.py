"""Job names and the enqueue buffer: jobs leave only after their transaction commits.

A job enqueued before the commit could run before its rows exist, or for rows that a
rollback then erased. So services call `enqueue(session, ...)`, which only records the
job on the session, and the unit of work sends the buffer after a successful commit.
Arguments are JSON (ids and `tenant_id` only); the worker loads fresh rows itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from arq.connections import ArqRedis
from redis import exceptions as redis_exc
from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger("tenantry.jobs")


class Job(StrEnum):
    """Every job and cron job the worker runs, by the name ARQ and the metrics know."""

    PING = "system.ping"
    DELIVER_EMAIL = "emails.deliver"
    RELAY_OUTBOX = "emails.relay"
    BUILD_REPORT = "reports.build"
    RELAY_REPORTS = "reports.relay"
    FLUSH_USAGE = "usage.flush"
    PURGE_TENANT = "tenants.purge"
    RELAY_PURGES = "tenants.relay_purges"
    DELIVER_WEBHOOKS = "webhooks.deliver"
    RELAY_WEBHOOKS = "webhooks.relay"
    PRUNE_WEBHOOKS = "webhooks.prune"


@dataclass(frozen=True)
class PendingJob:
    name: str
    kwargs: dict[str, Any]
    job_id: str | None = None
    defer_by: float | None = None
    # When set, the job id gets `:<the counter at this Redis key>` when it is sent, so a
    # job that has started (and bumped the counter) no longer absorbs new enqueues.
    generation_key: str | None = None


@dataclass
class JobBuffer:
    jobs: list[PendingJob] = field(default_factory=list)


def json_dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def json_loads(value: bytes) -> Any:
    return orjson.loads(value)


def _buffer(session: AsyncSession) -> JobBuffer:
    buffer = session.info.get("jobs")
    if buffer is None:
        buffer = session.info["jobs"] = JobBuffer()
    assert isinstance(buffer, JobBuffer)
    return buffer


def enqueue(
    session: AsyncSession,
    job: Job,
    *,
    job_id: str | None = None,
    defer_by: float | None = None,
    generation_key: str | None = None,
    **kwargs: Any,
) -> None:
    """Buffer a job on the session; it is sent after the commit, dropped on rollback.

    `job_id` makes a double enqueue run once (ARQ refuses a second job with the same id
    while the first is queued or its result is kept).
    """
    _buffer(session).jobs.append(PendingJob(job.value, kwargs, job_id, defer_by, generation_key))


def take_jobs(session: AsyncSession) -> list[PendingJob]:
    buffer = session.info.pop("jobs", None)
    return buffer.jobs if isinstance(buffer, JobBuffer) else []


async def send_jobs(pool: ArqRedis | None, jobs: list[PendingJob]) -> None:
    """Send committed jobs. A Redis failure is logged, not raised: every job whose
    loss would matter has a durable row that a relay cron re-enqueues."""
    if not jobs:
        return
    if pool is None:
        logger.warning("no job queue configured; %d job(s) left to the relays", len(jobs))
        return
    # Every generation in one round trip (a commit may wake a hundred webhook endpoints).
    generations: dict[str, int] = {}
    keys = [job.generation_key for job in jobs if job.generation_key is not None]
    if keys:
        try:
            values = await pool.mget(keys)
            generations = {k: int(v or 0) for k, v in zip(keys, values, strict=True)}
        except Exception as exc:
            logger.debug("could not read job generations (%s); the relay will wake them", exc)
    for job in jobs:
        try:
            job_id = job.job_id
            if job.generation_key is not None:
                if job.generation_key not in generations:
                    continue
                job_id = f"{job_id}:{generations[job.generation_key]}"
            await pool.enqueue_job(
                job.name,
                _job_id=job_id,
                _defer_by=job.defer_by,
                **job.kwargs,
            )
        except (redis_exc.ConnectionError, redis_exc.TimeoutError, OSError) as exc:
            # Redis is down: the breaker logs the outage once; each job is a debug line.
            logger.debug("could not enqueue %s (%s); the relay will retry it", job.name, exc)
        except Exception:
            logger.warning("could not enqueue %s; the relay will retry it", job.name, exc_info=True)
