"""The one Redis client per process: cache, rate limits, session state and the job queue."""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from tenantry.config import Settings
from tenantry.jobs import json_dumps, json_loads


def create_redis(settings: Settings, *, url: str | None = None) -> ArqRedis:
    """Built without connecting: the API must start (and report not-ready) while Redis is down.

    Tight socket timeouts turn a hung Redis into a quick error that callers can fail
    open or closed on, instead of a hung request.
    """
    pool = ConnectionPool.from_url(
        url or settings.redis_url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        max_connections=64,
    )
    return ArqRedis(
        pool,
        job_serializer=json_dumps,
        job_deserializer=json_loads,
        default_queue_name=settings.queue_name,
    )
