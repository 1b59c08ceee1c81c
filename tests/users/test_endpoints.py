"""Sign-up and the caller's own account, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role
from tests.fixtures.accounts import PASSWORD, bearer, login, new_account, sign_up, tokens_for
from tests.fixtures.factories import add_member, make_tenant


class TestSignUp:
    async def test_created(self, client: httpx.AsyncClient) -> None:
        body = new_account()
        response = await client.post("/api/v1/users/", json=body)
        assert response.status_code == 201
        user = response.json()
        assert user["email"] == body["email"]
        assert user["username"] == body["username"]
        assert user["full_name"] == body["full_name"]
        assert user["is_active"] is True
        assert user["id"]
        assert not {"password", "password_hash", "hashed_password"} & set(user)
        assert PASSWORD not in response.text

    async def test_without_trailing_slash_no_redirect(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/users", json=new_account())
        assert response.status_code == 201

    async def test_invalid_email_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/users/", json=new_account(email="not-an-email"))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["body.email"]

    @pytest.mark.parametrize(
        ("sent", "stored"),
        [
            # `.test` is where documentation, test suites and fuzzers put addresses;
            # `format: email` in the document allows it, so the server does too.
            ("ada@example.test", "ada@example.test"),
            (" Ada@Example.COM ", "Ada@example.com"),  # the domain is case-insensitive
            ("o'brien+tag@mail.example.org", "o'brien+tag@mail.example.org"),
        ],
    )
    async def test_an_email_is_judged_by_its_syntax(
        self, client: httpx.AsyncClient, sent: str, stored: str
    ) -> None:
        response = await client.post("/api/v1/users/", json=new_account(email=sent))
        assert response.status_code == 201, response.text
        assert response.json()["email"] == stored

    @pytest.mark.parametrize(
        "email", ["ada@localhost", "ada@mail.invalid", "ada@@example.com", "ada@"]
    )
    async def test_an_address_no_mail_can_reach_is_422(
        self, client: httpx.AsyncClient, email: str
    ) -> None:
        response = await client.post("/api/v1/users/", json=new_account(email=email))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "body.email"
        assert "not a valid email address" in error["message"]

    @pytest.mark.parametrize(
        ("password", "rule"),
        [
            ("Sh0rt!", "at least 8"),
            ("A1!" + "a" * 130, "at most 128"),
            ("lower0nly!", "upper-case"),
            ("NoDigits!!", "digit"),
            ("NoSpecial00", "special"),
        ],
    )
    async def test_weak_password_422_names_rule(
        self, client: httpx.AsyncClient, password: str, rule: str
    ) -> None:
        response = await client.post("/api/v1/users/", json=new_account(password=password))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "body.password"
        assert rule in error["message"]

    @pytest.mark.parametrize("username", ["ab", "x" * 51, "has space", "semi;colon", "ünï"])
    async def test_bad_username_422(self, client: httpx.AsyncClient, username: str) -> None:
        response = await client.post("/api/v1/users/", json=new_account(username=username))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.username"

    async def test_duplicate_email_409_case_insensitive(self, client: httpx.AsyncClient) -> None:
        first = await sign_up(client)
        response = await client.post(
            "/api/v1/users/", json=new_account(email=first["email"].upper())
        )
        assert response.status_code == 409
        assert "email" in response.json()["detail"]

    async def test_duplicate_username_409_case_insensitive(self, client: httpx.AsyncClient) -> None:
        first = await sign_up(client)
        response = await client.post(
            "/api/v1/users/", json=new_account(username=first["username"].upper())
        )
        assert response.status_code == 409
        assert "username" in response.json()["detail"]

    @pytest.mark.parametrize(
        "field",
        [
            {"is_superuser": True},
            {"is_active": False},
            {"id": "2b1d4f0e-8a43-4f6c-9d51-0c6d1b2e9a10"},
            {"email_verified_at": "2026-01-01T00:00:00Z"},
        ],
    )
    async def test_mass_assignment_rejected(
        self, client: httpx.AsyncClient, field: dict[str, object]
    ) -> None:
        response = await client.post("/api/v1/users/", json=new_account(**field))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == f"body.{next(iter(field))}"


class TestGetMe:
    async def test_401_without_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/users/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_200_with_token_from_login(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        response = await login(client, account["username"], account["password"])
        assert response.status_code == 200
        token = response.json()["access_token"]
        me = await client.get("/api/v1/users/me", headers=bearer(token))
        assert me.status_code == 200
        body = me.json()
        assert body["id"] == account["id"]
        assert body["email"] == account["email"]
        assert body["memberships"] == []
        assert body["email_verified"] is False
        assert "password_hash" not in body

    async def test_lists_memberships(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        account = await sign_up(client)
        tenant = await make_tenant(db)
        from tenantry.users.repository import UserRepository

        async with db.session_scope() as session:
            user = await UserRepository(session).get_by_email(account["email"])
        assert user is not None
        await add_member(db, tenant, user, Role.ADMIN)
        tokens = await tokens_for(client, account["username"])
        body = (await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))).json()
        assert body["memberships"] == [
            {
                "tenant_id": str(tenant.id),
                "tenant_slug": tenant.slug,
                "tenant_name": tenant.name,
                "role": "admin",
            }
        ]


class TestUpdateMe:
    async def test_full_name(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        tokens = await tokens_for(client, account["username"])
        response = await client.patch(
            "/api/v1/users/me",
            json={"full_name": "New Name"},
            headers=bearer(tokens["access_token"]),
        )
        assert response.status_code == 200
        assert response.json()["full_name"] == "New Name"

    @pytest.mark.parametrize(
        "field",
        [
            {"is_superuser": True},
            {"is_active": False},
            {"id": "2b1d4f0e-8a43-4f6c-9d51-0c6d1b2e9a10"},
            {"email": "other@example.com"},
            {"email_verified_at": "2026-01-01T00:00:00Z"},
        ],
    )
    async def test_mass_assignment_rejected(
        self, client: httpx.AsyncClient, field: dict[str, object]
    ) -> None:
        account = await sign_up(client)
        headers = bearer((await tokens_for(client, account["username"]))["access_token"])
        response = await client.patch("/api/v1/users/me", json=field, headers=headers)
        assert response.status_code == 422
        me = (await client.get("/api/v1/users/me", headers=headers)).json()
        assert me["is_superuser"] is False
        assert me["is_active"] is True
        assert me["id"] == account["id"]
        assert me["email"] == account["email"]
        assert me["email_verified"] is False

    async def test_password_needs_current_password(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        headers = bearer((await tokens_for(client, account["username"]))["access_token"])
        response = await client.patch(
            "/api/v1/users/me", json={"password": "N3w!Password"}, headers=headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.current_password"

    async def test_wrong_current_password_422(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        headers = bearer((await tokens_for(client, account["username"]))["access_token"])
        response = await client.patch(
            "/api/v1/users/me",
            json={"password": "N3w!Password", "current_password": "Wr0ng!Password"},
            headers=headers,
        )
        assert response.status_code == 422
        assert (await login(client, account["username"], PASSWORD)).status_code == 200

    async def test_password_change_kills_other_sessions_only(
        self, client: httpx.AsyncClient
    ) -> None:
        account = await sign_up(client)
        mine = await tokens_for(client, account["username"])
        other = await tokens_for(client, account["username"])
        response = await client.patch(
            "/api/v1/users/me",
            json={"password": "N3w!Password", "current_password": PASSWORD},
            headers=bearer(mine["access_token"]),
        )
        assert response.status_code == 200
        assert (
            await client.get("/api/v1/users/me", headers=bearer(mine["access_token"]))
        ).status_code == 200
        assert (
            await client.get("/api/v1/users/me", headers=bearer(other["access_token"]))
        ).status_code == 401
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
        assert refreshed.status_code == 401
        assert (await login(client, account["username"], PASSWORD)).status_code == 401
        assert (await login(client, account["username"], "N3w!Password")).status_code == 200
