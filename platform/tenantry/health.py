"""Liveness and readiness for Kubernetes probes and load balancers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tenantry.db import Database

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT = 2.0


@router.get("/health", operation_id="health-live")
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


@router.get("/health/ready", operation_id="health-ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: PostgreSQL and Redis answer; 503 names the failing check."""
    db: Database = request.app.state.db
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(_timed(_postgres(db)), _timed(request.app.state.redis.ping())),
            strict=True,
        )
    )
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    healthy = not failing
    body = {"status": "ready" if healthy else "unavailable", "checks": checks}
    if healthy:
        return JSONResponse(body)
    return JSONResponse(
        {
            "type": "https://tenantry.dev/problems/unavailable",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "Not ready: "
            + ", ".join(k for k, v in checks.items() if v["status"] != "ok"),
            **body,
        },
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": "5"},
    )
