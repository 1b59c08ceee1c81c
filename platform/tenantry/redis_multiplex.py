"""One pipelined Redis connection that every request of the process shares.

Every tenant call makes one Redis command, its admission script (`tenantry.admission`).
Through redis-py that command cost about 90 µs of CPU where its round trip costs 30
(`bench/redis_calls.py`): the pool's lock and checkout, the connection's health and
timeout bookkeeping, its reply parser's turns of the event loop. Redis answers the
commands of one connection in the order they came, so a process can send every
request's command down one connection as it comes and hand each reply to the oldest
waiting request: a future per command, an `asyncio.Protocol` that feeds what arrives
to hiredis' reader (the parser redis-py itself uses) and resolves the futures in order.
Nothing is checked out, nothing is locked, and replies that arrive together are parsed
in one turn of the loop.

Only plain TCP (`redis://`); TLS and unix sockets keep redis-py. Failure is what a
redis-py command would raise (`redis.exceptions.ConnectionError`, `TimeoutError`,
`ResponseError`), so callers and the circuit breaker treat both alike. A command that
times out closes the connection: every command still waiting on it fails at once, and
the next command connects again.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
from redis import exceptions as redis_exc
from redis.connection import parse_url

Arg = bytes | str | int


def pack(args: tuple[Arg, ...]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(out)


class _Replies(asyncio.Protocol):
    """Hands each parsed reply to the oldest command still waiting for one."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(
            protocolError=redis_exc.InvalidResponse, replyError=redis_exc.ResponseError
        )
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except redis_exc.InvalidResponse as exc:  # not Redis speaking: give up on it
                self.fail(redis_exc.ConnectionError(f"Protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(redis_exc.ConnectionError("Unexpected reply from Redis"))
                return
            future = self.waiting.popleft()
            if not future.done():  # its caller may have given up (cancelled)
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_waiting(redis_exc.ConnectionError(f"Connection to Redis lost: {exc}"))

    def fail(self, error: redis_exc.RedisError) -> None:
        """Close the connection; every command waiting on it fails with `error`."""
        self.lost = True
        self._fail_waiting(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail_waiting(self, error: redis_exc.RedisError) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class Multiplexed:
    """Commands down one shared connection; see the module docstring."""

    def __init__(self, url: str, *, timeout: float) -> None:
        options = parse_url(url)  # type: ignore[no-untyped-call]
        self.host: str = options.get("host", "localhost")
        self.port: int = int(options.get("port", 6379))
        self.timeout = timeout
        hello: list[tuple[Arg, ...]] = []
        if options.get("password") is not None:
            username = options.get("username")
            credentials = (username, options["password"]) if username else (options["password"],)
            hello.append(("AUTH", *credentials))
        if int(options.get("db", 0)):
            hello.append(("SELECT", int(options["db"])))
        self._hello = hello
        self._replies: _Replies | None = None
        self._connecting: asyncio.Future[_Replies] | None = None

    async def execute(self, *args: Arg) -> Any:
        """Send one command and wait for its reply (an error reply raises)."""
        replies = self._replies
        if replies is None or replies.lost or replies.loop is not asyncio.get_running_loop():
            replies = await self._connect()
        reply = await self._send(replies, pack(args))
        if isinstance(reply, redis_exc.ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                raise redis_exc.NoScriptError(str(reply))
            raise reply
        return reply

    async def close(self) -> None:
        replies, self._replies = self._replies, None
        if replies is not None and replies.transport is not None:
            replies.transport.close()

    async def _send(self, replies: _Replies, command: bytes) -> Any:
        assert replies.transport is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.waiting.append(future)
        replies.transport.write(command)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            replies.fail(redis_exc.TimeoutError("Timeout reading from Redis"))
            raise redis_exc.TimeoutError("Timeout reading from Redis") from None

    async def _connect(self) -> _Replies:
        # Requests that find no connection wait for the one being made.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, replies = await loop.create_connection(_Replies, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise redis_exc.ConnectionError(f"Error connecting to Redis: {exc!r}") from exc
        for command in self._hello:
            reply = await self._send(replies, pack(command))
            if isinstance(reply, redis_exc.ResponseError):
                replies.fail(redis_exc.ConnectionError(str(reply)))
                raise redis_exc.AuthenticationError(str(reply))
        self._replies = replies
        return replies
