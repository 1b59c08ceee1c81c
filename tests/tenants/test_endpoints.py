"""Tenants over HTTP: create, list mine, the current one, rename, delete."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.jobs import Job
from tenantry.models import AuditEvent, Membership, Plan, Role, Tenant, TenantStatus
from tenantry.tenants.service import purge_job_id
from tests.fixtures.factories import make_actor, make_tenant
from tests.fixtures.tenancy import make_api_key


async def _tenant_row(db: Database, tenant_id: object) -> Tenant | None:
    async with db.session_scope() as session:
        return (
            await session.execute(sa.select(Tenant).where(Tenant.id == tenant_id))  # type: ignore[arg-type]
        ).scalar_one_or_none()


class TestCreateTenant:
    async def test_caller_becomes_owner(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/tenants",
            json={"name": "Acme Corp", "slug": "acme-corp"},
            headers=actor.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["slug"] == "acme-corp"
        assert body["name"] == "Acme Corp"
        assert body["role"] == "owner"
        assert body["plan"] == "free"
        assert body["status"] == "active"
        async with db.session_scope(body["id"]) as session:
            memberships = (await session.execute(sa.select(Membership))).scalars().all()
            events = (await session.execute(sa.select(AuditEvent))).scalars().all()
        assert [(m.user_id, m.role) for m in memberships] == [(actor.user.id, "owner")]
        assert [e.action for e in events] == ["tenant.created"]
        assert events[0].actor_user_id == actor.user.id

    async def test_duplicate_slug_is_409(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        await make_tenant(db, slug="taken-slug")
        actor = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/tenants", json={"name": "X", "slug": "taken-slug"}, headers=actor.headers
        )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        "slug",
        ["ab", "Acme", "-acme", "acme-", "ac_me", "ac me", "a" * 64, "api", "admin", "ácme", ""],
    )
    async def test_bad_or_reserved_slug_is_422(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, slug: str
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/tenants", json={"name": "X", "slug": slug}, headers=actor.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.slug"

    @pytest.mark.parametrize("name", ["", "   ", "x" * 201])
    async def test_bad_name_is_422(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, name: str
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/tenants", json={"name": name, "slug": "fine-slug"}, headers=actor.headers
        )
        assert response.status_code == 422

    @pytest.mark.parametrize(
        "extra",
        [
            {"plan": "enterprise"},
            {"status": "active"},
            {"id": "00000000-0000-0000-0000-000000000001"},
        ],
    )
    async def test_mass_assignment_is_refused(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, extra: dict[str, str]
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/tenants",
            json={"name": "X", "slug": "sneaky-slug", **extra},
            headers=actor.headers,
        )
        assert response.status_code == 422
        async with db.session_scope() as session:
            assert (
                await session.execute(sa.select(Tenant).where(Tenant.slug == "sneaky-slug"))  # type: ignore[arg-type]
            ).first() is None

    async def test_api_key_cannot_create_tenants(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        _, key = await make_api_key(db, settings, tenant, scopes=("read", "write"))
        response = await client.post(
            "/api/v1/tenants", json={"name": "X", "slug": "by-a-key"}, headers={"X-API-Key": key}
        )
        assert response.status_code == 403


class TestListTenants:
    async def test_lists_mine_with_roles_and_nothing_else(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        a, b, other = await make_tenant(db), await make_tenant(db), await make_tenant(db)
        actor = await make_actor(db, settings, tenant=a, role=Role.OWNER)
        await make_actor(db, settings, tenant=b, role=Role.VIEWER, user=actor.user)
        await make_actor(db, settings, tenant=other, role=Role.OWNER)
        response = await client.get("/api/v1/tenants", headers=actor.headers)
        assert response.status_code == 200
        body = response.json()
        assert {(t["id"], t["role"]) for t in body["items"]} == {
            (str(a.id), "owner"),
            (str(b.id), "viewer"),
        }
        assert body["next_cursor"] is None

    async def test_paginates(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        first = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=first, role=Role.OWNER)
        for _ in range(4):
            await make_actor(
                db, settings, tenant=await make_tenant(db), role=Role.MEMBER, user=actor.user
            )
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = (
                await client.get("/api/v1/tenants", params=params, headers=actor.headers)
            ).json()
            seen += [t["id"] for t in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5
        assert len(set(seen)) == 5

    async def test_bad_cursor_is_422(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        for cursor in ("garbage", "WyJ4IiwgInkiXQ"):
            response = await client.get(
                "/api/v1/tenants", params={"cursor": cursor}, headers=actor.headers
            )
            assert response.status_code == 422, cursor

    async def test_deleted_tenants_are_not_listed(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        keep, gone = await make_tenant(db), await make_tenant(db)
        actor = await make_actor(db, settings, tenant=keep, role=Role.OWNER)
        await make_actor(db, settings, tenant=gone, role=Role.OWNER, user=actor.user)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == gone.id).values(deleted_at=sa.func.now())  # type: ignore[arg-type]
            )
        body = (await client.get("/api/v1/tenants", headers=actor.headers)).json()
        assert [t["id"] for t in body["items"]] == [str(keep.id)]


class TestCurrentTenant:
    async def test_get_as_member(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db, plan=Plan.PRO)
        actor = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.get("/api/v1/tenant", headers=actor.headers)
        assert response.status_code == 200
        assert response.json()["id"] == str(tenant.id)
        assert response.json()["plan"] == "pro"

    async def test_get_with_api_key(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        _, key = await make_api_key(db, settings, tenant)
        response = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        assert response.json()["slug"] == tenant.slug

    async def test_tenantless_token_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        assert (await client.get("/api/v1/tenant", headers=actor.headers)).status_code == 403

    async def test_admin_renames(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)
        response = await client.patch(
            "/api/v1/tenant", json={"name": "  New Name "}, headers=actor.headers
        )
        assert response.status_code == 200
        assert response.json()["name"] == "New Name"
        row = await _tenant_row(db, tenant.id)
        assert row is not None and row.name == "New Name"

    @pytest.mark.parametrize(
        "body",
        [
            {"plan": "enterprise"},
            {"status": "active"},
            {"slug": "renamed"},
            {"tenant_id": "00000000-0000-0000-0000-000000000001"},
            {"name": "ok", "is_superuser": True},
        ],
    )
    async def test_plan_status_and_others_are_not_patchable(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, body: dict[str, object]
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        response = await client.patch("/api/v1/tenant", json=body, headers=actor.headers)
        assert response.status_code == 422
        row = await _tenant_row(db, tenant.id)
        assert row is not None
        assert (row.plan, row.status, row.slug, row.name) == (
            Plan.FREE,
            TenantStatus.ACTIVE,
            tenant.slug,
            tenant.name,
        )


class TestDeleteTenant:
    async def test_owner_deletes_202_and_purge_is_queued(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, redis: ArqRedis
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        response = await client.delete("/api/v1/tenant", headers=actor.headers)
        assert response.status_code == 202
        assert response.json()["id"] == str(tenant.id)
        row = await _tenant_row(db, tenant.id)
        assert row is not None and row.deleted_at is not None
        job = await redis.get(f"arq:job:{purge_job_id(tenant.id)}")
        assert job is not None
        assert Job.PURGE_TENANT.value.encode() in job
        assert str(tenant.id).encode() in job

    async def test_credentials_stop_working_at_once(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        _, key = await make_api_key(db, settings, tenant)
        assert (await client.delete("/api/v1/tenant", headers=owner.headers)).status_code == 202
        for headers in (owner.headers, member.headers, {"X-API-Key": key}):
            response = await client.get("/api/v1/tenant", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
    async def test_only_owner(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, role: Role
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant, role=role)
        assert (await client.delete("/api/v1/tenant", headers=actor.headers)).status_code == 403
        row = await _tenant_row(db, tenant.id)
        assert row is not None and row.deleted_at is None
