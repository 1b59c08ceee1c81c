"""The principal dependency: sessions, memberships and tenant state checked per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuthSession, Membership, Role, Tenant, TenantStatus
from tests.fixtures.app import probe_client
from tests.fixtures.factories import make_actor, make_tenant

probe = APIRouter(prefix="/probe", tags=["probe"])
Reader = Annotated[Principal, Depends(Authorize(Scope.READ))]
Writer = Annotated[Principal, Depends(Authorize(Scope.WRITE))]
Admin = Annotated[Principal, Depends(Authorize(min_role=Role.ADMIN))]
Anyone = Annotated[Principal, Depends(Authorize(tenant=False))]
Operator = Annotated[Principal, Depends(Authorize(tenant=False, superuser=True))]


@probe.get("/read")
async def read(principal: Reader) -> dict[str, str | None]:
    """Tenant read."""
    return {"tenant": str(principal.tenant_id), "role": principal.role}


@probe.post("/write")
async def write(principal: Writer) -> dict[str, str]:
    """Tenant write."""
    return {"ok": "yes"}


@probe.get("/admin")
async def admin(principal: Admin) -> dict[str, str]:
    """Admins only."""
    return {"ok": "yes"}


@probe.get("/me")
async def me(principal: Anyone) -> dict[str, str]:
    """Any signed-in user."""
    return {"user": str(principal.user_id)}


@probe.get("/operator")
async def operator(principal: Operator) -> dict[str, str]:
    """Platform operators."""
    return {"ok": "yes"}


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with probe_client(app, probe) as client:
        yield client


class TestCredentials:
    async def test_missing_is_401_with_challenge(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/probe/read")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        "header",
        ["Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a.b.c", "Bearer tnt_nope"],
    )
    async def test_garbage_is_401(self, api: httpx.AsyncClient, header: str) -> None:
        response = await api.get("/probe/read", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_valid_token_passes(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        response = await api.get("/probe/read", headers=actor.headers)
        assert response.status_code == 200
        assert response.json() == {"tenant": str(tenant.id), "role": "member"}

    async def test_revoked_session_is_401_at_once(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(AuthSession)
                .where(AuthSession.id == actor.session_id)  # type: ignore[arg-type]
                .values(revoked_at=datetime.now(UTC))
            )
        assert (await api.get("/probe/read", headers=actor.headers)).status_code == 401


class TestRoles:
    @pytest.mark.parametrize(
        ("role", "read", "write", "admin"),
        [
            (Role.OWNER, 200, 200, 200),
            (Role.ADMIN, 200, 200, 200),
            (Role.MEMBER, 200, 200, 403),
            (Role.VIEWER, 200, 403, 403),
        ],
    )
    async def test_matrix(
        self,
        api: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        role: Role,
        read: int,
        write: int,
        admin: int,
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant, role=role)
        assert (await api.get("/probe/read", headers=actor.headers)).status_code == read
        assert (await api.post("/probe/write", headers=actor.headers)).status_code == write
        assert (await api.get("/probe/admin", headers=actor.headers)).status_code == admin

    async def test_role_is_read_now_not_from_token(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)
        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(Membership)
                .where(Membership.user_id == actor.user.id)  # type: ignore[arg-type]
                .values(role=Role.VIEWER)
            )
        assert (await api.get("/probe/admin", headers=actor.headers)).status_code == 403

    async def test_removed_member_loses_access_next_request(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        assert (await api.get("/probe/read", headers=actor.headers)).status_code == 200
        async with db.session_scope(tenant.id) as session:
            await session.execute(sa.delete(Membership).where(Membership.user_id == actor.user.id))  # type: ignore[arg-type]
        assert (await api.get("/probe/read", headers=actor.headers)).status_code == 403

    async def test_token_for_a_tenant_never_joined_is_403(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        other = await make_tenant(db)
        member = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        # Forge nothing: a real session, but a token naming a tenant the user is not in.
        intruder = await make_actor(db, settings, tenant=other, role=None, user=member.user)
        assert (await api.get("/probe/read", headers=intruder.headers)).status_code == 403


class TestTenantState:
    async def test_suspended_tenant_is_403(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        actor = await make_actor(db, settings, tenant=tenant)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant)
                .where(Tenant.id == tenant.id)
                .values(status=TenantStatus.SUSPENDED)  # type: ignore[arg-type]
            )
        response = await api.get("/probe/read", headers=actor.headers)
        assert response.status_code == 403
        assert "suspended" in response.json()["detail"]

    async def test_tenantless_token_on_tenant_route_is_403(
        self, api: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        actor = await make_actor(db, settings, tenant=None, role=None)
        assert (await api.get("/probe/read", headers=actor.headers)).status_code == 403
        assert (await api.get("/probe/me", headers=actor.headers)).status_code == 200


class TestOperators:
    async def test_only_superusers(
        self, api: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        owner = await make_actor(db, settings, tenant=tenant)
        operator = await make_actor(db, settings, tenant=None, role=None, is_superuser=True)
        assert (await api.get("/probe/operator", headers=owner.headers)).status_code == 403
        assert (await api.get("/probe/operator", headers=operator.headers)).status_code == 200
