"""API keys over HTTP: created by admins and shown once, listed without secrets, revoked."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.auth.api_key import is_well_formed
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import ApiKey, AuditEvent, Role, Tenant
from tests.fixtures.factories import Actor, make_actor


@pytest.fixture
async def admin(db: Database, settings: Settings, tenant: Tenant) -> Actor:
    return await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)


async def _create(client: httpx.AsyncClient, actor: Actor, **body: object) -> httpx.Response:
    payload = {"name": "ci", "scopes": ["read"], **body}
    return await client.post("/api/v1/api-keys", json=payload, headers=actor.headers)


class TestCreateKey:
    async def test_shown_once_and_stored_as_hmac(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        response = await _create(
            client, admin, name="deploy bot", scopes=["write", "read", "write"]
        )
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        key = body["key"]
        assert is_well_formed(key)
        assert body["prefix"] == key[:12]
        assert body["scopes"] == ["read", "write"]
        assert body["created_by"] == str(admin.user.id)
        assert body["expires_at"] is None
        async with db.session_scope(tenant.id) as session:
            row = (await session.execute(sa.select(ApiKey))).scalar_one()
            stored = " ".join(str(v) for v in row.model_dump().values())
            actions = (await session.execute(sa.select(AuditEvent.action))).scalars().all()
        assert key not in stored
        assert key[12:] not in stored
        assert list(actions) == ["api_key.created"]
        listed = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()["items"]
        assert "key" not in listed[0]
        assert key not in str(listed)
        # The key works as a credential for its tenant.
        current = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})
        assert current.status_code == 200
        assert current.json()["id"] == str(tenant.id)

    async def test_expiry(self, client: httpx.AsyncClient, admin: Actor) -> None:
        response = await _create(client, admin, expires_in_days=30)
        assert response.status_code == 201
        assert response.json()["expires_at"] is not None

    @pytest.mark.parametrize(
        "body",
        [
            {"scopes": []},
            {"scopes": ["admin"]},
            {"name": ""},
            {"expires_in_days": 0},
            {"tenant_id": str(uuid.uuid4())},
            {"key_hash": "x"},
            {"role": "owner"},
        ],
    )
    async def test_bad_body_is_422(
        self, client: httpx.AsyncClient, admin: Actor, body: dict[str, object]
    ) -> None:
        assert (await _create(client, admin, **body)).status_code == 422

    async def test_member_cannot_create(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        assert (await _create(client, member)).status_code == 403


class TestRevokeKey:
    async def test_revoked_key_is_401_next_request(
        self, client: httpx.AsyncClient, admin: Actor
    ) -> None:
        created = (await _create(client, admin)).json()
        headers = {"X-API-Key": created["key"]}
        assert (await client.get("/api/v1/tenant", headers=headers)).status_code == 200
        response = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin.headers)
        assert response.status_code == 204
        assert (await client.get("/api/v1/tenant", headers=headers)).status_code == 401
        listed = (await client.get("/api/v1/api-keys", headers=admin.headers)).json()["items"]
        assert listed[0]["revoked_at"] is not None
        again = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin.headers)
        assert again.status_code == 204

    async def test_unknown_is_404(self, client: httpx.AsyncClient, admin: Actor) -> None:
        assert (
            await client.delete(f"/api/v1/api-keys/{uuid.uuid4()}", headers=admin.headers)
        ).status_code == 404

    async def test_newest_first_paginated(self, client: httpx.AsyncClient, admin: Actor) -> None:
        ids = [(await _create(client, admin, name=f"k{i}")).json()["id"] for i in range(3)]
        first = (
            await client.get("/api/v1/api-keys", params={"limit": 2}, headers=admin.headers)
        ).json()
        rest = (
            await client.get(
                "/api/v1/api-keys",
                params={"limit": 2, "cursor": first["next_cursor"]},
                headers=admin.headers,
            )
        ).json()
        assert [k["id"] for k in first["items"] + rest["items"]] == ids[::-1]
        assert rest["next_cursor"] is None
