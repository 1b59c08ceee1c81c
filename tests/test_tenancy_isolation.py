"""Tenant isolation from the attacker's side: tenant A's owner (and A's keys) aim at
tenant B's members, invitations, keys and audit events by id. Every answer is what a
nonexistent id gets (404), and B's rows are exactly as they were."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import ApiKey, AuditEvent, Invitation, Membership, Role, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenancy import make_api_key, make_invitation


@dataclass
class Victim:
    tenant: Tenant
    owner: Actor
    member: Actor
    invitation_id: uuid.UUID
    key_id: uuid.UUID
    key: str


@pytest.fixture
async def attacker(db: Database, settings: Settings) -> Actor:
    return await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)


@pytest.fixture
async def victim(db: Database, settings: Settings) -> Victim:
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
    invitation, _ = await make_invitation(db, settings, tenant)
    key, plaintext = await make_api_key(db, settings, tenant, scopes=("read", "write"))
    async with db.session_scope(tenant.id) as session:
        session.add(AuditEvent(tenant_id=tenant.id, action="victim.secret", data={"pin": "1234"}))
    return Victim(tenant, owner, member, invitation.id, key.id, plaintext)


async def snapshot(db: Database, tenant: Tenant) -> dict[str, Any]:
    """Every row B owns in the tables these routes touch, plus the tenant row itself."""
    async with db.session_scope(tenant.id) as session:
        state: dict[str, Any] = {}
        for model in (Membership, Invitation, ApiKey, AuditEvent):
            rows = (await session.execute(sa.select(model))).scalars().all()
            state[model.__name__] = sorted(
                str(sorted(row.model_dump(exclude={"last_used_at"}, warnings=False).items()))
                for row in rows
            )
        row = (await session.execute(sa.select(Tenant).where(Tenant.id == tenant.id))).scalar_one()  # type: ignore[arg-type]
        state["Tenant"] = row.model_dump(warnings=False)
    return state


class TestCrossTenantIds:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("PATCH", "/api/v1/members/{member}", {"role": "viewer"}),
            ("PATCH", "/api/v1/members/{owner}", {"role": "viewer"}),
            ("DELETE", "/api/v1/members/{member}", None),
            ("DELETE", "/api/v1/members/{owner}", None),
            ("DELETE", "/api/v1/invitations/{invitation}", None),
            ("DELETE", "/api/v1/api-keys/{key}", None),
        ],
    )
    async def test_b_objects_are_404_and_b_is_unchanged(
        self,
        client: httpx.AsyncClient,
        db: Database,
        attacker: Actor,
        victim: Victim,
        method: str,
        path: str,
        body: dict[str, str] | None,
    ) -> None:
        before = await snapshot(db, victim.tenant)
        url = path.format(
            member=victim.member.user.id,
            owner=victim.owner.user.id,
            invitation=victim.invitation_id,
            key=victim.key_id,
        )
        response = await client.request(method, url, json=body, headers=attacker.headers)
        assert response.status_code == 404
        # Indistinguishable from an id that exists nowhere.
        fake = await client.request(
            method, url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}", json=body, headers=attacker.headers
        )
        assert fake.status_code == 404
        assert response.json()["detail"] == fake.json()["detail"]
        assert await snapshot(db, victim.tenant) == before

    async def test_lists_show_only_a(
        self, client: httpx.AsyncClient, db: Database, attacker: Actor, victim: Victim
    ) -> None:
        for path in (
            "/api/v1/members",
            "/api/v1/invitations",
            "/api/v1/api-keys",
            "/api/v1/audit-events",
        ):
            body = (await client.get(path, headers=attacker.headers)).json()
            text = str(body)
            assert str(victim.member.user.id) not in text, path
            assert str(victim.invitation_id) not in text, path
            assert str(victim.key_id) not in text, path
            assert "victim.secret" not in text, path

    async def test_b_audit_events_by_filter_are_empty(
        self, client: httpx.AsyncClient, attacker: Actor, victim: Victim
    ) -> None:
        response = await client.get(
            "/api/v1/audit-events",
            params={"action": "victim.secret"},
            headers=attacker.headers,
        )
        assert response.json()["items"] == []

    async def test_a_key_cannot_reach_b(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        attacker: Actor,
        victim: Victim,
    ) -> None:
        assert attacker.tenant is not None
        _, key = await make_api_key(db, settings, attacker.tenant, scopes=("read", "write"))
        response = await client.get("/api/v1/members", headers={"X-API-Key": key})
        assert str(victim.member.user.id) not in response.text
        assert [m["user_id"] for m in response.json()["items"]] == [str(attacker.user.id)]
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).json()["id"] == str(
            attacker.tenant.id
        )


class TestMassAssignment:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/v1/tenants", {"name": "x", "slug": "mass-assign", "tenant_id": "{b}"}),
            ("PATCH", "/api/v1/tenant", {"name": "x", "tenant_id": "{b}"}),
            ("PATCH", "/api/v1/tenant", {"name": "x", "is_superuser": True}),
            ("PATCH", "/api/v1/tenant", {"plan": "enterprise"}),
            ("PATCH", "/api/v1/members/{me}", {"role": "owner", "tenant_id": "{b}"}),
            ("POST", "/api/v1/invitations", {"email": "x@example.com", "tenant_id": "{b}"}),
            (
                "POST",
                "/api/v1/invitations/accept",
                {"token": "x", "tenant_id": "{b}", "role": "owner"},
            ),
            ("POST", "/api/v1/api-keys", {"name": "x", "scopes": ["read"], "tenant_id": "{b}"}),
            ("POST", "/api/v1/api-keys", {"name": "x", "scopes": ["read"], "role": "owner"}),
            ("POST", "/api/v1/api-keys", {"name": "x", "scopes": ["read"], "is_superuser": True}),
        ],
    )
    async def test_extra_fields_are_refused_and_change_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        attacker: Actor,
        victim: Victim,
        method: str,
        path: str,
        body: dict[str, Any],
    ) -> None:
        assert attacker.tenant is not None
        before_a = await snapshot(db, attacker.tenant)
        before_b = await snapshot(db, victim.tenant)
        filled = {
            k: (v.format(b=victim.tenant.id) if isinstance(v, str) else v) for k, v in body.items()
        }
        url = path.format(me=attacker.user.id)
        response = await client.request(method, url, json=filled, headers=attacker.headers)
        assert response.status_code == 422
        assert await snapshot(db, attacker.tenant) == before_a
        assert await snapshot(db, victim.tenant) == before_b


class TestSuspension:
    async def test_every_tenant_scoped_route_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, victim: Victim
    ) -> None:
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant).where(Tenant.id == victim.tenant.id).values(status="suspended")  # type: ignore[arg-type]
            )
        calls = [
            ("GET", "/api/v1/tenant", None),
            ("PATCH", "/api/v1/tenant", {"name": "x"}),
            ("DELETE", "/api/v1/tenant", None),
            ("GET", "/api/v1/members", None),
            ("PATCH", f"/api/v1/members/{victim.member.user.id}", {"role": "viewer"}),
            ("DELETE", f"/api/v1/members/{victim.member.user.id}", None),
            ("POST", "/api/v1/invitations", {"email": "x@example.com"}),
            ("GET", "/api/v1/invitations", None),
            ("DELETE", f"/api/v1/invitations/{victim.invitation_id}", None),
            ("POST", "/api/v1/api-keys", {"name": "x", "scopes": ["read"]}),
            ("GET", "/api/v1/api-keys", None),
            ("DELETE", f"/api/v1/api-keys/{victim.key_id}", None),
            ("GET", "/api/v1/audit-events", None),
        ]
        for method, path, body in calls:
            for headers in (victim.owner.headers, {"X-API-Key": victim.key}):
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (method, path, response.text)
