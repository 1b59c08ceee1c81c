"""What a checkout costs: one `SELECT 1` alone, and with a checkout and return around it
through `tenantry.raw_pool.RawPool`, `asyncpg.Pool` (resetting nothing, as ours) and
SQLAlchemy's pool (`engine.raw_connection()`, as the lane used before), in CPU µs per
statement (process time, best of the rounds, on uvloop as `tenantry serve` runs).

    DATABASE_URL=postgresql+asyncpg://tenantry_app@127.0.0.1/tenantry_bh_10 \\
        uv run python bench/raw_pool.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

import asyncpg
import uvloop
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import greenlet_spawn

from tenantry.raw_pool import RawPool

URL = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
DSN = URL.replace("+asyncpg", "")
N, ROUNDS = 3000, 5


async def best(step: Callable[[], Awaitable[object]]) -> float:
    for _ in range(200):
        await step()
    timings = []
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(N):
            await step()
        timings.append((time.process_time() - start) / N * 1e6)
    return min(timings)


async def _reset_nothing(connection: asyncpg.Connection) -> None:
    return None


async def main() -> None:
    bare = await asyncpg.connect(DSN)
    ours = RawPool(lambda: asyncpg.connect(DSN), size=2, timeout=5)
    theirs = await asyncpg.create_pool(DSN, min_size=1, max_size=2, reset=_reset_nothing)
    engine = create_async_engine(URL, pool_size=2)

    async def alone() -> object:
        return await bare.fetchrow("SELECT 1")

    async def through_ours() -> object:
        connection = await ours.acquire()
        try:
            return await connection.fetchrow("SELECT 1")
        finally:
            ours.release(connection)

    async def through_asyncpg() -> object:
        async with theirs.acquire() as connection:
            return await connection.fetchrow("SELECT 1")

    async def through_sqlalchemy() -> object:
        pooled = await engine.raw_connection()
        try:
            return await pooled.driver_connection.fetchrow("SELECT 1")
        finally:
            await greenlet_spawn(pooled.close)

    try:
        floor = await best(alone)
        print(f"{'statement alone':28} {floor:6.1f} µs")
        for name, step in (
            ("RawPool (ours)", through_ours),
            ("asyncpg.Pool", through_asyncpg),
            ("SQLAlchemy pool", through_sqlalchemy),
        ):
            cost = await best(step)
            print(f"{name:28} {cost:6.1f} µs  (checkout + return {cost - floor:5.1f} µs)")
    finally:
        await bare.close()
        await ours.close()
        await theirs.close()
        await engine.dispose()


if __name__ == "__main__":
    uvloop.run(main())
