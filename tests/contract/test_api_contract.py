"""The API contract (docs/api/guide.md) checked from the outside: only HTTP requests, only what a client sees.

Each test names the contract line it holds the app to. Rows come from the public API
(sign-up, login, create) wherever it offers a way; factories only where it cannot
(an operator, a suspended tenant).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tenantry.config import Settings
from tenantry.db import Database
from tests.fixtures.accounts import bearer, sign_up, tokens_for
from tests.fixtures.factories import make_actor

API = "/api/v1"
SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_shell(response: httpx.Response) -> None:
    """Security headers and a request id: on every response, whatever its status."""
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (response.status_code, name)
    assert response.headers.get("x-request-id")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert set(error) == {"field", "message"}
    if status == 401:
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
    assert_shell(response)
    return body


async def db_tenant(db: Database, tenant_id: str) -> Any:
    from tenantry.models import Tenant

    async with db.session_scope(uuid.UUID(tenant_id)) as session:
        return await session.get(Tenant, uuid.UUID(tenant_id))


def fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body["errors"]}


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


class Journey:
    """A signed-up person with a tenant of their own, made over HTTP."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.user: dict[str, Any] = {}
        self.pair: dict[str, Any] = {}
        self.tenant: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.pair["access_token"])

    async def start(self) -> Journey:
        self.user = await sign_up(self.client)
        self.pair = await tokens_for(self.client, self.user["username"])
        slug = f"org-{uuid.uuid4().hex[:8]}"
        created = await self.client.post(
            f"{API}/tenants", json={"name": "Org", "slug": slug}, headers=self.headers
        )
        assert created.status_code == 201, created.text
        self.tenant = created.json()
        switched = await self.client.post(
            f"{API}/auth/switch-tenant", json={"tenant": slug}, headers=self.headers
        )
        assert switched.status_code == 200, switched.text
        self.pair = switched.json()
        return self

    async def project(self, name: str = "Apollo") -> dict[str, Any]:
        response = await self.client.post(
            f"{API}/projects", json={"name": name}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def journey(client: httpx.AsyncClient) -> Journey:
    return await Journey(client).start()


class TestShellOnEveryStatus:
    async def test_unknown_path_is_404_problem_with_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        assert_problem(await client.get(f"{API}/nope"), 404)

    async def test_wrong_method_is_405_problem_with_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        assert_problem(await client.put("/health"), 405)

    async def test_oversized_body_is_413_problem_with_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(f"{API}/users/", content=b"x" * (1024 * 1024 + 1))
        assert_problem(response, 413)

    async def test_request_id_is_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"
        assert_shell(response)

    async def test_not_modified_carries_headers(self, journey: Journey) -> None:
        project = await journey.project()
        first = await journey.client.get(f"{API}/projects/{project['id']}", headers=journey.headers)
        etag = first.headers["etag"]
        again = await journey.client.get(
            f"{API}/projects/{project['id']}", headers={**journey.headers, "If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert_shell(again)


class TestHealth:
    async def test_liveness(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "healthy"}

    async def test_readiness(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert response.json()

    @pytest.mark.parametrize("path", ["/health", "/health/ready"])
    async def test_head_answers_like_get(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.head(path)
        assert response.status_code == 200
        assert_shell(response)

    async def test_metrics_are_prometheus_text(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")


class TestUnauthorizedCarriesChallenge:
    async def test_no_credential(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get(f"{API}/users/me"), 401)

    async def test_garbage_bearer(self, client: httpx.AsyncClient) -> None:
        assert_problem(await client.get(f"{API}/projects", headers=bearer("nope")), 401)

    async def test_other_scheme(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/projects", headers={"Authorization": "Basic eDp5"})
        assert_problem(response, 401)

    async def test_malformed_api_key_header(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/projects", headers={"X-API-Key": "tnt_bogus"})
        assert_problem(response, 401)

    async def test_well_formed_unknown_api_key(self, client: httpx.AsyncClient) -> None:
        from tenantry.auth.api_key import generate_key

        response = await client.get(f"{API}/projects", headers=bearer(generate_key()))
        assert_problem(response, 401)

    async def test_expired_access_token(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        from tenantry.auth import tokens

        token = tokens.create_access_token(
            settings.model_copy(update={"access_token_expire_minutes": -5}),
            user_id=uuid.uuid4(),
            tenant_id=None,
            role=None,
            session_id=uuid.uuid4(),
        )
        assert_problem(await client.get(f"{API}/users/me", headers=bearer(token)), 401)

    async def test_bad_refresh_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{API}/auth/refresh", json={"refresh_token": "nope"})
        assert_problem(response, 401)

    async def test_wrong_password(self, client: httpx.AsyncClient) -> None:
        user = await sign_up(client)
        response = await client.post(
            f"{API}/auth/login", data={"username": user["username"], "password": "Wr0ng!pass"}
        )
        assert_problem(response, 401)


class TestValidationProblems:
    async def test_signup_fields_are_named_body_dot_field(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/users/",
            json={"email": "not-an-email", "username": "ab", "password": "short", "full_name": "X"},
        )
        body = assert_problem(response, 422)
        assert {"body.email", "body.username", "body.password"} <= fields(body)

    @pytest.mark.parametrize("limit", ["0", "101", "abc"])
    async def test_limit_out_of_range(self, journey: Journey, limit: str) -> None:
        response = await journey.client.get(
            f"{API}/projects", params={"limit": limit}, headers=journey.headers
        )
        assert fields(assert_problem(response, 422)) == {"query.limit"}

    @pytest.mark.parametrize(
        "path",
        [
            "/projects",
            "/members",
            "/api-keys",
            "/invitations",
            "/reports",
            "/audit-events",
            "/tenants",
        ],
    )
    async def test_every_list_bounds_limit(self, journey: Journey, path: str) -> None:
        for limit in ("0", "101"):
            response = await journey.client.get(
                f"{API}{path}", params={"limit": limit}, headers=journey.headers
            )
            assert fields(assert_problem(response, 422)) == {"query.limit"}, (path, limit)
        page = await journey.client.get(
            f"{API}{path}", params={"limit": "1", "ignored": "x"}, headers=journey.headers
        )
        assert page.status_code == 200, page.text
        assert set(page.json()) == {"items", "next_cursor"} and len(page.json()["items"]) <= 1

    async def test_bad_cursor(self, journey: Journey) -> None:
        response = await journey.client.get(
            f"{API}/projects", params={"cursor": "!!!"}, headers=journey.headers
        )
        assert fields(assert_problem(response, 422)) == {"query.cursor"}

    async def test_service_raised_422_lists_errors(self, journey: Journey) -> None:
        response = await journey.client.patch(
            f"{API}/users/me", json={"password": "N3w!Password"}, headers=journey.headers
        )
        body = assert_problem(response, 422)
        assert fields(body) == {"body.current_password"}
        # One 422 looks like another, whichever layer refused it.
        assert body["title"] == "Validation failed"
        assert body["type"].endswith("/validation-error")

    async def test_malformed_json_names_the_body(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/users/", content=b"{bad", headers={"Content-Type": "application/json"}
        )
        assert fields(assert_problem(response, 422)) == {"body"}

    async def test_service_422_without_a_field_still_lists_errors(self) -> None:
        from tenantry.errors import Unprocessable

        error = Unprocessable("Not like that")
        assert error.extra["errors"] == [{"field": "body", "message": "Not like that"}]

    async def test_mass_assignment_rejected(self, journey: Journey) -> None:
        response = await journey.client.post(
            f"{API}/projects",
            json={"name": "x", "tenant_id": str(uuid.uuid4())},
            headers=journey.headers,
        )
        assert "body.tenant_id" in fields(assert_problem(response, 422))

    async def test_bad_path_id_is_422_or_404_never_500(self, journey: Journey) -> None:
        response = await journey.client.get(f"{API}/projects/not-a-uuid", headers=journey.headers)
        assert response.status_code in (404, 422)
        assert_problem(response, response.status_code)


class TestAccounts:
    async def test_signup_answers_user_without_secrets(self, client: httpx.AsyncClient) -> None:
        user = await sign_up(client)
        assert "password_hash" not in user and "id" in user

    async def test_duplicate_is_409(self, client: httpx.AsyncClient) -> None:
        user = await sign_up(client)
        again = await client.post(
            f"{API}/users/",
            json={
                "email": user["email"],
                "username": "other_" + uuid.uuid4().hex[:6],
                "password": "Str0ng!Passw0rd",
                "full_name": "X",
            },
        )
        assert_problem(again, 409)

    @pytest.mark.parametrize("password", ["alllower1!", "NoDigits!!", "NoSpecial1", "Sh0rt!"])
    async def test_weak_password(self, client: httpx.AsyncClient, password: str) -> None:
        response = await client.post(
            f"{API}/users/",
            json={
                "email": f"p-{uuid.uuid4().hex[:6]}@example.com",
                "username": "u_" + uuid.uuid4().hex[:6],
                "password": password,
                "full_name": "X",
            },
        )
        assert fields(assert_problem(response, 422)) == {"body.password"}

    async def test_login_by_email_and_pair_shape(self, client: httpx.AsyncClient) -> None:
        user = await sign_up(client)
        response = await client.post(
            f"{API}/auth/login", data={"username": user["email"], "password": user["password"]}
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        pair = response.json()
        assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
        assert pair["refresh_token"]
        token = claims(pair["access_token"])
        assert {"sub", "tid", "role", "sid", "jti", "iat", "exp", "iss", "aud", "type"} <= set(
            token
        )
        assert token["type"] == "access" and token["tid"] is None
        assert token["exp"] - token["iat"] == 900

    async def test_login_with_tenant_slug(self, journey: Journey) -> None:
        response = await journey.client.post(
            f"{API}/auth/login",
            data={
                "username": journey.user["username"],
                "password": journey.user["password"],
                "tenant": journey.tenant["slug"],
            },
        )
        assert response.status_code == 200
        token = claims(response.json()["access_token"])
        assert token["tid"] == journey.tenant["id"] and token["role"] == "owner"

    async def test_refresh_rotates_and_reuse_revokes(self, journey: Journey) -> None:
        old = journey.pair["refresh_token"]
        first = await journey.client.post(f"{API}/auth/refresh", json={"refresh_token": old})
        assert first.status_code == 200
        assert first.headers["cache-control"] == "no-store"
        # Within the 30 s grace window the token just rotated out gets the same pair
        # (several tabs refreshing at once); see docs/operations/faults.md.
        again = await journey.client.post(f"{API}/auth/refresh", json={"refresh_token": old})
        assert again.status_code == 200 and again.json() == first.json()
        newer = first.json()["refresh_token"]
        second = await journey.client.post(f"{API}/auth/refresh", json={"refresh_token": newer})
        assert second.status_code == 200
        # Two rotations ago: a replay, which revokes the whole session.
        reuse = await journey.client.post(f"{API}/auth/refresh", json={"refresh_token": old})
        assert_problem(reuse, 401)
        latest = second.json()["refresh_token"]
        after = await journey.client.post(f"{API}/auth/refresh", json={"refresh_token": latest})
        assert_problem(after, 401)

    async def test_switch_tenant_is_no_store(self, journey: Journey) -> None:
        response = await journey.client.post(
            f"{API}/auth/switch-tenant",
            json={"tenant": journey.tenant["id"]},
            headers=journey.headers,
        )
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"

    async def test_switch_to_a_tenant_not_mine_is_404(self, journey: Journey) -> None:
        other = await Journey(journey.client).start()
        response = await journey.client.post(
            f"{API}/auth/switch-tenant",
            json={"tenant": other.tenant["slug"]},
            headers=journey.headers,
        )
        assert_problem(response, 404)

    async def test_logout_ends_only_this_session(self, journey: Journey) -> None:
        other = await tokens_for(journey.client, journey.user["username"])
        response = await journey.client.post(f"{API}/auth/logout", headers=journey.headers)
        assert response.status_code == 204 and response.content == b""
        assert_problem(await journey.client.get(f"{API}/users/me", headers=journey.headers), 401)
        refresh = await journey.client.post(
            f"{API}/auth/refresh", json={"refresh_token": journey.pair["refresh_token"]}
        )
        assert_problem(refresh, 401)
        still = await journey.client.get(f"{API}/users/me", headers=bearer(other["access_token"]))
        assert still.status_code == 200

    async def test_password_reset_request_is_202_for_anyone(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            f"{API}/auth/password-reset/request", json={"email": "nobody@example.com"}
        )
        assert response.status_code == 202

    async def test_me_has_memberships(self, journey: Journey) -> None:
        response = await journey.client.get(f"{API}/users/me", headers=journey.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["memberships"][0]["role"] == "owner"
        assert "password_hash" not in body


class TestTenants:
    async def test_create_tenant_without_a_tenant_bound_token(
        self, client: httpx.AsyncClient
    ) -> None:
        user = await sign_up(client)
        pair = await tokens_for(client, user["username"])
        assert claims(pair["access_token"])["tid"] is None
        response = await client.post(
            f"{API}/tenants",
            json={"name": "Solo", "slug": f"solo-{uuid.uuid4().hex[:6]}"},
            headers=bearer(pair["access_token"]),
        )
        assert response.status_code == 201
        assert response.json()["role"] == "owner"

    async def test_list_is_an_envelope(self, journey: Journey) -> None:
        response = await journey.client.get(f"{API}/tenants", headers=journey.headers)
        assert response.status_code == 200
        assert set(response.json()) == {"items", "next_cursor"}

    async def test_delete_is_202(self, journey: Journey) -> None:
        response = await journey.client.delete(f"{API}/tenant", headers=journey.headers)
        assert response.status_code == 202

    async def test_other_tenants_project_is_404(self, journey: Journey) -> None:
        project = await journey.project()
        other = await Journey(journey.client).start()
        response = await other.client.get(f"{API}/projects/{project['id']}", headers=other.headers)
        assert_problem(response, 404)


class TestSuspendedTenant:
    """A suspended tenant closes its tenant-scoped routes, not the person's own account."""

    @pytest.fixture
    async def suspended(self, journey: Journey, db: Database, settings: Settings) -> Journey:
        operator = await make_actor(db, settings, is_superuser=True)
        response = await journey.client.patch(
            f"{API}/admin/tenants/{journey.tenant['id']}",
            json={"status": "suspended"},
            headers=operator.headers,
        )
        assert response.status_code == 200, response.text
        return journey

    async def test_tenant_routes_are_403(self, suspended: Journey) -> None:
        response = await suspended.client.get(f"{API}/projects", headers=suspended.headers)
        assert_problem(response, 403)

    async def test_me_still_works(self, suspended: Journey) -> None:
        response = await suspended.client.get(f"{API}/users/me", headers=suspended.headers)
        assert response.status_code == 200, response.text

    async def test_list_tenants_still_works(self, suspended: Journey) -> None:
        response = await suspended.client.get(f"{API}/tenants", headers=suspended.headers)
        assert response.status_code == 200, response.text

    async def test_create_tenant_and_switch_still_work(self, suspended: Journey) -> None:
        slug = f"next-{uuid.uuid4().hex[:6]}"
        created = await suspended.client.post(
            f"{API}/tenants", json={"name": "Next", "slug": slug}, headers=suspended.headers
        )
        assert created.status_code == 201, created.text
        switched = await suspended.client.post(
            f"{API}/auth/switch-tenant", json={"tenant": slug}, headers=suspended.headers
        )
        assert switched.status_code == 200, switched.text

    async def test_logout_still_works(self, suspended: Journey) -> None:
        response = await suspended.client.post(f"{API}/auth/logout", headers=suspended.headers)
        assert response.status_code == 204, response.text


class TestDeletedTenant:
    async def test_me_still_works_after_deleting_the_bound_tenant(self, journey: Journey) -> None:
        assert (
            await journey.client.delete(f"{API}/tenant", headers=journey.headers)
        ).status_code == 202
        response = await journey.client.get(f"{API}/users/me", headers=journey.headers)
        assert response.status_code == 200, response.text
        gone = await journey.client.get(f"{API}/projects", headers=journey.headers)
        assert gone.status_code in (401, 403, 404)


class TestLists:
    async def test_default_limit_is_20_and_cursor_walks(self, journey: Journey) -> None:
        for index in range(21):
            await journey.project(f"P{index:02}")
        first = await journey.client.get(f"{API}/projects", headers=journey.headers)
        body = first.json()
        assert len(body["items"]) == 20 and body["next_cursor"]
        second = await journey.client.get(
            f"{API}/projects", params={"cursor": body["next_cursor"]}, headers=journey.headers
        )
        rest = second.json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None

    @pytest.mark.parametrize("limit", ["1", "100"])
    async def test_limit_bounds_are_accepted(self, journey: Journey, limit: str) -> None:
        response = await journey.client.get(
            f"{API}/projects", params={"limit": limit}, headers=journey.headers
        )
        assert response.status_code == 200


class TestInvitationsAndKeys:
    async def test_invite_is_201_without_the_token(self, journey: Journey) -> None:
        invite = await journey.client.post(
            f"{API}/invitations",
            json={"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "role": "member"},
            headers=journey.headers,
        )
        assert invite.status_code == 201, invite.text
        assert "token" not in invite.json()

    async def test_accept_is_200_and_grants_the_role(
        self, journey: Journey, db: Database, settings: Settings
    ) -> None:
        from tenantry.models import Tenant
        from tests.fixtures.tenancy import make_invitation

        invitee = await sign_up(journey.client)
        tenant = await db_tenant(db, journey.tenant["id"])
        _, token = await make_invitation(db, settings, tenant, email=invitee["email"])
        pair = await tokens_for(journey.client, invitee["username"])
        response = await journey.client.post(
            f"{API}/invitations/accept", json={"token": token}, headers=bearer(pair["access_token"])
        )
        assert response.status_code == 200, response.text
        assert response.json()["role"] == "member"
        assert isinstance(tenant, Tenant)

    async def test_api_key_is_shown_once_and_no_store(self, journey: Journey) -> None:
        created = await journey.client.post(
            f"{API}/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=journey.headers
        )
        assert created.status_code == 201
        assert created.headers["cache-control"] == "no-store"
        key = created.json()["key"]
        assert key.startswith("tnt_")
        listed = await journey.client.get(f"{API}/api-keys", headers=journey.headers)
        assert key not in listed.text
        by_header = await journey.client.get(f"{API}/projects", headers={"X-API-Key": key})
        assert by_header.status_code == 200
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            assert name in by_header.headers
        write = await journey.client.post(
            f"{API}/projects", json={"name": "x"}, headers={"X-API-Key": key}
        )
        assert_problem(write, 403)

    async def test_api_key_replay_is_still_no_store(self, journey: Journey) -> None:
        headers = {**journey.headers, "Idempotency-Key": uuid.uuid4().hex}
        body = {"name": "ci", "scopes": ["read"]}
        await journey.client.post(f"{API}/api-keys", json=body, headers=headers)
        again = await journey.client.post(f"{API}/api-keys", json=body, headers=headers)
        assert again.status_code == 201
        assert again.headers["cache-control"] == "no-store"


class TestIdempotency:
    async def test_replay_of_a_201_creates_nothing(self, journey: Journey) -> None:
        headers = {**journey.headers, "Idempotency-Key": uuid.uuid4().hex}
        first = await journey.client.post(f"{API}/projects", json={"name": "A"}, headers=headers)
        again = await journey.client.post(f"{API}/projects", json={"name": "A"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert_shell(again)
        listed = await journey.client.get(f"{API}/projects", headers=journey.headers)
        assert len(listed.json()["items"]) == 1

    async def test_same_key_other_body_is_422(self, journey: Journey) -> None:
        headers = {**journey.headers, "Idempotency-Key": uuid.uuid4().hex}
        await journey.client.post(f"{API}/projects", json={"name": "A"}, headers=headers)
        other = await journey.client.post(f"{API}/projects", json={"name": "B"}, headers=headers)
        assert_problem(other, 422)


class TestReports:
    async def test_queued_with_location_and_409_until_done(self, journey: Journey) -> None:
        response = await journey.client.post(
            f"{API}/reports",
            json={"kind": "tasks", "format": "csv", "params": {}},
            headers=journey.headers,
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["location"].endswith(f"/api/v1/reports/{body['id']}")
        status = await journey.client.get(f"{API}/reports/{body['id']}", headers=journey.headers)
        assert status.json()["status"] == "queued"
        download = await journey.client.get(
            f"{API}/reports/{body['id']}/download", headers=journey.headers
        )
        assert_problem(download, 409)


class TestExport:
    async def test_tasks_csv(self, journey: Journey) -> None:
        project = await journey.project()
        created = await journey.client.post(
            f"{API}/projects/{project['id']}/tasks", json={"title": "T1"}, headers=journey.headers
        )
        assert created.status_code == 201
        response = await journey.client.get(f"{API}/exports/tasks.csv", headers=journey.headers)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "T1" in response.text
