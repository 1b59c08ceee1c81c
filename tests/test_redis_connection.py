"""`QuickConnection` keeps redis-py's guarantees while skipping its scheduling costs:
a pooled connection holding an unasked reply is never handed out, and a write to a
Redis that stopped reading still ends within the socket timeout."""

from __future__ import annotations

import asyncio
import socket

import pytest
from arq.connections import ArqRedis
from redis import exceptions as redis_exc

from tenantry.redis_client import QuickConnection


async def test_the_api_client_uses_it(redis: ArqRedis) -> None:
    assert redis.connection_pool.connection_class is QuickConnection
    assert await redis.set("quick:probe", "1")
    assert await redis.get("quick:probe") == b"1"


async def test_a_connection_with_an_unread_reply_is_not_handed_out(redis: ArqRedis) -> None:
    await redis.set("quick:k", "v")
    connection = await redis.connection_pool.get_connection("GET")
    assert not await connection.can_read_destructive()
    # A reply nobody reads (what a caller cut short would leave behind)...
    await connection.send_command("GET", "quick:k")
    for _ in range(100):
        if await connection.can_read_destructive():
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the unread reply was never seen")
    await redis.connection_pool.release(connection)
    # ...would answer the next command; the pool reconnects instead.
    assert await redis.get("quick:other") is None
    assert await redis.get("quick:k") == b"v"


async def test_a_write_to_a_redis_that_stopped_reading_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    connection = QuickConnection(
        host="127.0.0.1",
        port=listener.getsockname()[1],
        socket_timeout=0.3,
        lib_name=None,  # no handshake: this server never answers
        lib_version=None,
    )
    try:
        await connection.connect()  # type: ignore[no-untyped-call]
        server_side, _ = listener.accept()
        big = b"x" * (64 * 1024 * 1024)  # more than any socket buffer holds
        started = asyncio.get_running_loop().time()
        with pytest.raises(redis_exc.TimeoutError):
            await connection.send_command("SET", "k", big)
        assert asyncio.get_running_loop().time() - started < 5
        assert not connection.is_connected  # closed: its state is unknown
        server_side.close()
    finally:
        await connection.disconnect()
        listener.close()
