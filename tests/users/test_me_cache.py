"""`GET /users/me` kept per process (`users.me_cache`): answered again while nothing it
shows has changed, and never one request past a change made through the API.

Each test warms the cache (a body kept unconfirmed, then confirmed under the
generations read before a second read), proves that the next call reuses it (a change
made past the API is not seen), then changes something through the API and expects
the very next call to show it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry import cache
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role, Tenant, User
from tenantry.users.me_cache import bodies
from tests.fixtures.factories import Actor, make_actor
from tests.fixtures.services import mark_redis_index_async

ME = "/api/v1/users/me"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    bodies.clear()
    yield
    bodies.clear()


async def _me(client: httpx.AsyncClient, actor: Actor) -> dict[str, Any]:
    response = await client.get(ME, headers=actor.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _warm(client: httpx.AsyncClient, db: Database, actor: Actor) -> str:
    """Kept and confirmed, and proven reused: a name set past the API is not seen. The
    name set, which the database holds from now on."""
    first = await _me(client, actor)
    kept = bodies.get(actor.user.id)
    assert kept is not None
    if kept.generations is None:  # a first read: kept unconfirmed, confirmed by the next
        await _me(client, actor)
        kept = bodies.get(actor.user.id)
        assert kept is not None and kept.generations is not None
    hidden = f"Past The API {uuid.uuid4().hex[:6]}"
    await _rename_in_the_database(db, actor, hidden)
    assert (await _me(client, actor))["full_name"] == first["full_name"]
    return hidden


async def _rename_in_the_database(db: Database, actor: Actor, name: str) -> None:
    """As a script would: nothing bumps a generation."""
    async with db.session_scope() as session:
        await session.execute(
            sa.update(User).where(User.id == actor.user.id).values(full_name=name)  # type: ignore[arg-type]
        )


async def test_a_kept_body_is_answered_until_it_expires(
    client: httpx.AsyncClient, db: Database, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = await _warm(client, db, owner)
    monkeypatch.setattr(bodies, "ttl_seconds", 0.0)
    assert (await _me(client, owner))["full_name"] == hidden


async def test_the_first_body_is_not_trusted_alone(
    client: httpx.AsyncClient, db: Database, owner: Actor
) -> None:
    await _me(client, owner)
    kept = bodies.get(owner.user.id)
    assert kept is not None and kept.generations is None
    await _rename_in_the_database(db, owner, "Seen At Once")
    assert (await _me(client, owner))["full_name"] == "Seen At Once"


async def test_the_users_own_change_shows_on_the_next_call(
    client: httpx.AsyncClient, db: Database, owner: Actor
) -> None:
    await _warm(client, db, owner)
    changed = await client.patch(ME, json={"full_name": "Changed Here"}, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert (await _me(client, owner))["full_name"] == "Changed Here"


async def test_a_tenant_rename_and_deletion_show_on_the_next_call(
    client: httpx.AsyncClient, db: Database, owner: Actor, tenant: Tenant
) -> None:
    await _warm(client, db, owner)
    renamed = await client.patch("/api/v1/tenant", json={"name": "Renamed"}, headers=owner.headers)
    assert renamed.status_code == 200, renamed.text
    mine = (await _me(client, owner))["memberships"]
    assert [(m["tenant_id"], m["tenant_name"]) for m in mine] == [(str(tenant.id), "Renamed")]
    await _warm(client, db, owner)
    deleted = await client.delete("/api/v1/tenant", headers=owner.headers)
    assert deleted.status_code == 202, deleted.text
    assert (await _me(client, owner))["memberships"] == []


async def test_a_role_change_and_a_removal_show_on_the_next_call(
    client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant, owner: Actor
) -> None:
    member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
    await _warm(client, db, member)
    promoted = await client.patch(
        f"/api/v1/members/{member.user.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert promoted.status_code == 200, promoted.text
    assert [m["role"] for m in (await _me(client, member))["memberships"]] == ["admin"]
    await _warm(client, db, member)
    removed = await client.delete(f"/api/v1/members/{member.user.id}", headers=owner.headers)
    assert removed.status_code == 204
    assert (await _me(client, member))["memberships"] == []


async def test_a_new_tenant_shows_on_the_next_call(
    client: httpx.AsyncClient, db: Database, owner: Actor
) -> None:
    await _warm(client, db, owner)
    slug = f"second-{uuid.uuid4().hex[:8]}"
    created = await client.post(
        "/api/v1/tenants", json={"name": "Second", "slug": slug}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    assert slug in [m["tenant_slug"] for m in (await _me(client, owner))["memberships"]]


async def test_generations_lost_with_redis_data_never_match_again(
    client: httpx.AsyncClient, db: Database, owner: Actor, redis: ArqRedis
) -> None:
    hidden = await _warm(client, db, owner)
    await redis.flushdb()  # a bump lost with everything else Redis held
    await mark_redis_index_async(redis)
    assert (await _me(client, owner))["full_name"] == hidden


async def test_a_one_tenant_user_is_answered_on_the_admission_calls_read(
    client: httpx.AsyncClient, db: Database, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admission call read the user's and the token's tenant's generations, all a
    one-tenant body depends on: no Redis call of its own, and a change still shows."""
    calls: list[list[str]] = []
    read_generations = cache.read_generations

    async def counted(redis: ArqRedis, keys: list[str]) -> tuple[bytes, ...] | None:
        calls.append(list(keys))
        return await read_generations(redis, keys)

    monkeypatch.setattr(cache, "read_generations", counted)
    for _ in range(4):
        await _me(client, owner)
    kept = bodies.get(owner.user.id)
    assert kept is not None and kept.generations is not None
    assert calls == []
    changed = await client.patch(ME, json={"full_name": "Still Seen"}, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert (await _me(client, owner))["full_name"] == "Still Seen"
