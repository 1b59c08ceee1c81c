"""Login, refresh, logout, switch-tenant, password reset and email verification over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from typing import Any

import bcrypt
import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlmodel import col

from tenantry.auth import account_tokens
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import EmailOutbox, Role, Tenant, User
from tenantry.observability.metrics import LOGINS
from tests.fixtures.accounts import PASSWORD, bearer, login, sign_up, tokens_for
from tests.fixtures.factories import add_member, make_tenant

ME = "/api/v1/users/me"


async def _user(db: Database, account: dict[str, Any]) -> User:
    async with db.session_scope() as session:
        user = await session.get(User, uuid.UUID(account["id"]))
    assert user is not None
    return user


async def _outbox(db: Database, to: str) -> list[EmailOutbox]:
    async with db.session_scope() as session:
        rows = await session.execute(
            sa.select(EmailOutbox)
            .where(col(EmailOutbox.to_email) == to)
            .order_by(col(EmailOutbox.created_at))
        )
        return list(rows.scalars())


def _token_in(text: str) -> str:
    match = re.search(r"\?token=([A-Za-z0-9._-]+)", text)
    assert match, text
    return match.group(1)


async def _me_status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(ME, headers=bearer(token))).status_code


class TestLogin:
    async def test_pair_and_headers(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        response = await login(client, account["username"])
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 900
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"

    async def test_access_token_claims(self, client: httpx.AsyncClient, settings: Settings) -> None:
        account = await sign_up(client)
        body = await tokens_for(client, account["username"])
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert {"sub", "tid", "role", "sid", "jti", "iat", "exp", "iss", "aud", "type"} <= set(
            claims
        )
        assert claims["sub"] == account["id"]
        assert claims["exp"] - claims["iat"] == 900
        assert claims["type"] == "access"
        assert claims["iss"] == settings.jwt_issuer and claims["aud"] == settings.jwt_audience
        assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"

    async def test_by_email_any_case(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        assert (await login(client, account["email"].upper())).status_code == 200

    async def test_wrong_password_and_unknown_user_identical(
        self, client: httpx.AsyncClient
    ) -> None:
        account = await sign_up(client)
        wrong = await login(client, account["username"], "Wr0ng!Password")
        unknown = await login(client, "nobody-here", "Wr0ng!Password")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"

    async def test_failures_counted(self, client: httpx.AsyncClient) -> None:
        before = LOGINS.labels(outcome="invalid_credentials")._value.get()
        await login(client, "nobody-here", "Wr0ng!Password")
        assert LOGINS.labels(outcome="invalid_credentials")._value.get() == before + 1

    async def test_inactive_user_same_401(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(User)
                .where(col(User.id) == uuid.UUID(account["id"]))
                .values(is_active=False)
            )
        response = await login(client, account["username"])
        assert response.status_code == 401
        assert response.json()["detail"] == "Incorrect username or password"

    async def test_missing_fields_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/login", data={"username": "x"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.password"

    async def test_json_body_is_422_not_500(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
        assert response.status_code == 422

    async def test_legacy_bcrypt_hash_verified_and_upgraded(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        async with db.session_scope() as session:
            await session.execute(
                sa.update(User)
                .where(col(User.id) == uuid.UUID(account["id"]))
                .values(password_hash=legacy)
            )
        assert (await login(client, account["username"])).status_code == 200
        assert (await _user(db, account)).password_hash.startswith("$argon2id$")
        assert (await login(client, account["username"])).status_code == 200


class TestLoginTenant:
    async def test_bound_to_first_membership(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        first, second = await make_tenant(db), await make_tenant(db)
        await add_member(db, first, user, Role.MEMBER)
        await add_member(db, second, user, Role.OWNER)
        body = await tokens_for(client, account["username"])
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["tid"] == str(first.id)
        assert claims["role"] == "member"

    async def test_no_membership_no_tenant(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        claims = jwt.decode(
            (await tokens_for(client, account["username"]))["access_token"],
            options={"verify_signature": False},
        )
        assert claims["tid"] is None and claims["role"] is None

    @pytest.mark.parametrize("by", ["slug", "id"])
    async def test_requested_tenant(self, client: httpx.AsyncClient, db: Database, by: str) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        first, second = await make_tenant(db), await make_tenant(db)
        await add_member(db, first, user, Role.MEMBER)
        await add_member(db, second, user, Role.OWNER)
        tenant = second.slug if by == "slug" else str(second.id)
        body = await tokens_for(client, account["username"], tenant=tenant)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["tid"] == str(second.id) and claims["role"] == "owner"

    async def test_tenant_not_a_member_401(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        other = await make_tenant(db)
        for tenant in (other.slug, "no-such-tenant"):
            response = await login(client, account["username"], tenant=tenant)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"


class TestAccessTokenAttacks:
    """Every forgery is a 401 with the Bearer challenge, never a 500."""

    @pytest.fixture
    async def genuine(self, client: httpx.AsyncClient) -> dict[str, Any]:
        account = await sign_up(client)
        body = await tokens_for(client, account["username"])
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        return {"account": account, "tokens": body, "claims": claims}

    async def _assert_401(self, client: httpx.AsyncClient, token: str) -> None:
        response = await client.get(ME, headers=bearer(token))
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"

    def _sign(self, settings: Settings, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, settings.secret_key.get_secret_value(), "HS256")

    async def test_alg_none(self, client: httpx.AsyncClient, genuine: dict[str, Any]) -> None:
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(json.dumps(genuine["claims"]).encode()).rstrip(b"=")
        await self._assert_401(client, f"{header}.{body.decode()}.")

    async def test_tampered_payload(
        self, client: httpx.AsyncClient, genuine: dict[str, Any]
    ) -> None:
        head, _, sig = genuine["tokens"]["access_token"].split(".")
        forged = dict(genuine["claims"], sub=str(uuid.uuid4()))
        body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        await self._assert_401(client, f"{head}.{body}.{sig}")

    @pytest.mark.parametrize(
        "change",
        [
            {"exp": int(time.time()) - 10},
            {"exp": None},
            {"aud": "someone-else"},
            {"iss": "evil"},
            {"type": "reset"},
            {"type": "verify"},
        ],
        ids=["expired", "no-exp", "wrong-aud", "wrong-iss", "reset-type", "verify-type"],
    )
    async def test_bad_claims(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        genuine: dict[str, Any],
        change: dict[str, Any],
    ) -> None:
        claims = {**genuine["claims"], **change}
        claims = {k: v for k, v in claims.items() if v is not None}
        # Sanity: the same claims unchanged pass, so only `change` makes it fail.
        assert await _me_status(client, self._sign(settings, genuine["claims"])) == 200
        await self._assert_401(client, self._sign(settings, claims))

    async def test_refresh_token_as_access(
        self, client: httpx.AsyncClient, genuine: dict[str, Any]
    ) -> None:
        await self._assert_401(client, genuine["tokens"]["refresh_token"])

    async def test_reset_and_verify_tokens_as_access(
        self, client: httpx.AsyncClient, settings: Settings, db: Database, genuine: dict[str, Any]
    ) -> None:
        user = await _user(db, genuine["account"])
        reset = account_tokens.create_reset_token(settings, user.id, user.password_hash)
        verify = account_tokens.create_verify_token(settings, user.id, user.email)
        await self._assert_401(client, reset)
        await self._assert_401(client, verify)


class TestRefresh:
    async def test_rotates(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        response = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert await _me_status(client, second["access_token"]) == 200

    async def test_reuse_revokes_the_whole_session(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        second = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
        ).json()
        await _age_rotation(db, second["access_token"], seconds=31)  # past the grace window
        replay = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert replay.status_code == 401
        assert replay.headers["www-authenticate"] == "Bearer"
        # The thief's replay also ends the legitimate holder's newer tokens.
        latest = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert latest.status_code == 401
        assert await _me_status(client, second["access_token"]) == 401

    @pytest.mark.parametrize(
        "token",
        ["", "garbage", "abc.def", "596c928a3f7d4c06bfb0fec7363e800a.secret", "x" * 600],
    )
    async def test_garbage_401_or_422(self, client: httpx.AsyncClient, token: str) -> None:
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code in (401, 422)

    async def test_after_logout_401(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        pair = await tokens_for(client, account["username"])
        await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
        response = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert response.status_code == 401

    async def test_keeps_tenant_and_reads_role_now(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        tenant = await make_tenant(db)
        await add_member(db, tenant, user, Role.ADMIN)
        pair = await tokens_for(client, account["username"])
        from tenantry.models import Membership

        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(Membership)
                .where(col(Membership.user_id) == user.id)
                .values(role=Role.VIEWER)
            )
        new = (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).json()
        claims = jwt.decode(new["access_token"], options={"verify_signature": False})
        assert claims["tid"] == str(tenant.id) and claims["role"] == "viewer"


async def _age_rotation(db: Database, access_token: str, *, seconds: float) -> None:
    """Move the session's last rotation `seconds` into the past."""
    from tenantry.models import AuthSession

    sid = uuid.UUID(jwt.decode(access_token, options={"verify_signature": False})["sid"])
    async with db.session_scope() as session:
        await session.execute(
            sa.update(AuthSession)
            .where(col(AuthSession.id) == sid)
            .values(rotated_at=sa.func.now() - sa.text(f"interval '{seconds} seconds'"))
        )


class TestRefreshGrace:
    async def test_just_rotated_token_gets_the_same_pair(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        body = {"refresh_token": first["refresh_token"]}
        second = await client.post("/api/v1/auth/refresh", json=body)
        again = await client.post("/api/v1/auth/refresh", json=body)
        assert second.status_code == again.status_code == 200
        assert again.json() == second.json()
        assert again.headers["cache-control"] == "no-store"
        # The session lives on: its newest refresh token still rotates.
        third = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
        )
        assert third.status_code == 200
        assert await _me_status(client, third.json()["access_token"]) == 200

    async def test_only_the_token_rotated_last(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        second = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
        ).json()
        await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        # Two rotations ago: a replay, within 30 s or not.
        replay = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert replay.status_code == 401
        assert await _me_status(client, second["access_token"]) == 401

    async def test_after_the_window_reuse_revokes(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        second = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
        ).json()
        await _age_rotation(db, second["access_token"], seconds=29)
        inside = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert inside.status_code == 200
        await _age_rotation(db, second["access_token"], seconds=31)
        late = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert late.status_code == 401
        assert await _me_status(client, second["access_token"]) == 401

    async def test_after_logout_no_grace(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        first = await tokens_for(client, account["username"])
        second = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
        ).json()
        await client.post("/api/v1/auth/logout", headers=bearer(second["access_token"]))
        again = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert again.status_code == 401


@pytest.mark.committed
class TestConcurrentRefresh:
    async def test_ten_parallel_refreshes_share_one_new_pair(
        self, client: httpx.AsyncClient
    ) -> None:
        """Ten tabs refresh with the same token at once: all get the same new pair and
        the session survives (was: 1 × 200, 9 × 401 and the session revoked)."""
        account = await sign_up(client)
        pair = await tokens_for(client, account["username"])
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
                for _ in range(10)
            )
        )
        assert [r.status_code for r in responses] == [200] * 10
        assert len({r.json()["refresh_token"] for r in responses}) == 1
        assert len({r.json()["access_token"] for r in responses}) == 1
        new = responses[0].json()
        assert await _me_status(client, new["access_token"]) == 200
        rotated = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}
        )
        assert rotated.status_code == 200


class TestLogout:
    async def test_kills_this_session_only(self, client: httpx.AsyncClient) -> None:
        account = await sign_up(client)
        mine = await tokens_for(client, account["username"])
        other = await tokens_for(client, account["username"])
        response = await client.post("/api/v1/auth/logout", headers=bearer(mine["access_token"]))
        assert response.status_code == 204
        assert await _me_status(client, mine["access_token"]) == 401
        assert (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]})
        ).status_code == 401
        assert await _me_status(client, other["access_token"]) == 200
        assert (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
            )
        ).status_code == 200

    async def test_without_token_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/logout")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


class TestSwitchTenant:
    async def test_to_a_member_tenant(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        first, second = await make_tenant(db), await make_tenant(db)
        await add_member(db, first, user, Role.OWNER)
        await add_member(db, second, user, Role.VIEWER)
        pair = await tokens_for(client, account["username"])
        response = await client.post(
            "/api/v1/auth/switch-tenant",
            json={"tenant": second.slug},
            headers=bearer(pair["access_token"]),
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        new = response.json()
        old_claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
        claims = jwt.decode(new["access_token"], options={"verify_signature": False})
        assert claims["tid"] == str(second.id) and claims["role"] == "viewer"
        assert claims["sid"] == old_claims["sid"]
        refreshed = (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
        ).json()
        assert jwt.decode(refreshed["access_token"], options={"verify_signature": False})[
            "tid"
        ] == str(second.id)

    async def test_not_a_member_404(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        other = await make_tenant(db)
        pair = await tokens_for(client, account["username"])
        for tenant in (other.slug, str(other.id), "no-such-tenant"):
            response = await client.post(
                "/api/v1/auth/switch-tenant",
                json={"tenant": tenant},
                headers=bearer(pair["access_token"]),
            )
            assert response.status_code == 404

    async def test_deleted_tenant_404(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        tenant = await make_tenant(db)
        await add_member(db, tenant, user, Role.OWNER)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant)
                .where(col(Tenant.id) == tenant.id)
                .values(deleted_at=sa.func.now())
            )
        pair = await tokens_for(client, account["username"])
        response = await client.post(
            "/api/v1/auth/switch-tenant",
            json={"tenant": tenant.slug},
            headers=bearer(pair["access_token"]),
        )
        assert response.status_code == 404


class TestPasswordReset:
    async def test_unknown_email_202_and_no_email(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": "ghost@example.com"}
        )
        assert response.status_code == 202
        assert await _outbox(db, "ghost@example.com") == []

    async def test_known_email_202_and_one_email(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": account["email"].upper()}
        )
        assert response.status_code == 202
        kinds = [row.kind for row in await _outbox(db, account["email"])]
        assert kinds == ["welcome", "password_reset"]

    async def test_token_works_once_and_revokes_every_session(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        account = await sign_up(client)
        pair = await tokens_for(client, account["username"])
        await client.post("/api/v1/auth/password-reset/request", json={"email": account["email"]})
        reset = (await _outbox(db, account["email"]))[-1]
        assert reset.subject == "Reset your Tenantry password"
        token = _token_in(reset.text_body)
        body = {"token": token, "new_password": "An0ther!Password"}
        response = await client.post("/api/v1/auth/password-reset/confirm", json=body)
        assert response.status_code == 204
        assert await _me_status(client, pair["access_token"]) == 401
        assert (
            await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        ).status_code == 401
        again = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "Th1rd!Password"},
        )
        assert again.status_code == 400
        assert (await login(client, account["username"], "An0ther!Password")).status_code == 200
        assert (await login(client, account["username"], "Th1rd!Password")).status_code == 401

    async def test_weak_new_password_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/auth/password-reset/confirm", json={"token": "x", "new_password": "weak"}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.new_password"

    @pytest.mark.parametrize("kind", ["garbage", "access", "verify", "expired"])
    async def test_bad_tokens_400(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, kind: str
    ) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        if kind == "garbage":
            token = "not.a.token"
        elif kind == "access":
            token = (await tokens_for(client, account["username"]))["access_token"]
        elif kind == "verify":
            token = account_tokens.create_verify_token(settings, user.id, user.email)
        else:
            expired = settings.model_copy(update={"password_reset_ttl_seconds": -10})
            token = account_tokens.create_reset_token(expired, user.id, user.password_hash)
        response = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "An0ther!Password"},
        )
        assert response.status_code == 400


class TestVerifyEmail:
    async def test_welcome_token_verifies(self, client: httpx.AsyncClient, db: Database) -> None:
        account = await sign_up(client)
        (welcome,) = await _outbox(db, account["email"])
        assert welcome.subject == "Welcome to Tenantry — verify your email"
        token = _token_in(welcome.text_body)
        assert token in welcome.text_body.split("\n")
        response = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 204
        headers = bearer((await tokens_for(client, account["username"]))["access_token"])
        assert (await client.get(ME, headers=headers)).json()["email_verified"] is True
        again = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert again.status_code == 204

    async def test_reset_token_is_not_a_verify_token(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        token = account_tokens.create_reset_token(settings, user.id, user.password_hash)
        response = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 400

    async def test_token_for_another_email_400(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        account = await sign_up(client)
        user = await _user(db, account)
        token = account_tokens.create_verify_token(settings, user.id, "old@example.com")
        response = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 400
