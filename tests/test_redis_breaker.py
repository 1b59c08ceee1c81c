"""One circuit breaker on the Redis client covers every Redis call of a request.

A hung Redis (accepts connections, never answers) used to cost every Redis call of
every request its full socket timeout, one after another: idempotency claim and
record, cache read and invalidation, rate limit, usage (issue #15, item 2). With the
breaker, the process reaches the hung server at most once per breaker period. The
throughput ratio under a real SIGSTOP is measured in tests/faults and bench/faults.py;
here the count of attempts that reached the server is the proof, which no clock skews.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from redis import exceptions as redis_exc

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.main import create_app
from tenantry.models import Role
from tenantry.redis_client import Breaker, CircuitOpen, create_redis
from tests.fixtures.factories import Actor, make_actor, make_tenant


@dataclass
class HungRedis:
    """A listener that accepts every connection and never answers: a SIGSTOPped Redis."""

    port: int = 0
    accepted: int = 0
    _sock: socket.socket = field(default_factory=socket.socket)
    _held: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture
def hung() -> Iterator[HungRedis]:
    server = HungRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def hung_api(
    settings: Settings, db: Database, hung: HungRedis
) -> AsyncIterator[httpx.AsyncClient]:
    hung_settings = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{hung.port}/0", "redis_socket_timeout": 0.2}
    )
    app = create_app(hung_settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_a_hung_redis_is_reached_once_per_period(
    hung_api: httpx.AsyncClient,
    hung: HungRedis,
    db: Database,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner: Actor = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
    started = time.monotonic()
    statuses = []
    with caplog.at_level(logging.WARNING):
        for i in range(15):
            # Every Redis call a request can make: idempotency claim and record, rate
            # limit and usage, cache invalidation, job enqueue; then a cached read.
            created = await hung_api.post(
                "/api/v1/projects",
                json={"name": f"p{i}"},
                headers={**owner.headers, "Idempotency-Key": f"key-{i}"},
            )
            listed = await hung_api.get("/api/v1/projects", headers=owner.headers)
            statuses += [created.status_code, listed.status_code]
    elapsed = time.monotonic() - started
    assert statuses == [201, 200] * 15
    # Before the breaker: 4 or more timeouts per create, 2 per list (90+ attempts).
    periods = math.ceil(elapsed / 1.0)
    assert hung.accepted <= periods + 2, (hung.accepted, elapsed)
    # One line when Redis went away, not one (or five) per request.
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and r.name.startswith("tenantry")
        and r.name != "tenantry.access"
    ]
    assert len(warnings) <= 4, [r.getMessage() for r in warnings]


class TestBreaker:
    def test_opens_on_failure_then_probes_once(self) -> None:
        breaker = Breaker(open_seconds=0.05)
        assert breaker.admit() is False  # closed: no probe needed
        breaker.failed(redis_exc.TimeoutError(), probe=False)
        with pytest.raises(CircuitOpen):
            breaker.admit()
        time.sleep(0.06)
        assert breaker.admit() is True  # the one probe
        with pytest.raises(CircuitOpen):
            breaker.admit()  # others wait while it runs
        breaker.succeeded(probe=True)
        assert breaker.is_open is False
        assert breaker.admit() is False

    def test_failed_probe_opens_another_period(self) -> None:
        breaker = Breaker(open_seconds=0.05)
        breaker.failed(redis_exc.ConnectionError(), probe=False)
        time.sleep(0.06)
        assert breaker.admit() is True
        breaker.failed(redis_exc.ConnectionError(), probe=True)
        with pytest.raises(CircuitOpen):
            breaker.admit()

    def test_state_changes_log_once(self, caplog: pytest.LogCaptureFixture) -> None:
        breaker = Breaker(open_seconds=60, notice_seconds=60)
        with caplog.at_level(logging.WARNING, logger="tenantry.redis"):
            breaker.failed(redis_exc.ConnectionError(), probe=False)
            for _ in range(500):
                with pytest.raises(CircuitOpen):
                    breaker.admit()
            breaker.succeeded(probe=False)
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2, messages
        assert "unavailable" in messages[0] and "500 call(s)" in messages[1]

    async def test_circuit_open_is_a_connection_error(self, settings: Settings) -> None:
        """Every caller already handles redis.ConnectionError: fail open or closed."""
        client = create_redis(settings, url="redis://127.0.0.1:1/0")
        try:
            with pytest.raises(redis_exc.ConnectionError):
                await client.get("x")
            with pytest.raises(CircuitOpen):
                await client.get("x")
            with pytest.raises(CircuitOpen):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr("x")
                    await pipe.execute()
        finally:
            await client.aclose()
