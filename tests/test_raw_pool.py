"""`RawPool`: the raw lane's small pool, against real PostgreSQL connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from tenantry.config import Settings
from tenantry.raw_pool import RawPool


@pytest.fixture
async def pool_of(settings: Settings) -> AsyncIterator[Callable[..., RawPool]]:
    dsn = settings.database_url.replace("+asyncpg", "")
    made: list[RawPool] = []

    def make(size: int, timeout: float = 2.0, max_idle: float = 1800.0) -> RawPool:
        connect = lambda: asyncpg.connect(dsn)  # noqa: E731
        made.append(RawPool(connect, size=size, timeout=timeout, max_idle=max_idle))
        return made[-1]

    yield make
    for pool in made:
        await pool.close()


async def _pid(connection: asyncpg.Connection) -> int:
    pid: int = await connection.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_connections_are_made_on_demand_and_reused_warm_first(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(3)
    assert (pool.in_use, pool.waiting) == (0, 0)
    first, second = await pool.acquire(), await pool.acquire()
    assert pool.in_use == 2
    pids = (await _pid(first), await _pid(second))
    pool.release(first)
    pool.release(second)
    assert pool.in_use == 0
    again = await pool.acquire()
    assert await _pid(again) == pids[1]  # the last returned comes out first
    pool.release(again)


async def test_a_full_pool_waits_then_times_out_and_still_works(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(1, timeout=0.2)
    held = await pool.acquire()
    with pytest.raises(TimeoutError):
        await pool.acquire()
    assert pool.waiting == 0
    pool.release(held)
    again = await pool.acquire()
    assert again is held
    pool.release(again)


async def test_a_returned_connection_goes_to_the_oldest_waiter(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(1)
    held = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    assert pool.waiting == 2
    pool.release(held)
    assert await first is held
    assert not second.done()
    pool.release(held)
    assert await second is held
    pool.release(held)
    assert pool.in_use == 0


async def test_a_closed_connection_leaves_and_its_place_goes_to_a_waiter(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(1)
    held = await pool.acquire()
    old = await _pid(held)
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    held.terminate()
    pool.release(held)
    fresh = await waiter
    assert fresh is not held and await _pid(fresh) != old
    assert pool.in_use == 1
    pool.release(fresh)
    assert pool.in_use == 0


async def test_an_idle_connection_that_died_is_never_handed_out(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(2)
    connection = await pool.acquire()
    pool.release(connection)
    connection.terminate()  # closed while idle (as the pool sees it once noticed)
    fresh = await pool.acquire()
    assert fresh is not connection and not fresh.is_closed()
    assert pool.in_use == 1
    pool.release(fresh)


async def test_a_connection_idle_too_long_is_replaced_not_reused(
    pool_of: Callable[..., RawPool],
) -> None:
    """As SQLAlchemy's pool_recycle: a middlebox may have dropped it without a word."""
    pool = pool_of(1, max_idle=0.05)
    first = await pool.acquire()
    old = await _pid(first)
    pool.release(first)
    await asyncio.sleep(0.1)
    fresh = await pool.acquire()
    assert fresh is not first and first.is_closed()
    assert await _pid(fresh) != old
    assert pool.in_use == 1
    pool.release(fresh)
    again = await pool.acquire()  # returned a moment ago: reused
    assert again is fresh
    pool.release(again)


async def test_a_failed_connect_frees_its_place(settings: Settings) -> None:
    dsn = settings.database_url.replace("+asyncpg", "")
    failures = [ConnectionRefusedError("down")]

    async def connect() -> asyncpg.Connection:
        if failures:
            raise failures.pop()
        return await asyncpg.connect(dsn)

    pool = RawPool(connect, size=1, timeout=1)
    try:
        with pytest.raises(ConnectionRefusedError):
            await pool.acquire()
        assert pool.in_use == 0
        connection = await pool.acquire()  # the place is free again: no wait, no timeout
        pool.release(connection)
    finally:
        await pool.close()


async def test_a_cancelled_wait_loses_nothing(pool_of: Callable[..., RawPool]) -> None:
    pool = pool_of(1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.waiting == 0
    pool.release(held)
    assert await pool.acquire() is held
    pool.release(held)


async def test_closing_fails_the_waiters_and_closes_the_idle(
    pool_of: Callable[..., RawPool],
) -> None:
    pool = pool_of(1)
    idle = await pool.acquire()
    pool.release(idle)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await waiter
    pool.release(held)  # returned after close: closed, not kept
    assert held.is_closed()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()
