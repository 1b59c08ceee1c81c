"""Kept credential checks (`auth.principal_cache`): reused while nothing they read has
changed, and never one request past a change made through the API.

Each test first warms the cache (a check kept unconfirmed, then confirmed under the
generations read before a second check), proves the next call reuses it, then makes a
change through the API and expects the very next call to see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry.auth.principal_cache import principals
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuthSession, Role, Tenant
from tests.fixtures.accounts import PASSWORD, bearer, sign_up, tokens_for
from tests.fixtures.factories import Actor, make_actor
from tests.fixtures.services import mark_redis_index_async

TENANT_ROUTE = "/api/v1/projects"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    principals.clear()
    yield
    principals.clear()


def _key(actor: Actor) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]:
    return (actor.session_id, actor.user.id, actor.tenant.id if actor.tenant else None)


async def _warm(client: httpx.AsyncClient, actor: Actor) -> None:
    for _ in range(2):
        assert (await client.get(TENANT_ROUTE, headers=actor.headers)).status_code == 200
    kept = principals.get(_key(actor))
    assert kept is not None and kept[1] is not None, "kept and confirmed"


async def _revoke_in_the_database(db: Database, actor: Actor) -> None:
    """Past the API (as a script would): nothing bumps a generation."""
    async with db.session_scope() as session:
        await session.execute(
            sa.update(AuthSession)
            .where(AuthSession.id == actor.session_id)  # type: ignore[arg-type]
            .values(revoked_at=sa.func.now())
        )


async def test_a_confirmed_check_is_reused_until_it_expires(
    client: httpx.AsyncClient, db: Database, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _warm(client, owner)
    await _revoke_in_the_database(db, owner)
    # Proof that the database was not asked: the revocation is not seen...
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
    # ...until the kept answer's time is up (auth.principal_cache.TTL_SECONDS).
    monkeypatch.setattr(principals, "ttl_seconds", 0.0)
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 401


async def test_a_first_check_is_not_trusted_alone(
    client: httpx.AsyncClient, db: Database, owner: Actor
) -> None:
    """Its generations were read after it (or not at all): the next call checks again."""
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 200
    kept = principals.get(_key(owner))
    assert kept is not None and kept[1] is None
    await _revoke_in_the_database(db, owner)
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 401


async def test_generations_lost_with_redis_data_never_match_again(
    client: httpx.AsyncClient, db: Database, owner: Actor, redis: ArqRedis
) -> None:
    """Redis restarted without its data (or evicted the keys): a generation read before
    must not equal one read after, or an answer kept before a lost bump would hold."""
    await _warm(client, owner)
    kept = principals.get(_key(owner))
    assert kept is not None and kept[1] is not None and None not in kept[1]
    await _revoke_in_the_database(db, owner)  # a change whose bump is lost...
    await redis.flushdb()  # ...with everything else Redis held
    await mark_redis_index_async(redis)
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 401
    assert principals.get(_key(owner)) is None  # and nothing stays kept for it


async def test_logout_applies_on_the_next_request(client: httpx.AsyncClient, owner: Actor) -> None:
    await _warm(client, owner)
    assert (await client.post("/api/v1/auth/logout", headers=owner.headers)).status_code == 204
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 401


async def test_a_password_change_ends_the_other_sessions_at_once(
    client: httpx.AsyncClient,
) -> None:
    account = await sign_up(client)
    created = await client.post(
        "/api/v1/tenants",
        json={"name": "Kept", "slug": f"kept-{uuid.uuid4().hex[:8]}"},
        headers=bearer((await tokens_for(client, account["username"]))["access_token"]),
    )
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    mine = bearer((await tokens_for(client, account["username"], tenant=slug))["access_token"])
    other = bearer((await tokens_for(client, account["username"], tenant=slug))["access_token"])
    for _ in range(2):
        assert (await client.get(TENANT_ROUTE, headers=other)).status_code == 200
    changed = await client.patch(
        "/api/v1/users/me",
        json={"password": "N3w!Password", "current_password": PASSWORD},
        headers=mine,
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get(TENANT_ROUTE, headers=other)).status_code == 401
    assert (await client.get(TENANT_ROUTE, headers=mine)).status_code == 200


async def test_a_demotion_applies_on_the_next_request(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant, owner: Actor
) -> None:
    admin = await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)
    await _warm(client, admin)
    assert (await client.get("/api/v1/invitations", headers=admin.headers)).status_code == 200
    demoted = await client.patch(
        f"/api/v1/members/{admin.user.id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert demoted.status_code == 200
    assert (await client.get("/api/v1/invitations", headers=admin.headers)).status_code == 403


async def test_a_removed_member_is_out_on_the_next_request(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant, owner: Actor
) -> None:
    member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
    await _warm(client, member)
    removed = await client.delete(f"/api/v1/members/{member.user.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert (await client.get(TENANT_ROUTE, headers=member.headers)).status_code == 403


async def test_an_operators_suspension_and_plan_change_apply_at_once(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant, owner: Actor
) -> None:
    operator = await make_actor(db, settings, tenant=None, role=None, is_superuser=True)
    await _warm(client, owner)
    upgraded = await client.patch(
        f"/api/v1/admin/tenants/{tenant.id}", json={"plan": "enterprise"}, headers=operator.headers
    )
    assert upgraded.status_code == 200
    response = await client.get(TENANT_ROUTE, headers=owner.headers)
    assert response.status_code == 200
    assert int(response.headers["X-RateLimit-Limit"]) == settings.rate_limit_enterprise
    await _warm(client, owner)
    suspended = await client.patch(
        f"/api/v1/admin/tenants/{tenant.id}", json={"status": "suspended"}, headers=operator.headers
    )
    assert suspended.status_code == 200
    assert (await client.get(TENANT_ROUTE, headers=owner.headers)).status_code == 403
