"""The role matrix: every route of the tenancy domains × every kind of caller → status.

Built from the app's route table: a route added to one of these domains without a row
here fails `test_every_route_has_a_row`, so nobody ships an endpoint whose access
nobody wrote down. Each cell runs against a fresh world, so side effects (a delete,
a revoke) never leak from one cell into another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from tenantry.auth import tokens
from tenantry.auth.api_key import display_prefix, generate_key
from tenantry.config import Settings
from tenantry.db import Database, set_tenant_context
from tenantry.main import create_app
from tenantry.models import ApiKey, Invitation, Membership, Role, Tenant, User
from tests.fixtures.factories import UNUSABLE_HASH, open_session

TAGS = {"tenants", "members", "invitations", "api-keys", "audit", "admin"}
ACTORS = ("owner", "admin", "member", "viewer", "read_key", "write_key", "operator", "anonymous")


def expect(
    owner: int,
    admin: int,
    member: int,
    viewer: int,
    read_key: int,
    write_key: int,
    operator: int,
    anonymous: int = 401,
) -> dict[str, int]:
    return dict(
        zip(
            ACTORS,
            (owner, admin, member, viewer, read_key, write_key, operator, anonymous),
            strict=True,
        )
    )


ALL_MEMBERS_AND_KEYS = expect(200, 200, 200, 200, 200, 200, 403)
PEOPLE_ONLY = expect(200, 200, 200, 200, 403, 403, 200)
ADMINS = expect(200, 200, 403, 403, 403, 403, 403)
OPERATORS = expect(403, 403, 403, 403, 403, 403, 200)

MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/api/v1/tenants"): expect(201, 201, 201, 201, 403, 403, 201),
    ("GET", "/api/v1/tenants"): PEOPLE_ONLY,
    # One of your tenants by id: the operator is no member of it, so 404 as for anyone.
    ("GET", "/api/v1/tenants/{tenant_id}"): expect(200, 200, 200, 200, 403, 403, 404),
    ("GET", "/api/v1/tenant"): ALL_MEMBERS_AND_KEYS,
    ("PATCH", "/api/v1/tenant"): ADMINS,
    ("DELETE", "/api/v1/tenant"): expect(202, 403, 403, 403, 403, 403, 403),
    ("GET", "/api/v1/members"): ALL_MEMBERS_AND_KEYS,
    ("PATCH", "/api/v1/members/{user_id}"): ADMINS,
    ("DELETE", "/api/v1/members/{user_id}"): expect(204, 204, 403, 403, 403, 403, 403),
    ("POST", "/api/v1/invitations"): expect(201, 201, 403, 403, 403, 403, 403),
    ("GET", "/api/v1/invitations"): ADMINS,
    ("DELETE", "/api/v1/invitations/{invitation_id}"): expect(204, 204, 403, 403, 403, 403, 403),
    ("POST", "/api/v1/invitations/accept"): PEOPLE_ONLY,
    ("POST", "/api/v1/api-keys"): expect(201, 201, 403, 403, 403, 403, 403),
    ("GET", "/api/v1/api-keys"): ADMINS,
    ("DELETE", "/api/v1/api-keys/{key_id}"): expect(204, 204, 403, 403, 403, 403, 403),
    ("GET", "/api/v1/audit-events"): ADMINS,
    ("GET", "/api/v1/admin/tenants"): OPERATORS,
    ("PATCH", "/api/v1/admin/tenants/{tenant_id}"): OPERATORS,
}


@dataclass
class World:
    """One tenant with a member of every role, keys, a target member and an invitation."""

    headers: dict[str, dict[str, str]]
    tenant_id: uuid.UUID
    target_user_id: uuid.UUID
    invitation_id: uuid.UUID
    key_id: uuid.UUID
    accept_tokens: dict[str, str]


async def build_world(db: Database, settings: Settings) -> World:
    """Everything in one transaction (tens of savepoints made each cell 0.3 s slower)."""
    tenant, elsewhere = Tenant(name="Matrix", slug=_slug()), Tenant(name="Else", slug=_slug())
    users = {name: _user() for name in (*[r.value for r in Role], "operator", "target")}
    users["operator"].is_superuser = True
    read_key, write_key, spare_key = generate_key(), generate_key(), generate_key()
    invitation = _invitation(settings, tenant, f"{uuid.uuid4().hex[:8]}@example.com")[0]
    accept = {name: _invitation(settings, elsewhere, users[name].email) for name in users}
    keys = [
        _key(settings, tenant, spare_key, ["read"]),
        _key(settings, tenant, read_key, ["read"]),
        _key(settings, tenant, write_key, ["write"]),
    ]
    headers: dict[str, dict[str, str]] = {}
    async with db.session_scope() as session:
        session.add_all([tenant, elsewhere, *users.values()])
        await session.flush()
        await set_tenant_context(session, tenant.id)
        for role in Role:
            session.add(Membership(tenant_id=tenant.id, user_id=users[role.value].id, role=role))
        session.add(Membership(tenant_id=tenant.id, user_id=users["target"].id, role=Role.VIEWER))
        session.add_all([invitation, *keys])
        await session.flush()
        await set_tenant_context(session, elsewhere.id)
        session.add_all([row for row, _ in accept.values()])
        await session.flush()
        await set_tenant_context(session, None)
        for name, user in users.items():
            bound = None if name == "operator" else tenant
            _, token = await open_session(session, settings, user, bound, None)
            headers[name] = {"Authorization": f"Bearer {token}"}
    headers["read_key"] = {"X-API-Key": read_key}
    headers["write_key"] = {"Authorization": f"Bearer {write_key}"}
    headers["anonymous"] = {}
    return World(
        headers=headers,
        tenant_id=tenant.id,
        target_user_id=users["target"].id,
        invitation_id=invitation.id,
        key_id=keys[0].id,
        accept_tokens={name: token for name, (_, token) in accept.items()},
    )


def _slug() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def _user() -> User:
    suffix = uuid.uuid4().hex[:10]
    return User(
        email=f"m-{suffix}@example.com", username=f"m_{suffix}", password_hash=UNUSABLE_HASH
    )


def _invitation(settings: Settings, tenant: Tenant, email: str) -> tuple[Invitation, str]:
    token = tokens.new_secret(16)
    row = Invitation(
        tenant_id=tenant.id,
        email=email,
        role=Role.MEMBER,
        token_hash=tokens.hash_secret(settings, token),
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )
    return row, token


def _key(settings: Settings, tenant: Tenant, key: str, scopes: list[str]) -> ApiKey:
    return ApiKey(
        tenant_id=tenant.id,
        name="matrix",
        prefix=display_prefix(key),
        key_hash=tokens.hash_secret(settings, key),
        scopes=scopes,
    )


Call = tuple[str, dict[str, Any] | None]  # concrete path, JSON body
CALLS: dict[tuple[str, str], Callable[[World, str], Call]] = {
    ("POST", "/api/v1/tenants"): lambda w, a: (
        "/api/v1/tenants",
        {"name": "Matrix", "slug": f"matrix-{uuid.uuid4().hex[:8]}"},
    ),
    ("GET", "/api/v1/tenants"): lambda w, a: ("/api/v1/tenants", None),
    ("GET", "/api/v1/tenants/{tenant_id}"): lambda w, a: (f"/api/v1/tenants/{w.tenant_id}", None),
    ("GET", "/api/v1/tenant"): lambda w, a: ("/api/v1/tenant", None),
    ("PATCH", "/api/v1/tenant"): lambda w, a: ("/api/v1/tenant", {"name": "Renamed"}),
    ("DELETE", "/api/v1/tenant"): lambda w, a: ("/api/v1/tenant", None),
    ("GET", "/api/v1/members"): lambda w, a: ("/api/v1/members", None),
    ("PATCH", "/api/v1/members/{user_id}"): lambda w, a: (
        f"/api/v1/members/{w.target_user_id}",
        {"role": "member"},
    ),
    ("DELETE", "/api/v1/members/{user_id}"): lambda w, a: (
        f"/api/v1/members/{w.target_user_id}",
        None,
    ),
    ("POST", "/api/v1/invitations"): lambda w, a: (
        "/api/v1/invitations",
        {"email": f"{uuid.uuid4().hex[:8]}@example.com", "role": "member"},
    ),
    ("GET", "/api/v1/invitations"): lambda w, a: ("/api/v1/invitations", None),
    ("DELETE", "/api/v1/invitations/{invitation_id}"): lambda w, a: (
        f"/api/v1/invitations/{w.invitation_id}",
        None,
    ),
    ("POST", "/api/v1/invitations/accept"): lambda w, a: (
        "/api/v1/invitations/accept",
        {"token": w.accept_tokens.get(a, w.accept_tokens["owner"])},
    ),
    ("POST", "/api/v1/api-keys"): lambda w, a: (
        "/api/v1/api-keys",
        {"name": "matrix", "scopes": ["read"]},
    ),
    ("GET", "/api/v1/api-keys"): lambda w, a: ("/api/v1/api-keys", None),
    ("DELETE", "/api/v1/api-keys/{key_id}"): lambda w, a: (f"/api/v1/api-keys/{w.key_id}", None),
    ("GET", "/api/v1/audit-events"): lambda w, a: ("/api/v1/audit-events", None),
    ("GET", "/api/v1/admin/tenants"): lambda w, a: ("/api/v1/admin/tenants", None),
    ("PATCH", "/api/v1/admin/tenants/{tenant_id}"): lambda w, a: (
        f"/api/v1/admin/tenants/{w.tenant_id}",
        {"plan": "pro"},
    ),
}


def routes_of_these_domains(app: FastAPI) -> set[tuple[str, str]]:
    # The OpenAPI document is the public route table (FastAPI includes routers lazily,
    # so app.routes no longer lists them one by one).
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if set(operation.get("tags", ())) & TAGS
    }


def test_every_route_has_a_row(settings: Settings) -> None:
    routes = routes_of_these_domains(create_app(settings))
    assert routes, "no routes found: the tags changed?"
    assert routes - MATRIX.keys() == set(), "routes without a row in the role matrix"
    assert MATRIX.keys() - routes == set(), "rows for routes that no longer exist"
    assert CALLS.keys() == MATRIX.keys()


@pytest.mark.parametrize("route", sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
async def test_row(
    client: httpx.AsyncClient, db: Database, settings: Settings, route: tuple[str, str]
) -> None:
    """One row: every caller against its own fresh world; the whole row is compared at
    once so a failure shows every cell that differs."""
    got: dict[str, int] = {}
    for actor in ACTORS:
        world = await build_world(db, settings)
        path, body = CALLS[route](world, actor)
        response = await client.request(route[0], path, json=body, headers=world.headers[actor])
        got[actor] = response.status_code
        if response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
    assert got == MATRIX[route]


def test_a_new_route_without_a_row_is_caught(settings: Settings) -> None:
    app = create_app(settings)
    extra = APIRouter(prefix="/api/v1/members", tags=["members"])

    @extra.post("/{user_id}/promote")
    async def promote(user_id: uuid.UUID) -> None:
        """A route somebody forgot to put in the matrix."""

    app.include_router(extra)
    missing = routes_of_these_domains(app) - MATRIX.keys()
    assert missing == {("POST", "/api/v1/members/{user_id}/promote")}
