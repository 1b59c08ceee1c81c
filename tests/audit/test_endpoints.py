"""The audit trail: every action of this domain, listed newest first for admins."""

from __future__ import annotations

import httpx
import pytest

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role, Tenant
from tests.fixtures.factories import Actor, make_actor
from tests.fixtures.tenancy import make_invitation


class TestAuditTrail:
    async def test_records_who_what_where_newest_first(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        owner: Actor,
    ) -> None:
        headers = {**owner.headers, "User-Agent": "audit-test/1.0"}
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        invitee = await make_actor(db, settings, tenant=None, role=None)
        _, token = await make_invitation(db, settings, tenant, email=invitee.user.email)
        steps = [
            client.patch("/api/v1/tenant", json={"name": "Renamed"}, headers=headers),
            client.post("/api/v1/invitations", json={"email": "x@example.com"}, headers=headers),
            client.post(
                "/api/v1/api-keys", json={"name": "k", "scopes": ["read"]}, headers=headers
            ),
            client.patch(
                f"/api/v1/members/{member.user.id}", json={"role": "viewer"}, headers=headers
            ),
            client.delete(f"/api/v1/members/{member.user.id}", headers=headers),
            client.post(
                "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
            ),
        ]
        for step in steps:
            assert (await step).status_code in (200, 201, 204)
        key_id = (await client.get("/api/v1/api-keys", headers=headers)).json()["items"][0]["id"]
        invitation_id = (
            await client.get("/api/v1/invitations", params={"status": "pending"}, headers=headers)
        ).json()["items"][0]["id"]
        assert (
            await client.delete(f"/api/v1/api-keys/{key_id}", headers=headers)
        ).status_code == 204
        assert (
            await client.delete(f"/api/v1/invitations/{invitation_id}", headers=headers)
        ).status_code == 204

        response = await client.get("/api/v1/audit-events", headers=headers)
        assert response.status_code == 200
        items = response.json()["items"]
        assert [e["action"] for e in items] == [
            "invitation.revoked",
            "api_key.revoked",
            "invitation.accepted",
            "member.removed",
            "member.role_changed",
            "api_key.created",
            "invitation.created",
            "tenant.updated",
        ]
        renamed = items[-1]
        assert renamed["actor_user_id"] == str(owner.user.id)
        assert renamed["target_type"] == "tenant"
        assert renamed["target_id"] == str(tenant.id)
        assert renamed["user_agent"] == "audit-test/1.0"
        assert renamed["ip"]
        assert items[2]["actor_user_id"] == str(invitee.user.id)

    async def test_filters_and_cursor(self, client: httpx.AsyncClient, owner: Actor) -> None:
        for i in range(3):
            await client.post(
                "/api/v1/api-keys",
                json={"name": f"k{i}", "scopes": ["read"]},
                headers=owner.headers,
            )
        await client.patch("/api/v1/tenant", json={"name": "Renamed"}, headers=owner.headers)
        only = await client.get(
            "/api/v1/audit-events", params={"action": "api_key.created"}, headers=owner.headers
        )
        assert [e["action"] for e in only.json()["items"]] == ["api_key.created"] * 3
        prefix = await client.get(
            "/api/v1/audit-events", params={"action": "tenant."}, headers=owner.headers
        )
        assert [e["action"] for e in prefix.json()["items"]] == ["tenant.updated"]
        first = (
            await client.get("/api/v1/audit-events", params={"limit": 3}, headers=owner.headers)
        ).json()
        rest = (
            await client.get(
                "/api/v1/audit-events",
                params={"limit": 3, "cursor": first["next_cursor"]},
                headers=owner.headers,
            )
        ).json()
        ids = [e["id"] for e in first["items"] + rest["items"]]
        assert len(ids) == len(set(ids)) == 4
        assert rest["next_cursor"] is None

    @pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
    async def test_members_cannot_read_it(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        role: Role,
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant, role=role)
        assert (await client.get("/api/v1/audit-events", headers=actor.headers)).status_code == 403
