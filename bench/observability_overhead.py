"""Per-request cost of the metrics middleware + access log, in-process over ASGI.

Run: uv run python bench/observability_overhead.py   (prints µs per request)
Compares GET /api/v1/nothing (a 404, logged at INFO) through the full app against the
same app with the instrumentator middleware removed; no database or Redis is touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import httpx

from tenantry.config import Environment, Settings
from tenantry.main import create_app
from tenantry.observability.http import HttpMetricsMiddleware

N = int(os.environ.get("N", "3000"))


async def timed(app: object) -> float:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        for _ in range(200):
            await client.get("/api/v1/nothing")
        started = time.perf_counter()
        for _ in range(N):
            await client.get("/api/v1/nothing")
        return (time.perf_counter() - started) / N * 1e6


async def main() -> None:
    # The access log is on (INFO, to a null handler) as in production, minus the terminal.
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings(environment=Environment.TEST, check_db_role=False)
    full = create_app(settings)
    bare = create_app(settings)
    bare.user_middleware = [m for m in bare.user_middleware if m.cls is not HttpMetricsMiddleware]
    results: dict[str, list[float]] = {"without metrics": [], "with metrics": []}
    for _ in range(3):
        results["without metrics"].append(await timed(bare))
        results["with metrics"].append(await timed(full))
    for label, runs in results.items():
        print(f"{label:>16}: best {min(runs):7.1f} µs/request of {len(runs)} runs (N={N})")
    overhead = min(results["with metrics"]) - min(results["without metrics"])
    print(f"{'overhead':>16}: {overhead:7.1f} µs")


asyncio.run(main())
