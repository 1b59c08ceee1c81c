"""Liveness and readiness for Kubernetes probes and load balancers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tenantry.db import Database
from tenantry.deps import UnitOfWorkRoute
from tenantry.errors import problem
from tenantry.observability.metrics import DEPENDENCY_UP, READY

router = APIRouter(tags=["health"], route_class=UnitOfWorkRoute)

_CHECK_TIMEOUT = 2.0


class Liveness(BaseModel):
    status: str


class Check(BaseModel):
    status: str
    latency_ms: float | None = None
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]


# HEAD too: uptime checkers and load balancers often probe with it.
@router.head("/health", include_in_schema=False)
@router.get("/health", operation_id="get_liveness", response_model=Liveness)
async def live() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never touches a dependency, so a database
    outage does not make Kubernetes restart healthy pods."""
    return {"status": "healthy"}


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, timeout=_CHECK_TIMEOUT)
    except Exception as exc:
        return {"status": "unavailable", "error": type(exc).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _postgres(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


async def check_readiness(db: Database, redis: Any) -> dict[str, dict[str, Any]]:
    """Both checks at once, each bounded; the result also feeds `tenantry_ready`."""
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(_timed(_postgres(db)), _timed(redis.ping())),
            strict=True,
        )
    )
    for name, check in checks.items():
        DEPENDENCY_UP.labels(name).set(1 if check["status"] == "ok" else 0)
    READY.set(1 if all(c["status"] == "ok" for c in checks.values()) else 0)
    return checks


async def refresh(request: Request) -> None:
    """Update the readiness gauges (before a /metrics scrape)."""
    await check_readiness(request.app.state.db, request.app.state.redis)


@router.head("/health/ready", include_in_schema=False)
@router.get(
    "/health/ready",
    operation_id="get_readiness",
    response_model=Readiness,
    responses={503: {"description": "PostgreSQL or Redis is unreachable; `detail` says which"}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: PostgreSQL and Redis answer; 503 names the failing check."""
    checks = await check_readiness(request.app.state.db, request.app.state.redis)
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    healthy = not failing
    if healthy:
        return JSONResponse({"status": "ready", "checks": checks})
    # RFC 9457: `status` is the HTTP status code; the per-dependency verdicts stay
    # under `checks`.
    return problem(
        503,
        "Not ready: " + ", ".join(failing),
        code="unavailable",
        headers={"Retry-After": "5"},
        checks=checks,
    )
