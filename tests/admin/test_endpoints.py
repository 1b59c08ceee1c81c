"""Operators over HTTP: every tenant, filtered and paginated; plan and status changes that
apply on the tenant's next request."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Plan, Role, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenancy import make_api_key


@pytest.fixture
async def operator(db: Database, settings: Settings) -> Actor:
    return await make_actor(db, settings, tenant=None, role=None, is_superuser=True)


class TestListTenants:
    async def test_filters_and_pages(
        self, client: httpx.AsyncClient, db: Database, operator: Actor
    ) -> None:
        pro = await make_tenant(
            db, name="Zeta Widgets", slug=f"zeta-{uuid.uuid4().hex[:6]}", plan=Plan.PRO
        )
        await make_tenant(db, name="Other", plan=Plan.FREE)
        by_plan = await client.get(
            "/api/v1/admin/tenants", params={"plan": "pro"}, headers=operator.headers
        )
        assert by_plan.status_code == 200
        assert [t["id"] for t in by_plan.json()["items"]] == [str(pro.id)]
        by_q = await client.get(
            "/api/v1/admin/tenants", params={"q": "ZETA"}, headers=operator.headers
        )
        assert [t["id"] for t in by_q.json()["items"]] == [str(pro.id)]
        wildcard = await client.get(
            "/api/v1/admin/tenants", params={"q": "%"}, headers=operator.headers
        )
        assert wildcard.json()["items"] == []
        page = await client.get(
            "/api/v1/admin/tenants", params={"limit": 1}, headers=operator.headers
        )
        assert len(page.json()["items"]) == 1
        assert page.json()["next_cursor"]

    async def test_deleted_only_on_request(
        self, client: httpx.AsyncClient, db: Database, operator: Actor
    ) -> None:
        gone = await make_tenant(db)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == gone.id).values(deleted_at=sa.func.now())  # type: ignore[arg-type]
            )
        default = (await client.get("/api/v1/admin/tenants", headers=operator.headers)).json()
        assert str(gone.id) not in {t["id"] for t in default["items"]}
        everything = (
            await client.get(
                "/api/v1/admin/tenants", params={"include_deleted": True}, headers=operator.headers
            )
        ).json()
        [row] = [t for t in everything["items"] if t["id"] == str(gone.id)]
        assert row["deleted_at"] is not None

    async def test_owner_of_a_tenant_is_not_an_operator(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        owner = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        assert (await client.get("/api/v1/admin/tenants", headers=owner.headers)).status_code == 403


class TestUpdateTenant:
    async def test_suspension_applies_on_next_request_and_is_audited(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, operator: Actor
    ) -> None:
        tenant = await make_tenant(db)
        member = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        _, key = await make_api_key(db, settings, tenant)
        assert (await client.get("/api/v1/tenant", headers=member.headers)).status_code == 200
        response = await client.patch(
            f"/api/v1/admin/tenants/{tenant.id}",
            json={"status": "suspended"},
            headers=operator.headers,
        )
        assert response.status_code == 200
        assert response.json()["status"] == "suspended"
        for path in (
            "/api/v1/tenant",
            "/api/v1/members",
            "/api/v1/api-keys",
            "/api/v1/audit-events",
        ):
            assert (await client.get(path, headers=member.headers)).status_code == 403, path
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).status_code == 403
        restored = await client.patch(
            f"/api/v1/admin/tenants/{tenant.id}",
            json={"status": "active"},
            headers=operator.headers,
        )
        assert restored.status_code == 200
        assert (await client.get("/api/v1/tenant", headers=member.headers)).status_code == 200
        async with db.session_scope(tenant.id) as session:
            events = (await session.execute(sa.select(AuditEvent))).scalars().all()
        assert [e.action for e in events] == ["tenant.operator_updated"] * 2
        assert {e.actor_user_id for e in events} == {operator.user.id}

    async def test_plan_change_is_read_on_next_request(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, operator: Actor
    ) -> None:
        tenant = await make_tenant(db)
        member = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.patch(
            f"/api/v1/admin/tenants/{tenant.id}",
            json={"plan": "enterprise"},
            headers=operator.headers,
        )
        assert response.status_code == 200
        assert (await client.get("/api/v1/tenant", headers=member.headers)).json()[
            "plan"
        ] == "enterprise"

    @pytest.mark.parametrize(
        "body", [{}, {"plan": "platinum"}, {"status": "deleted"}, {"plan": "pro", "name": "x"}]
    )
    async def test_bad_body_is_422(
        self, client: httpx.AsyncClient, db: Database, operator: Actor, body: dict[str, str]
    ) -> None:
        tenant = await make_tenant(db)
        response = await client.patch(
            f"/api/v1/admin/tenants/{tenant.id}", json=body, headers=operator.headers
        )
        assert response.status_code == 422

    async def test_unknown_tenant_is_404(self, client: httpx.AsyncClient, operator: Actor) -> None:
        response = await client.patch(
            f"/api/v1/admin/tenants/{uuid.uuid4()}", json={"plan": "pro"}, headers=operator.headers
        )
        assert response.status_code == 404

    async def test_tenant_owner_cannot_change_own_plan(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        response = await client.patch(
            f"/api/v1/admin/tenants/{tenant.id}", json={"plan": "enterprise"}, headers=owner.headers
        )
        assert response.status_code == 403
