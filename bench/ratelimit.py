"""What a rate-limit check costs per request, ours against pyrate-limiter (the core of
fastapi-limiter 0.2), on a real Redis.

    uv run python bench/ratelimit.py            # BENCH_REDIS_URL, default redis://127.0.0.1:6379/8

Prints the wall-clock median and p99, and the median CPU time of this process, of:
  0. a bare PING through the same client: the floor for any Redis-backed limiter;
  1. `RateLimiter.hit()` — our Lua script, one round trip (one key; two keys as login uses);
  2. pyrate-limiter's RedisBucket, one bucket per key (what a per-client limit needs), via
     `Limiter.try_acquire_async` as fastapi-limiter calls it;
  3. a whole request through the HTTP shell with and without the tenant rule, in-process
     over ASGI (no sockets), and the difference of the medians: the overhead per request.
Keys are written under `bench:` and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from time import time_ns
from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.types import Message

from tenantry.admission import admit
from tenantry.config import Settings
from tenantry.middleware import HttpShellMiddleware
from tenantry.models import Plan
from tenantry.ratelimit import Bucket, RateLimiter
from tenantry.redis_client import create_redis

N = int(os.environ.get("BENCH_N", "3000"))
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
HIGH = 10_000_000  # never refuse: we time the check, not the refusal


Call = Callable[[], Awaitable[Any]]


async def interleaved(variants: dict[str, Call]) -> dict[str, float]:
    """Time each variant N times, round-robin, so a busy moment on a shared machine
    lands on every variant alike. Prints wall-clock median and p99, and the median CPU
    time this process spent per call (what the check costs us, whatever the load).
    Returns the wall-clock medians in ms."""
    for call in variants.values():
        for _ in range(200):  # warm up: connections, script cache, code paths
            await call()
    wall: dict[str, list[float]] = {label: [] for label in variants}
    cpu: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(N):
        for label, call in variants.items():
            started, started_cpu = time.perf_counter_ns(), time.process_time_ns()
            await call()
            cpu[label].append((time.process_time_ns() - started_cpu) / 1e6)
            wall[label].append((time.perf_counter_ns() - started) / 1e6)
    medians = {}
    for label, values in wall.items():
        values.sort()
        medians[label] = statistics.median(values)
        p99 = values[int(len(values) * 0.99)]
        print(
            f"{label:<56} median {medians[label]:6.3f} ms  p99 {p99:6.3f} ms"
            f"  cpu {statistics.median(cpu[label]):6.3f} ms"
        )
    return medians


async def main() -> None:
    from pyrate_limiter import BucketFactory, Duration, Limiter, Rate, RateItem, RedisBucket
    from redis.asyncio import Redis

    settings = Settings(_env_file=None, redis_url=URL, rate_limit_enterprise=HIGH)  # type: ignore[call-arg]
    redis = create_redis(settings)
    limiter = RateLimiter(redis, settings)
    one = Bucket("bench:ours:{t}", HIGH, 60_000)
    two = Bucket("bench:ours:{t}:u", HIGH, 60_000)

    pyrate_redis = Redis.from_url(URL)
    rates = [Rate(HIGH, Duration.MINUTE)]

    class PerKey(BucketFactory):  # type: ignore[misc]
        """One Redis bucket per limited key; the README's single bucket is shared by all."""

        def __init__(self) -> None:
            self.buckets: dict[str, Any] = {}

        def wrap_item(self, name: str, weight: int = 1) -> Any:
            return RateItem(name, time_ns() // 1_000_000, weight=weight)

        async def get(self, item: Any) -> Any:
            bucket = self.buckets.get(item.name)
            if bucket is None:
                key = f"bench:pyrate:{item.name}"
                bucket = await RedisBucket.init(rates, pyrate_redis, key)
                self.buckets[item.name] = bucket
            return bucket

    pyrate = Limiter(PerKey())

    tenant_id = uuid.uuid4()

    async def tenant_rule(request: Request) -> None:
        await admit(request, tenant_id, Plan.ENTERPRISE)

    async def no_op(request: Request) -> None:
        return None

    def build(dependency: Callable[[Request], Awaitable[None]] | None) -> Any:
        app = FastAPI()
        app.state.settings = settings
        app.state.redis = redis
        deps = [Depends(dependency)] if dependency else []

        @app.get("/x", dependencies=deps)
        async def x() -> dict[str, str]:
            return {"ok": "yes"}

        return HttpShellMiddleware(app, max_body_bytes=1 << 20)

    def request_to(asgi: Any) -> Call:
        async def call() -> None:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/x",
                "raw_path": b"/x",
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"bench")],
                "client": ("127.0.0.1", 1),
                "server": ("bench", 80),
            }

            async def receive() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    assert message["status"] == 200, message

            await asgi(scope, receive, send)

        return call

    print(f"{N} calls of each, interleaved, against {URL}\n")
    medians = await interleaved(
        {
            "request through the shell, no dependency": request_to(build(None)),
            "request through the shell, a no-op dependency": request_to(build(no_op)),
            "floor: one Redis round trip (PING) with redis-py": redis.ping,
            "ours: RateLimiter.hit, 1 key": lambda: limiter.hit(one),
            "ours: RateLimiter.hit, 2 keys (login)": lambda: limiter.hit(one, two),
            "request through the shell, tenant rule": request_to(build(tenant_rule)),
        }
    )
    limited = medians["request through the shell, tenant rule"]
    # In the app the rule runs inside Authorize, a dependency every tenant route has anyway.
    for baseline in ("a no-op dependency", "no dependency"):
        overhead = limited - medians[f"request through the shell, {baseline}"]
        print(f"{'=> tenant rule overhead vs ' + baseline + ' (median)':<56} {overhead:.3f} ms")

    # Last and apart: pyrate-limiter's Limiter runs its own machinery (locks, a leak
    # scheduler) that would otherwise tax the variants interleaved with it.
    print()
    await interleaved(
        {
            "floor again: PING": redis.ping,
            "ours again: RateLimiter.hit, 1 key": lambda: limiter.hit(one),
            "pyrate-limiter: Limiter.try_acquire_async, RedisBucket": lambda: (
                pyrate.try_acquire_async("tenant", blocking=False)
            ),
        }
    )

    await redis.delete(one.key, two.key, f"rl:tenant:{{{tenant_id}}}")
    await pyrate_redis.delete("bench:pyrate:tenant")
    await redis.aclose()
    await pyrate_redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
