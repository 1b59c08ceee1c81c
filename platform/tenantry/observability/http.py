"""HTTP metrics and the access log, recorded by prometheus-fastapi-instrumentator's
middleware, and `GET /metrics` on the API's port.

The instrumentator middleware sits outermost, so it sees the status the client really
got (a 413 from the body cap, the shell's 500 or 503). It resolves each request to its
route template (`/api/v1/projects/{id}`; `none` when no route matches), which labels
the metrics and the access log line, so raw paths with ids never become label values.

`/metrics` is on the API's port but not public: the Ingress routes only `/api` and
`/health`. With `METRICS_TOKEN` set it also demands `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Request
from prometheus_fastapi_instrumentator.metrics import Info
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp

from tenantry.config import Settings
from tenantry.errors import problem
from tenantry.health import check_readiness
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
)

METRICS_PATH = "/metrics"
# Anything else a client invents ("PROPFIND", "X") would be a new series per value.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in _METHODS else "OTHER"


def _content_length(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _record(info: Info) -> None:
    """Called once per finished request with the resolved handler and final status."""
    method = method_label(info.method)
    handler = info.modified_handler
    status = int(info.modified_status)
    HTTP_REQUESTS.labels(method, handler, info.modified_status).inc()
    HTTP_LATENCY.labels(method, handler).observe(info.modified_duration)
    HTTP_REQUEST_SIZE.labels(handler).observe(
        _content_length(info.request.headers.get("content-length"))
    )
    response_size = info.response.headers.get("content-length") if info.response else None
    HTTP_RESPONSE_SIZE.labels(handler).observe(_content_length(response_size))
    state: dict[str, Any] = info.request.scope.get("state") or {}
    log_request(
        method=method,
        route=handler,
        path=info.request.url.path,
        status=status,
        latency_ms=info.modified_duration * 1000,
        request_id=state.get("request_id"),
        tenant_id=state.get("tenant_id"),
        user_id=state.get("user_id"),
    )


class _InProgress:
    """Adapts our process-wide gauge to the call the middleware makes, bounding `method`."""

    def labels(self, method: str, handler: str) -> Any:
        return HTTP_IN_PROGRESS.labels(method_label(method), handler)


class InstrumentatorMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware fed with metrics created once per process.

    The stock middleware registers its in-progress gauge in its constructor, which
    fails the second time an app is built in one process (every test does); here the
    gauge is ours and shared.
    """

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(
            app,
            should_group_status_codes=False,
            should_group_untemplated=True,
            should_ignore_untemplated=False,
            excluded_handlers=[f"^{METRICS_PATH}$"],
            instrumentations=[_record],
        )
        self.should_instrument_requests_inprogress = True
        self.inprogress_labels = True
        self.inprogress = _InProgress()  # type: ignore[assignment]


def observe_pool(pool: Pool, *, returning: int = 0) -> None:
    """Copy the pool's counters into the gauges (cheap attribute reads). `returning`
    is a connection being checked in: the event fires before the pool counts it back."""
    if not isinstance(pool, QueuePool):
        return
    size = pool.size()
    DB_POOL_SIZE.set(size)
    DB_POOL_MAX.set(size + max(pool._max_overflow, 0))
    DB_POOL_CHECKED_OUT.set(max(pool.checkedout() - returning, 0))
    DB_POOL_OVERFLOW.set(max(pool.overflow(), 0))
    DB_POOL_WAITING.set(_waiters(pool))


def _waiters(pool: QueuePool) -> int:
    # SQLAlchemy exposes no waiter count; the asyncio queue behind the async pool keeps
    # one future per coroutine blocked in checkout. Best effort: 0 if internals move.
    queue = getattr(pool._pool, "_queue", None)
    getters = getattr(queue, "_getters", None)
    return len(getters) if getters is not None else 0


def watch_pool(engine: AsyncEngine) -> None:
    """Refresh the pool gauges on every checkout and checkin as well as at scrape time,
    so each uvicorn worker's share is current even when another worker serves the scrape."""
    pool = engine.sync_engine.pool

    def _checkout(*_: Any) -> None:
        observe_pool(pool)

    def _checkin(*_: Any) -> None:
        observe_pool(pool, returning=1)

    if getattr(pool, "_tenantry_watched", False):
        return
    event.listen(pool, "checkout", _checkout)
    event.listen(pool, "checkin", _checkin)
    pool._tenantry_watched = True  # type: ignore[attr-defined]
    observe_pool(pool)


def _authorized(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware (outermost: call after every other add_middleware) and /metrics."""
    init_known_series()
    app.add_middleware(InstrumentatorMiddleware)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text exposition of every API process."""
        if token and not _authorized(request, token):
            return problem(
                401, "A valid metrics token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        await check_readiness(request.app.state.db, request.app.state.redis)
        observe_pool(request.app.state.db.engine.sync_engine.pool)
        body, content_type = await run_in_threadpool(render_latest)
        return Response(body, media_type=content_type)
