"""Worker observability: per-job metrics and context, and a tiny HTTP server for
`GET /metrics` and `GET /health` on WORKER_METRICS_PORT. (The queue gauges are the
API's: see `observability.queue`.)

The server is a few lines of asyncio on the worker's own event loop: if the loop is
blocked, the probe times out, which is what a liveness probe should see. `/health`
(readiness) answers 200 while ARQ's main task runs and Redis answers, 503 otherwise;
`/health/live` (liveness) only asks the first: the worker rides out a Redis outage
(workers/runner.py), and restarting it for one would gain nothing.
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
from arq.worker import Function, Retry

from tenantry.context import job_id_var, tenant_id_var
from tenantry.observability.metrics import (
    JOB_DURATION,
    JOB_RETRIES,
    JOBS,
    JOBS_IN_PROGRESS,
    render_latest,
)

logger = logging.getLogger("tenantry.worker")

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


Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]


class MetricsServer:
    """`GET /metrics` and `GET /health` over HTTP/1.0-style one-shot connections."""

    def __init__(
        self,
        *,
        redis: ArqRedis,
        main_task: asyncio.Task[Any] | None,
        host: str,
        port: int,
    ) -> None:
        self.redis = redis
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
        body, content_type = render_latest("worker")
        return 200, content_type, body

    async def live(self) -> tuple[int, str, bytes]:
        alive = self.main_task is None or not self.main_task.done()
        body = {"status": "healthy" if alive else "stopped"}
        return (200 if alive else 503), "application/json", orjson.dumps(body)

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
            routes: dict[str, Handler] = {
                "/metrics": self.metrics,
                "/health": self.health,
                "/health/live": self.live,
            }
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
