"""One pipelined Redis connection that every request of the process shares.

Every tenant call makes one Redis command, its admission script (`tenantry.admission`).
Through redis-py that command cost about 90 µs of CPU where its round trip costs 30
(`bench/redis_calls.py`): the pool's lock and checkout, the connection's health and
timeout bookkeeping, its reply parser's turns of the event loop. Redis answers the
commands of one connection in the order they came, so a process can send every
request's command down one connection as it comes and hand each reply to the oldest
waiting request: a future per command, an `asyncio.Protocol` that feeds what arrives
to hiredis' reader (the parser redis-py itself uses) and resolves the futures in order.
Nothing is checked out, nothing is locked, commands sent during one turn of the loop
leave in one write, replies that arrive together are parsed in one turn, and one timer
per connection (not one per command) keeps the timeout.

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


class _Connection(asyncio.Protocol):
    """Sends commands as they come and hands each parsed reply to the oldest command
    still waiting for one.

    Commands sent during one turn of the event loop leave in one write, at the end of
    the turn. One timer per connection, not one per command, watches the oldest
    command's deadline: past it, the connection is failed.
    """

    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.reader = hiredis.Reader(
            protocolError=redis_exc.InvalidResponse, replyError=redis_exc.ResponseError
        )
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.lost = False

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """The future of `command`'s reply; it fails if the reply is late or the
        connection is lost."""
        future = self.loop.create_future()
        if self.lost:
            future.set_exception(redis_exc.ConnectionError("Connection to Redis lost"))
            return future
        deadline = self.loop.time() + self.timeout
        self.waiting.append((future, deadline))
        self.outgoing.append(command)
        if len(self.outgoing) == 1:
            self.loop.call_soon(self._write)
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(deadline, self._watch)
        return future

    def _write(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if not self.lost and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def _watch(self) -> None:
        self.watchdog = None
        if not self.waiting:
            return
        _, deadline = self.waiting[0]
        if self.loop.time() >= deadline:
            self.fail(redis_exc.TimeoutError("Timeout reading from Redis"))
        else:
            self.watchdog = self.loop.call_at(deadline, self._watch)

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
            future, _ = self.waiting.popleft()
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
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future, _ = self.waiting.popleft()
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
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def execute(self, *args: Arg) -> Any:
        """Send one command and wait for its reply (an error reply raises)."""
        connection = self._connection
        if (
            connection is None
            or connection.lost
            or connection.loop is not asyncio.get_running_loop()
        ):
            connection = await self._connect()
        reply = await connection.send(pack(args))
        if isinstance(reply, redis_exc.ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                raise redis_exc.NoScriptError(str(reply))
            raise reply
        return reply

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    async def _connect(self) -> _Connection:
        # Requests that find no connection wait for the one being made.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.timeout), self.host, self.port
                )
        except (OSError, TimeoutError) as exc:
            raise redis_exc.ConnectionError(f"Error connecting to Redis: {exc!r}") from exc
        for command in self._hello:
            reply = await connection.send(pack(command))
            if isinstance(reply, redis_exc.ResponseError):
                connection.fail(redis_exc.ConnectionError(str(reply)))
                raise redis_exc.AuthenticationError(str(reply))
        self._connection = connection
        return connection
