"""What one Redis command costs the API process: a GET and an EVALSHA through redis-py's
own connection class, through `tenantry.redis_client.QuickConnection` and through
`tenantry.redis_multiplex.Multiplexed` (one at a time, and 32 at once as a busy
server sends them), against a plain asyncio stream doing the same round trip, in CPU µs per command (process time,
best of the rounds, on uvloop as `tenantry serve` runs, interleaved).

    REDIS_URL=redis://127.0.0.1:6379/15 uv run python bench/redis_calls.py
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import uvloop
from redis.asyncio import Connection, ConnectionPool, Redis

from tenantry.redis_client import QuickConnection
from tenantry.redis_multiplex import Multiplexed

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
N, ROUNDS = 5000, 5


async def cpu_per_call(step: Callable[[], Any], batch: int = 1) -> float:
    """CPU µs per command; `step` sends `batch` commands at once."""
    start = time.process_time()
    for _ in range(N // batch):
        await step()
    return (time.process_time() - start) / (N // batch * batch) * 1e6


async def main() -> None:
    clients = {
        name: Redis(
            connection_pool=ConnectionPool.from_url(
                URL, connection_class=cls, socket_timeout=2.0, health_check_interval=30
            )
        )
        for name, cls in (("redis-py Connection", Connection), ("QuickConnection", QuickConnection))
    }
    first = next(iter(clients.values()))
    sha = await first.script_load("return redis.call('GET', KEYS[1])")
    host, port = (
        first.connection_pool.connection_kwargs["host"],
        first.connection_pool.connection_kwargs["port"],
    )
    reader, writer = await asyncio.open_connection(host, port)
    key = b"bench:redis_calls"
    get = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)

    async def raw() -> None:
        writer.write(get)
        await reader.readline()

    steps: dict[str, Callable[[], Any]] = {"plain asyncio stream, GET": raw}
    for name, client in clients.items():
        steps[f"{name}, GET"] = partial(client.get, "bench:redis_calls")
        steps[f"{name}, EVALSHA"] = partial(client.evalsha, sha, 1, "bench:redis_calls")
    multiplexed = Multiplexed(URL, timeout=2.0)
    steps["Multiplexed, GET"] = partial(multiplexed.execute, "GET", "bench:redis_calls")
    steps["Multiplexed, EVALSHA"] = partial(
        multiplexed.execute, "EVALSHA", sha, 1, "bench:redis_calls"
    )

    async def many(step: Callable[[], Any]) -> None:
        await asyncio.gather(*(step() for _ in range(32)))

    for name, step in list(steps.items()):
        if name.endswith("EVALSHA"):
            steps[f"{name} ×32 at once"] = partial(many, step)
    best = dict.fromkeys(steps, float("inf"))
    for step in steps.values():
        for _ in range(300):
            await step()
    for _ in range(ROUNDS):
        for name, step in steps.items():
            batch = 32 if name.endswith("at once") else 1
            best[name] = min(best[name], await cpu_per_call(step, batch))
    for name, value in best.items():
        print(f"{name:40} {value:7.1f} µs")
    writer.close()
    await multiplexed.close()
    for client in clients.values():
        await client.aclose()


if __name__ == "__main__":
    uvloop.run(main())
