"""Invitations over HTTP: invite (an outbox email with a token), list, revoke, accept."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import EmailOutbox, Invitation, Membership, Role, Tenant, TenantStatus
from tests.fixtures.factories import Actor, make_actor, make_tenant, make_user
from tests.fixtures.tenancy import make_api_key, make_invitation

TOKEN_IN_TEXT = re.compile(r"invitations/accept:\n(\S+)\n")


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db, name="Acme <Corp>")


@pytest.fixture
async def admin(db: Database, settings: Settings, tenant: Tenant) -> Actor:
    return await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)


async def _outbox(db: Database, to: str) -> list[EmailOutbox]:
    async with db.session_scope() as session:
        stmt = sa.select(EmailOutbox).where(sa.func.lower(EmailOutbox.to_email) == to.lower())
        return list((await session.execute(stmt)).scalars().all())


async def _invitations(db: Database, tenant: Tenant) -> list[Invitation]:
    async with db.session_scope(tenant.id) as session:
        return list((await session.execute(sa.select(Invitation))).scalars().all())


async def _member_role(db: Database, tenant: Tenant, user_id: uuid.UUID) -> str | None:
    async with db.session_scope(tenant.id) as session:
        stmt = sa.select(Membership.role).where(Membership.user_id == user_id)  # type: ignore[arg-type]
        return (await session.execute(stmt)).scalar_one_or_none()


async def _invite(
    client: httpx.AsyncClient, actor: Actor, email: str, role: str = "member"
) -> httpx.Response:
    return await client.post(
        "/api/v1/invitations", json={"email": email, "role": role}, headers=actor.headers
    )


class TestInvite:
    async def test_creates_pending_invitation_and_outbox_email(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        response = await _invite(client, admin, "new.person@example.com")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending"
        assert body["role"] == "member"
        assert body["invited_by"] == str(admin.user.id)
        assert "token" not in body and "token_hash" not in body
        [mail] = await _outbox(db, "new.person@example.com")
        assert mail.subject == "You are invited to join Acme <Corp>"
        assert mail.tenant_ref == tenant.id
        match = TOKEN_IN_TEXT.search(mail.text_body)
        assert match, mail.text_body
        token = match.group(1)
        assert f"{settings.public_url}/invitations/accept?token={token}" in mail.text_body
        [row] = await _invitations(db, tenant)
        assert token not in row.token_hash  # stored only as a hash
        assert row.expires_at - row.created_at == pytest.approx(
            timedelta(days=7), abs=timedelta(seconds=5)
        )

    async def test_existing_member_is_409(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        member = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await _invite(client, admin, member.user.email.upper())
        assert response.status_code == 409

    async def test_pending_invitation_is_409(
        self, client: httpx.AsyncClient, db: Database, tenant: Tenant, admin: Actor
    ) -> None:
        assert (await _invite(client, admin, "twice@example.com")).status_code == 201
        assert (await _invite(client, admin, "TWICE@example.com")).status_code == 409
        assert len(await _invitations(db, tenant)) == 1

    async def test_expired_invitation_is_replaced(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        await make_invitation(
            db, settings, tenant, email="late@example.com", expires_in=-timedelta(hours=1)
        )
        assert (await _invite(client, admin, "late@example.com")).status_code == 201
        states = sorted((i.revoked_at is None) for i in await _invitations(db, tenant))
        assert states == [False, True]

    @pytest.mark.parametrize("role", ["admin", "owner"])
    async def test_only_owners_invite_admins_and_owners(
        self, client: httpx.AsyncClient, owner: Actor, admin: Actor, role: str
    ) -> None:
        assert (await _invite(client, admin, f"{role}@example.com", role)).status_code == 403
        assert (await _invite(client, owner, f"{role}@example.com", role)).status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "role": "member"},
            {"email": "a@example.com", "role": "boss"},
            {"email": "a@example.com", "role": "member", "tenant_id": str(uuid.uuid4())},
            {"email": "a@example.com", "role": "member", "token": "mine"},
        ],
    )
    async def test_bad_body_is_422(
        self, client: httpx.AsyncClient, owner: Actor, body: dict[str, str]
    ) -> None:
        response = await client.post("/api/v1/invitations", json=body, headers=owner.headers)
        assert response.status_code == 422


class TestListAndRevoke:
    async def test_lists_newest_first_with_status_filter(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        await make_invitation(db, settings, tenant, revoked=True)
        await make_invitation(db, settings, tenant, expires_in=-timedelta(days=1))
        pending, _ = await make_invitation(db, settings, tenant)
        body = (await client.get("/api/v1/invitations", headers=admin.headers)).json()
        assert [i["status"] for i in body["items"]] == ["pending", "expired", "revoked"]
        only = await client.get(
            "/api/v1/invitations", params={"status": "pending"}, headers=admin.headers
        )
        assert [i["id"] for i in only.json()["items"]] == [str(pending.id)]

    async def test_revoked_token_no_longer_accepts(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        invitee = await make_actor(db, settings, tenant=None, role=None)
        invitation, token = await make_invitation(db, settings, tenant, email=invitee.user.email)
        response = await client.delete(
            f"/api/v1/invitations/{invitation.id}", headers=admin.headers
        )
        assert response.status_code == 204
        again = await client.delete(f"/api/v1/invitations/{invitation.id}", headers=admin.headers)
        assert again.status_code == 204
        accept = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert accept.status_code == 410

    async def test_accepted_invitation_cannot_be_revoked(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        invitation, _ = await make_invitation(db, settings, tenant, accepted=True)
        response = await client.delete(
            f"/api/v1/invitations/{invitation.id}", headers=admin.headers
        )
        assert response.status_code == 409

    async def test_admin_cannot_revoke_an_owner_invitation(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        admin: Actor,
    ) -> None:
        invitation, _ = await make_invitation(db, settings, tenant, role=Role.OWNER)
        response = await client.delete(
            f"/api/v1/invitations/{invitation.id}", headers=admin.headers
        )
        assert response.status_code == 403

    async def test_unknown_is_404(self, client: httpx.AsyncClient, admin: Actor) -> None:
        response = await client.delete(f"/api/v1/invitations/{uuid.uuid4()}", headers=admin.headers)
        assert response.status_code == 404


class TestAccept:
    async def test_full_flow_from_the_email(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        owner: Actor,
    ) -> None:
        # The invitee's own token is bound to their own tenant, not to the inviting one.
        home = await make_tenant(db)
        invitee = await make_actor(db, settings, tenant=home, role=Role.OWNER)
        assert (
            await _invite(client, owner, invitee.user.email.upper(), "admin")
        ).status_code == 201
        [mail] = await _outbox(db, invitee.user.email.upper())
        token = TOKEN_IN_TEXT.search(mail.text_body).group(1)  # type: ignore[union-attr]
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(tenant.id)
        assert response.json()["role"] == "admin"
        assert await _member_role(db, tenant, invitee.user.id) == "admin"
        mine = (await client.get("/api/v1/tenants", headers=invitee.headers)).json()["items"]
        assert {t["id"] for t in mine} == {str(home.id), str(tenant.id)}
        # Single use.
        again = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert again.status_code == 410

    async def test_tenantless_user_can_accept(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        invitee = await make_actor(db, settings, tenant=None, role=None)
        _, token = await make_invitation(db, settings, tenant, email=invitee.user.email)
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert response.status_code == 200
        assert await _member_role(db, tenant, invitee.user.id) == "member"

    async def test_someone_elses_invitation_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        await make_user(db, email="victim@example.com")
        _, token = await make_invitation(db, settings, tenant, email="victim@example.com")
        thief = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=thief.headers
        )
        assert response.status_code == 403
        assert await _member_role(db, tenant, thief.user.id) is None
        [invitation] = await _invitations(db, tenant)
        assert invitation.accepted_at is None

    @pytest.mark.parametrize(
        ("state", "expected"), [("expired", 410), ("revoked", 410), ("accepted", 410)]
    )
    async def test_dead_invitation(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        state: str,
        expected: int,
    ) -> None:
        invitee = await make_actor(db, settings, tenant=None, role=None)
        _, token = await make_invitation(
            db,
            settings,
            tenant,
            email=invitee.user.email,
            expires_in=-timedelta(seconds=1) if state == "expired" else timedelta(days=7),
            revoked=state == "revoked",
            accepted=state == "accepted",
        )
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert response.status_code == expected
        assert await _member_role(db, tenant, invitee.user.id) is None

    async def test_unknown_token_is_404(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        invitee = await make_actor(db, settings, tenant=None, role=None)
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": "nope"}, headers=invitee.headers
        )
        assert response.status_code == 404

    async def test_already_a_member_is_409(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        member = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        _, token = await make_invitation(
            db, settings, tenant, email=member.user.email, role=Role.ADMIN
        )
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=member.headers
        )
        assert response.status_code == 409
        assert await _member_role(db, tenant, member.user.id) == "viewer"

    async def test_suspended_tenant_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        invitee = await make_actor(db, settings, tenant=None, role=None)
        _, token = await make_invitation(db, settings, tenant, email=invitee.user.email)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant)
                .where(Tenant.id == tenant.id)
                .values(status=TenantStatus.SUSPENDED)  # type: ignore[arg-type]
            )
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert response.status_code == 403

    async def test_api_key_cannot_accept(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        _, token = await make_invitation(db, settings, tenant)
        _, key = await make_api_key(db, settings, tenant, scopes=("write",))
        response = await client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers={"X-API-Key": key}
        )
        assert response.status_code == 403
