"""`Multiplexed` shares one connection between every request: each caller must get its
own reply, whatever the others do (fail, give up, time out), and a lost connection must
fail only the commands it was carrying."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvloop
from arq.connections import ArqRedis
from redis import exceptions as redis_exc

from tenantry.config import Settings
from tenantry.ratelimit import Bucket, RateLimiter
from tenantry.redis_client import GuardedRedis, create_redis
from tenantry.redis_multiplex import Multiplexed, pack


def multiplexed_of(redis: ArqRedis) -> Multiplexed:
    assert isinstance(redis, GuardedRedis) and redis.multiplexed is not None
    return redis.multiplexed


async def test_it_speaks_to_the_clients_own_database(redis: ArqRedis) -> None:
    await redis.set("mux:k", "from redis-py")
    assert await multiplexed_of(redis).execute("GET", "mux:k") == b"from redis-py"


def test_it_runs_on_uvloop_as_the_server_does(settings: Settings) -> None:
    async def exchange() -> list[bytes]:
        multiplexed = Multiplexed(settings.redis_url, timeout=2)
        try:
            replies: list[bytes] = await asyncio.gather(
                *(multiplexed.execute("ECHO", f"uv{i}") for i in range(50))
            )
            return replies
        finally:
            await multiplexed.close()

    assert uvloop.run(exchange()) == [f"uv{i}".encode() for i in range(50)]


async def test_each_of_many_concurrent_callers_gets_its_own_reply(redis: ArqRedis) -> None:
    multiplexed = multiplexed_of(redis)
    for i in range(300):
        await redis.set(f"mux:n:{i}", i)
    replies = await asyncio.gather(*(multiplexed.execute("GET", f"mux:n:{i}") for i in range(300)))
    assert replies == [str(i).encode() for i in range(300)]


async def test_an_error_reply_is_raised_to_its_caller_alone(redis: ArqRedis) -> None:
    multiplexed = multiplexed_of(redis)
    await redis.set("mux:text", "not a number")
    results = await asyncio.gather(
        multiplexed.execute("SET", "mux:a", "1"),
        multiplexed.execute("INCR", "mux:text"),
        multiplexed.execute("EVALSHA", "0" * 40, 0),
        multiplexed.execute("GET", "mux:a"),
        return_exceptions=True,
    )
    assert results[0] == b"OK"
    assert isinstance(results[1], redis_exc.ResponseError)
    assert isinstance(results[2], redis_exc.NoScriptError)
    assert results[3] == b"1"


async def test_the_rate_limit_loads_its_script_again_on_a_redis_that_lost_it(
    redis: ArqRedis, settings: Settings
) -> None:
    limiter = RateLimiter(redis, settings)
    # What a restarted Redis answers: it knows no script by this sha (no SCRIPT FLUSH,
    # which would empty the cache of every other suite on the server).
    limiter._script.sha = "0" * 40
    quota = await limiter.hit(Bucket("mux:bucket", limit=2, window_ms=60_000))
    assert quota.allowed and quota.remaining == 1
    assert await redis.get("mux:bucket") == b"1"


async def test_a_killed_connection_fails_its_commands_and_the_next_one_reconnects(
    redis: ArqRedis,
) -> None:
    multiplexed = multiplexed_of(redis)
    own_id = await multiplexed.execute("CLIENT", "ID")
    await redis.client_kill_filter(_id=own_id)
    with contextlib.suppress(redis_exc.ConnectionError):
        # Sent before the loop noticed the close: it fails, never hangs.
        await multiplexed.execute("PING")
    assert await multiplexed.execute("PING") == b"PONG"
    assert await multiplexed.execute("CLIENT", "ID") != own_id


async def test_a_limit_decided_through_the_api_client_counts_in_redis(
    redis: ArqRedis, settings: Settings
) -> None:
    limiter = RateLimiter(redis, settings)
    bucket = Bucket("mux:shared", limit=3, window_ms=60_000)
    quotas = await asyncio.gather(*(limiter.hit(bucket) for _ in range(5)))
    assert sorted(q.allowed for q in quotas) == [False, False, True, True, True]
    assert await redis.get("mux:shared") == b"3"


class SilentServer:
    """Accepts connections, records what it reads, and answers only when told to."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.received = b""
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received += data

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def commands_received(self, count: int) -> None:
        for _ in range(200):
            if self.received.count(b"*") >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the server saw {self.received!r}")


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    yield server
    for writer in server.writers:
        writer.close()
    server.server.close()


async def test_a_caller_that_gives_up_does_not_take_the_next_callers_reply(
    silent: SilentServer,
) -> None:
    multiplexed = Multiplexed(silent.url, timeout=5)
    first = asyncio.create_task(multiplexed.execute("GET", "a"))
    await silent.commands_received(1)
    second = asyncio.create_task(multiplexed.execute("GET", "b"))
    await silent.commands_received(2)
    first.cancel()
    silent.writers[0].write(b"$1\r\nA\r\n$1\r\nB\r\n")
    assert await second == b"B"
    assert first.cancelled()
    await multiplexed.close()


async def test_a_redis_that_stops_answering_times_out_every_waiting_command(
    silent: SilentServer,
) -> None:
    multiplexed = Multiplexed(silent.url, timeout=0.3)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(
        *(multiplexed.execute("GET", f"k{i}") for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, redis_exc.TimeoutError | redis_exc.ConnectionError) for r in results)
    assert any(isinstance(r, redis_exc.TimeoutError) for r in results)
    assert asyncio.get_running_loop().time() - started < 2
    # The connection that timed out is closed; a late reply on it answers nobody.
    await silent.commands_received(10)
    assert len(silent.writers) == 1
    reconnect = asyncio.create_task(multiplexed.execute("PING"))
    for _ in range(200):
        if len(silent.writers) == 2:
            break
        await asyncio.sleep(0.01)
    silent.writers[1].write(b"+PONG\r\n")
    assert await reconnect == b"PONG"
    await multiplexed.close()


async def test_a_command_is_given_its_whole_timeout_from_when_it_was_sent(
    silent: SilentServer,
) -> None:
    multiplexed = Multiplexed(silent.url, timeout=0.4)
    first = asyncio.create_task(multiplexed.execute("GET", "a"))
    await silent.commands_received(1)
    silent.writers[0].write(b"$1\r\nA\r\n")
    assert await first == b"A"
    await asyncio.sleep(0.25)  # the first command's deadline passes while the next waits
    loop = asyncio.get_running_loop()
    sent = loop.time()
    with pytest.raises(redis_exc.TimeoutError):
        await multiplexed.execute("GET", "b")
    assert 0.35 < loop.time() - sent < 1.5


async def test_it_signs_in_and_selects_the_database_before_the_first_command(
    silent: SilentServer,
) -> None:
    url = silent.url.replace("redis://", "redis://ops:s3cret@").removesuffix("/0") + "/3"
    multiplexed = Multiplexed(url, timeout=5)
    ping = asyncio.create_task(multiplexed.execute("PING"))
    await silent.commands_received(1)
    assert silent.received == pack(("AUTH", "ops", "s3cret"))
    silent.writers[0].write(b"+OK\r\n")
    await silent.commands_received(2)
    assert silent.received.endswith(pack(("SELECT", 3)))
    silent.writers[0].write(b"+OK\r\n")
    await silent.commands_received(3)
    assert silent.received.endswith(pack(("PING",)))
    silent.writers[0].write(b"+PONG\r\n")
    assert await ping == b"PONG"
    await multiplexed.close()


async def test_a_refused_password_is_an_authentication_error(silent: SilentServer) -> None:
    multiplexed = Multiplexed(silent.url.replace("redis://", "redis://:wrong@"), timeout=5)
    ping = asyncio.create_task(multiplexed.execute("PING"))
    await silent.commands_received(1)
    silent.writers[0].write(b"-WRONGPASS invalid username-password pair\r\n")
    with pytest.raises(redis_exc.AuthenticationError):
        await ping
    await multiplexed.close()


async def test_a_connection_that_died_under_a_command_is_retried_once_without_opening_the_breaker(
    settings: Settings,
) -> None:
    """A restarted Redis: the shared connection is dead, which shows only when a command
    is sent on it. The API client sends it once more on a new connection, and the
    breaker (which would fail every tenant call's admission open for a second) stays
    closed."""
    connections = 0

    async def restarted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read(65536)
        if connections == 1:
            writer.transport.abort()  # the old Redis: gone under the command
        else:
            writer.write(b"+PONG\r\n")
            await writer.drain()
            await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(restarted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = create_redis(settings, url=f"redis://127.0.0.1:{port}/0")
    try:
        multiplexed = multiplexed_of(redis)
        assert isinstance(redis, GuardedRedis)
        assert await redis.guarded(lambda: multiplexed.execute("PING")) == b"PONG"
        assert connections == 2
        assert not redis.breaker.is_open
    finally:
        await redis.aclose()
        server.close()


async def test_a_redis_that_is_down_is_a_connection_error() -> None:
    multiplexed = Multiplexed("redis://127.0.0.1:1/0", timeout=0.5)
    with pytest.raises(redis_exc.ConnectionError):
        await multiplexed.execute("PING")
