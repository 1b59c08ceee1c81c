"""What the HTTP metrics middleware costs per request: ours against the library's.

`uv run python bench/http_metrics.py [--requests 20000] [--rounds 5]`

Three copies of one FastAPI app with 60 routes in included routers (the shape of ours):
no metrics, `tenantry.observability.http.HttpMetricsMiddleware`, and
prometheus-fastapi-instrumentator's own middleware (same series, in a registry of its
own). Each request is one ASGI call of `GET /api/v1/r29/items/{id}`, in process, so the
difference between copies is the middleware and nothing else. Prints the median of the
rounds in µs per request, and each middleware's overhead over the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator

from tenantry.observability.http import HttpMetricsMiddleware
from tenantry.observability.metrics import init_known_series


def build(kind: str) -> FastAPI:
    app = FastAPI()
    for n in range(30):
        router = APIRouter(prefix=f"/r{n}")

        @router.get("/items")
        async def list_items() -> dict[str, Any]:
            return {"items": []}

        @router.get("/items/{item_id}")
        async def get_item(item_id: str) -> dict[str, Any]:
            return {"id": item_id}

        app.include_router(router, prefix="/api/v1")
    if kind == "ours":
        init_known_series()
        app.add_middleware(HttpMetricsMiddleware)
    elif kind == "library":
        Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


async def run(app: FastAPI, requests: int) -> float:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/r29/items/42",
        "raw_path": b"/api/v1/r29/items/42",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
        "app": app,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(200):  # warm-up: route tables, label children
        await app(dict(scope), receive, send)
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    apps = {kind: build(kind) for kind in ("bare", "ours", "library")}
    samples: dict[str, list[float]] = {kind: [] for kind in apps}
    for _ in range(args.rounds):  # interleaved, so drift hits every copy alike
        for kind, app in apps.items():
            samples[kind].append(await run(app, args.requests))
    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    print("| app | µs per request | overhead over bare |")
    print("| --- | --- | --- |")
    for kind, value in medians.items():
        print(f"| {kind} | {value:.1f} | {value - medians['bare']:+.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
