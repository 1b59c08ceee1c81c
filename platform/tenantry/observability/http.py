"""HTTP metrics and the access log, recorded by prometheus-fastapi-instrumentator's
middleware, and `GET /metrics` on the API's port.

The library's middleware sits outermost, so it sees the status the client really got (a
413 from the body cap, the shell's 500 or 503; an error that escapes everything counts
as 500). It resolves each request to its route template (`/api/v1/projects/{id}`;
`none` when no route matches), which labels the metrics and the access log line, so raw
paths with ids never become label values. The series themselves are ours
(`observability.metrics`), recorded by one instrumentation function: the library's own
metric functions create their metrics again for every app built in a process (the
second one records nothing), and would label invented methods as sent.

`/metrics` is on the API's port but not public: the Ingress routes only `/api` and
`/health`. With `METRICS_TOKEN` set it also demands `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info
from prometheus_fastapi_instrumentator.routing import get_route_name
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantry.config import Settings
from tenantry.errors import problem
from tenantry.observability.logging import log_request
from tenantry.observability.metrics import (
    DB_POOL_CHECKED_OUT,
    DB_POOL_MAX,
    DB_POOL_OVERFLOW,
    DB_POOL_SIZE,
    DB_POOL_WAITING,
    HTTP_IN_PROGRESS,
    HTTP_LATENCY,
    HTTP_REQUEST_SIZE,
    HTTP_REQUESTS,
    HTTP_RESPONSE_SIZE,
    init_known_series,
    render_latest,
    series,
)
from tenantry.observability.queue import observe_queue

METRICS_PATH = "/metrics"
_QUEUE_TIMEOUT = 2.0
logger = logging.getLogger("tenantry.metrics")
# Anything else a client invents ("PROPFIND", "X") would be a new series per value.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in _METHODS else "OTHER"


def _content_length(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def record_request(info: Info) -> None:
    """The instrumentation function: our HTTP series and the access log line."""
    method, handler = method_label(info.method), info.modified_handler
    duration = info.modified_duration
    series(HTTP_REQUESTS, method, handler, info.modified_status).inc()
    series(HTTP_LATENCY, method, handler).observe(duration)
    series(HTTP_REQUEST_SIZE, handler).observe(
        _content_length(info.request.headers.get("content-length"))
    )
    response_size = info.response.headers.get("content-length") if info.response else None
    series(HTTP_RESPONSE_SIZE, handler).observe(_content_length(response_size))
    scope = info.request.scope
    state: dict[str, Any] = scope.get("state") or {}
    log_request(
        method=method,
        route=handler,
        path=scope["path"],
        status=int(info.modified_status),
        latency_ms=duration * 1000,
        request_id=state.get("request_id"),
        tenant_id=state.get("tenant_id"),
        user_id=state.get("user_id"),
    )


class RequestsInProgress:
    """The `http_requests_inprogress` gauge, the one series the library cannot keep as
    ours: its gauge is registered anew in the global registry by every app built (the
    second app in a process fails to start) and labels invented methods as sent. The
    route lookup is the library's own function, a second one per request: most of what
    our wiring costs over the library's defaults (bench/http_metrics.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = get_route_name(HTTPConnection(scope), should_include_root_path=False)
        if handler == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        gauge = series(HTTP_IN_PROGRESS, method_label(scope["method"]), handler or "none")
        gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            gauge.dec()


def observe_pool(pool: Pool) -> None:
    """Copy the pool's counters into the gauges (cheap attribute reads)."""
    if not isinstance(pool, QueuePool):
        return
    size = pool.size()
    DB_POOL_SIZE.set(size)
    DB_POOL_MAX.set(size + max(pool._max_overflow, 0))
    DB_POOL_CHECKED_OUT.set(max(pool.checkedout(), 0))
    DB_POOL_OVERFLOW.set(max(pool.overflow(), 0))
    DB_POOL_WAITING.set(_waiters(pool))


def _waiters(pool: QueuePool) -> int:
    # SQLAlchemy exposes no waiter count; the asyncio queue behind the async pool keeps
    # one future per coroutine blocked in checkout. Best effort: 0 if internals move.
    queue = getattr(pool._pool, "_queue", None)
    getters = getattr(queue, "_getters", None)
    return len(getters) if getters is not None else 0


async def watch_pool(engine: AsyncEngine, *, every: float = 1.0) -> None:
    """Refresh the pool gauges every second (and at scrape time), so each uvicorn
    worker's share is current even when another worker serves the scrape. A timer
    rather than pool checkout/checkin events: those fire twice a request, and five
    gauge writes each were a measurable part of a cached read. Run it as a task."""
    pool = engine.sync_engine.pool
    while True:
        observe_pool(pool)
        await asyncio.sleep(every)


async def _observe_queue(redis: Any, queue_name: str) -> None:
    """The queue gauges, bounded: with Redis away the scrape still answers (readiness
    and tenantry_dependency_up already say why) and the gauges keep their last value."""
    try:
        await asyncio.wait_for(observe_queue(redis, queue_name), _QUEUE_TIMEOUT)
    except Exception as exc:
        logger.warning("queue gauges not refreshed: %s", type(exc).__name__)


def _authorized(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def instrument(app: FastAPI) -> None:
    """The metrics middleware: outermost, so call it after every other add_middleware."""
    init_known_series()
    app.add_middleware(RequestsInProgress)
    Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=[f"^{METRICS_PATH}$"],
    ).add(record_request).instrument(app)


def install(
    app: FastAPI, settings: Settings, *, before_scrape: Callable[[Request], Awaitable[object]]
) -> None:
    """The metrics middleware (outermost: call after every other add_middleware) and
    `/metrics`.

    `before_scrape` refreshes gauges a scrape should see current (main passes the
    readiness checks), so this module needs nothing from the layers above it.
    """
    instrument(app)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition of every API process."""
        if token and not _authorized(request, token):
            return problem(
                401, "A valid metrics token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        await before_scrape(request)
        await _observe_queue(request.app.state.redis, settings.queue_name)
        observe_pool(request.app.state.db.engine.sync_engine.pool)
        body, content_type = await run_in_threadpool(render_latest, "api")
        return Response(body, media_type=content_type)
