"""Worker observability: per-job metrics and context, queue gauges, and a tiny HTTP server
for `GET /metrics` and `GET /health` on WORKER_METRICS_PORT.

The server is a few lines of asyncio on the worker's own event loop: if the loop is
blocked, the probe times out, which is what a liveness probe should see. `/health`
answers 200 while ARQ's main task runs and Redis answers, 503 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Function, Retry

from tenantry.context import job_id_var, tenant_id_var
from tenantry.observability.metrics import (
    JOB_DURATION,
    JOB_RETRIES,
    JOBS,
    JOBS_IN_PROGRESS,
    QUEUE_DEFERRED,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    render_latest,
)

logger = logging.getLogger("tenantry.worker")

# How many of the oldest due jobs to look at when telling running jobs from waiting ones.
_HEAD = 200
_CHECK_TIMEOUT = 2.0


def instrument_job(function: Function, *, default_timeout: float | None = None) -> Function:
    """Wrap a job so every run records duration, outcome and retries, and logs (and
    Sentry events) carry its job id and tenant.

    Runs time out inside ARQ's `wait_for`, which the job sees as a cancellation; a
    cancellation that arrives at the time limit is counted as a timeout.
    """
    name = function.name
    coroutine = function.coroutine
    limit = function.timeout_s if function.timeout_s is not None else default_timeout

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # Each ARQ job runs in its own task, so these settings end with the job; they are
        # not reset, so Sentry's wrapper outside this one still sees the tenant.
        job_id_var.set(str(ctx.get("job_id")) if ctx.get("job_id") else None)
        tenant = kwargs.get("tenant_id")
        tenant_id_var.set(str(tenant) if tenant else None)
        if int(ctx.get("job_try") or 1) > 1:
            JOB_RETRIES.labels(name).inc()
        JOBS_IN_PROGRESS.inc()
        started = time.perf_counter()
        outcome = "failure"
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Retry:
            outcome = "retry"
            raise
        except asyncio.CancelledError:
            elapsed = time.perf_counter() - started
            outcome = "timeout" if limit is not None and elapsed >= limit * 0.99 else "cancelled"
            raise
        except TimeoutError:
            outcome = "timeout"
            raise
        else:
            outcome = "success"
            return result
        finally:
            JOBS_IN_PROGRESS.dec()
            JOB_DURATION.labels(name).observe(time.perf_counter() - started)
            JOBS.labels(name, outcome).inc()

    return replace(function, coroutine=run)


async def observe_queue(redis: ArqRedis, queue_name: str) -> None:
    """Depth, oldest waiting age and deferred count of ARQ's queue (a sorted set scored
    by the time each job becomes due, in ms). Jobs being run stay in the set until they
    finish, so the oldest due jobs are checked for an in-progress key."""
    # ARQ scores a job with its enqueue time in whole (rounded) ms, so "now" must be read
    # the same way: a raw time.time() * 1000 can sit up to 0.5 ms below the score of a
    # job enqueued a moment ago and count it as deferred.
    now_ms = timestamp_ms()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue_name)
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=_HEAD, withscores=True)
        total, due, head = await pipe.execute()
    running: list[bool] = []
    if head:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in head:
                key = job_id.decode() if isinstance(job_id, bytes) else str(job_id)
                pipe.exists(in_progress_key_prefix + key)
            running = [bool(x) for x in await pipe.execute()]
    waiting_scores = [score for (_, score), busy in zip(head, running, strict=True) if not busy]
    QUEUE_DEPTH.set(max(int(due) - sum(running), 0))
    QUEUE_DEFERRED.set(max(int(total) - int(due), 0))
    QUEUE_OLDEST_AGE.set(max((now_ms - waiting_scores[0]) / 1000, 0) if waiting_scores else 0)


Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]


class MetricsServer:
    """`GET /metrics` and `GET /health` over HTTP/1.0-style one-shot connections."""

    def __init__(
        self,
        *,
        redis: ArqRedis,
        queue_name: str,
        main_task: asyncio.Task[Any] | None,
        host: str,
        port: int,
    ) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.main_task = main_task
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("worker metrics and health on :%d", self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def metrics(self) -> tuple[int, str, bytes]:
        try:
            await asyncio.wait_for(observe_queue(self.redis, self.queue_name), _CHECK_TIMEOUT)
        except Exception as exc:
            # The job metrics are still worth a scrape when Redis is briefly away.
            logger.warning("queue gauges not refreshed: %s", type(exc).__name__)
        body, content_type = render_latest()
        return 200, content_type, body

    async def health(self) -> tuple[int, str, bytes]:
        checks: dict[str, str] = {}
        alive = self.main_task is None or not self.main_task.done()
        checks["worker"] = "ok" if alive else "stopped"
        try:
            await asyncio.wait_for(self.redis.ping(), _CHECK_TIMEOUT)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        body = {"status": "healthy" if healthy else "unavailable", "checks": checks}
        return (200 if healthy else 503), "application/json", orjson.dumps(body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            # Drain the headers; nothing in them changes the answer.
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                if line in (b"\r\n", b"\n", b""):
                    break
            parts = request_line.decode("latin-1").split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            path = target.split("?", 1)[0]
            routes: dict[str, Handler] = {"/metrics": self.metrics, "/health": self.health}
            if path not in routes:
                status, content_type, body = 404, "text/plain", b"not found\n"
            elif method not in ("GET", "HEAD"):
                status, content_type, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, content_type, body = await routes[path]()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            logger.exception("worker metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
