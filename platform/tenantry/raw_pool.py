"""A small pool of raw asyncpg connections, for the statements every request runs.

Why not asyncpg's own pool, or SQLAlchemy's: measured (`bench/raw_pool.py`, CPU per
`SELECT 1`), a checkout and return cost 16 µs through `asyncpg.Pool` (a proxy object,
a timeout context, an inactivity timer re-armed on every release) and 35 µs through
SQLAlchemy's (two greenlet hops and its checkout machinery), against 10 µs for the
statement itself; through this one, 0.3 µs. A cached page makes one checkout and page
2 two: moving them here cut page 2's server CPU by a fifth and a cached page's by a
quarter (`bench/run.py`). It is a list of idle connections and a count: nothing on
the way in or out but a `pop` and an `append`, and a future only when all are busy.

What it keeps from a real pool: a bound on connections (`size`), a bounded wait for
one (`timeout`, then `TimeoutError`: a 503), connections made on demand (none at
start), a dead connection never handed out twice (a closed one is dropped on return,
and its place goes to the next waiter), and LIFO reuse (the warm connection first).
It resets nothing on return: its users end their own transactions and set their RLS
context only `LOCAL`ly (`tenantry.db`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class RawPool:
    def __init__(
        self, connect: Connect, *, size: int, timeout: float, max_idle: float = 1800.0
    ) -> None:
        self._connect = connect
        self.size = size
        self.timeout = timeout
        # A connection idle longer is closed rather than reused, as SQLAlchemy's
        # pool_recycle does: a firewall or proxy between may have dropped it silently,
        # and a statement on it would hang until its timeout instead of failing at once.
        self.max_idle = max_idle
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # with when it came back
        self._open = 0  # idle + in use + being connected
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    @property
    def in_use(self) -> int:
        return self._open - len(self._idle)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the pool is closed")
        while self._idle:
            connection, since = self._idle.pop()
            if not connection.is_closed() and time.monotonic() - since <= self.max_idle:
                return connection
            connection.terminate()
            self._open -= 1
        if self._open >= self.size:
            handed = await self._wait()
            if handed is not None:
                return handed
            # else a place was freed and reserved for us
        else:
            self._open += 1
        return await self._new()

    def release(self, connection: asyncpg.Connection) -> None:
        """Back to the oldest waiter or the idle list; a closed connection leaves the
        pool, and its place goes to a waiter, to connect afresh."""
        if connection.is_closed() or self._closed:
            connection.terminate()
            self._open -= 1
            self._give_place()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append((connection, time.monotonic()))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for connection, _ in idle:
            try:
                await asyncio.wait_for(connection.close(), timeout=self.timeout)
            except Exception:
                connection.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the pool is closed"))

    async def _new(self) -> asyncpg.Connection:
        """Connect, in a place already counted in `_open`."""
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._give_place()
            raise

    async def _wait(self) -> asyncpg.Connection | None:
        """A connection someone returned, or None: a place freed (and counted) for us."""
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed over just as the wait ended: pass it on rather than lose it.
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._open -= 1
                    self._give_place()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _give_place(self) -> None:
        """A place under `size` is free: the oldest live waiter takes it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return
