"""Members over HTTP: who sees them, who changes roles, and the last owner rule."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Membership, Role, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant


async def _roles(db: Database, tenant: Tenant) -> dict[uuid.UUID, str]:
    async with db.session_scope(tenant.id) as session:
        rows = (await session.execute(sa.select(Membership.user_id, Membership.role))).all()
    return {row.user_id: row.role for row in rows}


async def _actions(db: Database, tenant: Tenant) -> list[str]:
    async with db.session_scope(tenant.id) as session:
        return list((await session.execute(sa.select(AuditEvent.action))).scalars().all())


@pytest.fixture
async def team(db: Database, settings: Settings, tenant: Tenant) -> dict[Role, Actor]:
    return {role: await make_actor(db, settings, tenant=tenant, role=role) for role in Role}


class TestListMembers:
    async def test_lists_everyone_with_roles(
        self, client: httpx.AsyncClient, team: dict[Role, Actor]
    ) -> None:
        response = await client.get("/api/v1/members", headers=team[Role.VIEWER].headers)
        assert response.status_code == 200
        items = response.json()["items"]
        assert {(m["user_id"], m["role"]) for m in items} == {
            (str(actor.user.id), role.value) for role, actor in team.items()
        }
        assert {"email", "username", "full_name", "joined_at"} <= set(items[0])


class TestChangeRole:
    @pytest.mark.parametrize(
        ("actor_role", "target_role", "new_role", "expected"),
        [
            (Role.ADMIN, Role.VIEWER, Role.MEMBER, 200),
            (Role.ADMIN, Role.MEMBER, Role.VIEWER, 200),
            (Role.ADMIN, Role.MEMBER, Role.ADMIN, 403),
            (Role.ADMIN, Role.VIEWER, Role.OWNER, 403),
            (Role.ADMIN, Role.ADMIN, Role.MEMBER, 403),
            (Role.ADMIN, Role.OWNER, Role.VIEWER, 403),
            (Role.OWNER, Role.MEMBER, Role.ADMIN, 200),
            (Role.OWNER, Role.ADMIN, Role.OWNER, 200),
            (Role.OWNER, Role.ADMIN, Role.VIEWER, 200),
            (Role.MEMBER, Role.VIEWER, Role.MEMBER, 403),
        ],
    )
    async def test_rules(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        team: dict[Role, Actor],
        actor_role: Role,
        target_role: Role,
        new_role: Role,
        expected: int,
    ) -> None:
        target = await make_actor(db, settings, tenant=tenant, role=target_role)
        response = await client.patch(
            f"/api/v1/members/{target.user.id}",
            json={"role": new_role.value},
            headers=team[actor_role].headers,
        )
        assert response.status_code == expected, response.text
        roles = await _roles(db, tenant)
        assert roles[target.user.id] == (new_role if expected == 200 else target_role).value
        if expected == 200:
            assert response.json()["role"] == new_role.value
            assert "member.role_changed" in await _actions(db, tenant)

    async def test_demoting_the_last_owner_is_409(
        self, client: httpx.AsyncClient, db: Database, tenant: Tenant, team: dict[Role, Actor]
    ) -> None:
        owner = team[Role.OWNER]
        response = await client.patch(
            f"/api/v1/members/{owner.user.id}", json={"role": "admin"}, headers=owner.headers
        )
        assert response.status_code == 409
        assert (await _roles(db, tenant))[owner.user.id] == "owner"

    async def test_an_owner_may_step_down_when_another_remains(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        team: dict[Role, Actor],
    ) -> None:
        await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        owner = team[Role.OWNER]
        response = await client.patch(
            f"/api/v1/members/{owner.user.id}", json={"role": "member"}, headers=owner.headers
        )
        assert response.status_code == 200

    async def test_unknown_member_is_404(
        self, client: httpx.AsyncClient, team: dict[Role, Actor]
    ) -> None:
        response = await client.patch(
            f"/api/v1/members/{uuid.uuid4()}",
            json={"role": "viewer"},
            headers=team[Role.OWNER].headers,
        )
        assert response.status_code == 404

    @pytest.mark.parametrize(
        "body", [{"role": "superadmin"}, {}, {"role": "viewer", "tenant_id": str(uuid.uuid4())}]
    )
    async def test_bad_body_is_422(
        self, client: httpx.AsyncClient, team: dict[Role, Actor], body: dict[str, str]
    ) -> None:
        target = team[Role.MEMBER]
        response = await client.patch(
            f"/api/v1/members/{target.user.id}", json=body, headers=team[Role.OWNER].headers
        )
        assert response.status_code == 422

    async def test_demoted_admin_loses_admin_routes_next_request(
        self, client: httpx.AsyncClient, team: dict[Role, Actor]
    ) -> None:
        admin = team[Role.ADMIN]
        assert (await client.get("/api/v1/invitations", headers=admin.headers)).status_code == 200
        response = await client.patch(
            f"/api/v1/members/{admin.user.id}",
            json={"role": "viewer"},
            headers=team[Role.OWNER].headers,
        )
        assert response.status_code == 200
        assert (await client.get("/api/v1/invitations", headers=admin.headers)).status_code == 403


class TestRemoveMember:
    @pytest.mark.parametrize(
        ("actor_role", "target_role", "expected"),
        [
            (Role.ADMIN, Role.MEMBER, 204),
            (Role.ADMIN, Role.VIEWER, 204),
            (Role.ADMIN, Role.ADMIN, 403),
            (Role.ADMIN, Role.OWNER, 403),
            (Role.OWNER, Role.ADMIN, 204),
            (Role.OWNER, Role.OWNER, 204),
            (Role.MEMBER, Role.VIEWER, 403),
            (Role.VIEWER, Role.MEMBER, 403),
        ],
    )
    async def test_rules(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        team: dict[Role, Actor],
        actor_role: Role,
        target_role: Role,
        expected: int,
    ) -> None:
        target = await make_actor(db, settings, tenant=tenant, role=target_role)
        response = await client.delete(
            f"/api/v1/members/{target.user.id}", headers=team[actor_role].headers
        )
        assert response.status_code == expected, response.text
        assert (target.user.id in await _roles(db, tenant)) is (expected != 204)

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER, Role.ADMIN])
    async def test_anyone_may_leave(
        self,
        client: httpx.AsyncClient,
        db: Database,
        tenant: Tenant,
        team: dict[Role, Actor],
        role: Role,
    ) -> None:
        actor = team[role]
        response = await client.delete(f"/api/v1/members/{actor.user.id}", headers=actor.headers)
        assert response.status_code == 204
        assert actor.user.id not in await _roles(db, tenant)
        assert "member.left" in await _actions(db, tenant)
        # Gone on the very next request.
        assert (await client.get("/api/v1/members", headers=actor.headers)).status_code == 403

    async def test_last_owner_cannot_leave(
        self, client: httpx.AsyncClient, db: Database, tenant: Tenant, team: dict[Role, Actor]
    ) -> None:
        owner = team[Role.OWNER]
        response = await client.delete(f"/api/v1/members/{owner.user.id}", headers=owner.headers)
        assert response.status_code == 409
        assert owner.user.id in await _roles(db, tenant)

    async def test_unknown_member_is_404(
        self, client: httpx.AsyncClient, team: dict[Role, Actor]
    ) -> None:
        response = await client.delete(
            f"/api/v1/members/{uuid.uuid4()}", headers=team[Role.ADMIN].headers
        )
        assert response.status_code == 404


@pytest.mark.committed
class TestLastOwnerRace:
    async def test_two_owners_demoting_each_other_leave_one_owner(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        a = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        b = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        for _ in range(5):
            responses = await asyncio.gather(
                client.patch(
                    f"/api/v1/members/{b.user.id}", json={"role": "admin"}, headers=a.headers
                ),
                client.patch(
                    f"/api/v1/members/{a.user.id}", json={"role": "admin"}, headers=b.headers
                ),
            )
            codes = sorted(r.status_code for r in responses)
            owners = [u for u, role in (await _roles(db, tenant)).items() if role == "owner"]
            assert len(owners) == 1, codes
            # Reset: whoever is left owner promotes the other back.
            survivor, other = (a, b) if owners == [a.user.id] else (b, a)
            restored = await client.patch(
                f"/api/v1/members/{other.user.id}", json={"role": "owner"}, headers=survivor.headers
            )
            assert restored.status_code == 200
            assert codes in ([200, 403], [200, 409])
