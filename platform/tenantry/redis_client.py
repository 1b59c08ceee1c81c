"""The one Redis client per process: cache, rate limits, session state and the job queue.

Every command the API sends goes through one circuit breaker, kept on the client
itself, so no call site needs to know about it. A hung Redis (`SIGSTOP`, a full
network buffer) would otherwise make each Redis call of a request (idempotency claim
and record, cache read and invalidation, rate limit, usage, job enqueue) wait its own
socket timeout, one after another. With the breaker, the first call that fails opens
it; for `open_seconds` every call fails at once with `CircuitOpen` (a
`redis.ConnectionError`, which every caller already handles: fail open or closed as
it decides); then exactly one call is let through as a probe, and its outcome closes
the breaker or opens it for another period. So a process pays at most one socket
timeout per period, not every request.

The breaker logs one line when it opens, one when it closes, and while it stays open
a count of the calls it refused every `notice_seconds`, instead of a line per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from arq.connections import ArqRedis
from redis import exceptions as redis_exc
from redis.asyncio import Connection, ConnectionPool
from redis.asyncio.client import Pipeline

from tenantry.config import Settings
from tenantry.jobs import json_dumps, json_loads
from tenantry.redis_multiplex import Multiplexed

logger = logging.getLogger("tenantry.redis")
T = TypeVar("T")

# What a dead or hung Redis raises; a ResponseError means Redis answered, so it is not here.
FAILURES: tuple[type[BaseException], ...] = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    OSError,
    TimeoutError,
)

BREAKER_OPEN_SECONDS = 1.0
NOTICE_SECONDS = 30.0


class CircuitOpen(redis_exc.ConnectionError):
    """Redis failed recently; the call was refused without touching the network."""


class Breaker:
    """Closed → (a failure) → open for `open_seconds` → one probe → closed or open again."""

    def __init__(
        self,
        *,
        open_seconds: float = BREAKER_OPEN_SECONDS,
        notice_seconds: float = NOTICE_SECONDS,
    ) -> None:
        self.open_seconds = open_seconds
        self.notice_seconds = notice_seconds
        self.is_open = False
        self._open_until = 0.0
        self._probing = False
        self._opened_at = 0.0
        self._refused = 0
        self._refused_since_notice = 0
        self._last_notice = 0.0

    def admit(self) -> bool:
        """Raise CircuitOpen, or let the call through; True when it is the probe."""
        if not self.is_open:
            return False
        now = time.monotonic()
        if now < self._open_until or self._probing:
            self._refused += 1
            self._refused_since_notice += 1
            if now - self._last_notice >= self.notice_seconds:
                logger.warning(
                    "Redis still unavailable after %.0f s; %d call(s) refused since last notice",
                    now - self._opened_at,
                    self._refused_since_notice,
                )
                self._last_notice = now
                self._refused_since_notice = 0
            raise CircuitOpen("Redis circuit open")
        self._probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        if probe:
            self._probing = False
        if self.is_open:
            self.is_open = False
            logger.warning(
                "Redis reachable again after %.1f s; %d call(s) were refused meanwhile",
                time.monotonic() - self._opened_at,
                self._refused,
            )

    def failed(self, exc: BaseException, probe: bool) -> None:
        now = time.monotonic()
        if probe:
            self._probing = False
        self._open_until = now + self.open_seconds
        if not self.is_open:
            self.is_open = True
            self._opened_at = self._last_notice = now
            self._refused = self._refused_since_notice = 0
            logger.warning(
                "Redis unavailable (%s); failing fast, probing every %.1f s",
                type(exc).__name__,
                self.open_seconds,
            )

    def released(self, probe: bool) -> None:
        """The call ended without a verdict (cancelled, or Redis answered with an error)."""
        if probe:
            self._probing = False

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call under the breaker: refused while open, its outcome recorded."""
        probe = self.admit()
        try:
            result = await call()
        except FAILURES as exc:
            self.failed(exc, probe)
            raise
        except BaseException:
            self.released(probe)
            raise
        self.succeeded(probe)
        return result


class GuardedPipeline(Pipeline):
    breaker: Breaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        execute = super().execute
        return await self.breaker.guard(lambda: execute(raise_on_error))

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        # WATCH and the commands after it run at once, outside execute().
        immediate = super().immediate_execute_command
        return await self.breaker.guard(lambda: immediate(*args, **options))  # type: ignore[no-untyped-call]


class QuickConnection(Connection):
    """redis-py's TCP connection, without two costs it pays on every command.

    Measured on the 2-core bench machine (a GET to a local Redis, CPU per call):
    redis-py 5.3 spends about 200 µs where the round trip itself costs 50. Two parts
    of that are scheduling, not work, and go here with the same guarantees:

    - a write under `socket_timeout` went through `asyncio.wait_for`, which on Python
      3.11 wraps the write in a Task of its own; `asyncio.timeout` bounds it the same
      way inside the caller's task;
    - the pool asks each connection it hands out whether the server sent something
      unasked (a reply left behind would answer the next command) by reading with a
      zero timeout: a timer, a cancellation and two turns of the event loop. Whatever
      asyncio has received is already in the stream's buffer, so looking there answers
      the same question for a connection idle in the pool. (redis-py itself closes a
      connection whose command was cut short, so this is the second line of defence.)

    Together about 15–70 µs per command (`bench/redis_calls.py`, two machines). The
    command every tenant call makes (its admission) goes through `multiplexed`
    instead, cheaper still.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected or not self.socket_timeout:
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer = self._writer
        assert writer is not None  # connected
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(command)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise redis_exc.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise redis_exc.ConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)
            raise

    async def can_read_destructive(self) -> bool:
        reader = self._reader
        buffered = getattr(reader, "_buffer", None)
        if reader is None or buffered is None:  # not connected, or asyncio changed
            unread: bool = await super().can_read_destructive()  # type: ignore[no-untyped-call]
            return unread
        return reader.at_eof() or bool(buffered)


class GuardedRedis(ArqRedis):
    """ArqRedis whose every command and pipeline passes `breaker`.

    `multiplexed`, when the URL allows it, carries the one command every tenant call
    makes (`ratelimit.RateLimiter.exchange`) down a connection shared by all requests;
    it passes the same breaker.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        breaker: Breaker,
        multiplexed: Multiplexed | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool, **kwargs)
        self.breaker = breaker
        self.multiplexed = multiplexed

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.multiplexed is not None:
            await self.multiplexed.close()
        await super().aclose(close_connection_pool)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().execute_command
        return await self.guarded(lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call` under the breaker, tried once more if its connection was found dead:
        a connection that died with a restarted Redis fails once; a new one is refused
        at once if Redis is really down, or works if it is back. Only the second
        failure counts against the breaker."""

        async def once_more_on_a_dead_connection() -> T:
            try:
                return await call()
            except redis_exc.TimeoutError:
                raise
            except redis_exc.ConnectionError:
                return await call()

        return await self.breaker.guard(once_more_on_a_dead_connection)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.breaker = self.breaker
        return pipe


def create_redis(
    settings: Settings, *, url: str | None = None, breaker: Breaker | None = None
) -> GuardedRedis:
    """Built without connecting: the API must start (and report not-ready) while Redis is down.

    Tight socket timeouts turn a hung Redis into a quick error that callers can fail
    open or closed on, instead of a hung request; the breaker makes that error rare.
    """
    url = url or settings.redis_url
    # TLS (rediss://) and unix sockets keep redis-py's own classes.
    plain_tcp = url.startswith("redis://")
    quick = {"connection_class": QuickConnection} if plain_tcp else {}
    pool = ConnectionPool.from_url(
        url,
        **quick,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        max_connections=64,
    )
    return GuardedRedis(
        pool,
        breaker=breaker or Breaker(),
        multiplexed=Multiplexed(url, timeout=settings.redis_socket_timeout) if plain_tcp else None,
        job_serializer=json_dumps,
        job_deserializer=json_loads,
        default_queue_name=settings.queue_name,
    )
