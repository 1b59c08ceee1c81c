"""HTTP details the contract promises: `Allow` on 405, `Location` on every 201, no
content type on 204, bodies in the wrong media type, strict JSON types, and the login
limit per address and username with a ten times larger per-address ceiling."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tenantry.config import Settings
from tests.fixtures.accounts import PASSWORD, bearer, sign_up, tokens_for
from tests.fixtures.factories import Actor

API = "/api/v1"


def _allow(response: httpx.Response) -> set[str]:
    assert response.status_code == 405, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {method.strip() for method in response.headers["allow"].split(",")}


class TestMethodNotAllowed:
    async def test_allow_lists_every_method_of_the_resource(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        url = f"{API}/tasks/{uuid.uuid4()}"
        allowed = _allow(await client.request("OPTIONS", url, headers=owner.headers))
        assert allowed == {"GET", "HEAD", "PATCH", "DELETE"}
        assert _allow(await client.put(f"{API}/projects", headers=owner.headers)) == {
            "GET",
            "HEAD",
            "POST",
        }

    async def test_a_literal_path_is_its_own_resource(self, client: httpx.AsyncClient) -> None:
        # Not `/invitations/{invitation_id}` with the id "accept".
        assert _allow(await client.delete(f"{API}/invitations/accept")) == {"POST"}


class TestCreatedHasLocation:
    async def test_every_201_says_where_the_object_lives(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        user = await client.post(
            f"{API}/users/",
            json={
                "email": f"loc-{uuid.uuid4().hex[:8]}@example.com",
                "username": f"loc_{uuid.uuid4().hex[:8]}",
                "password": PASSWORD,
            },
        )
        assert user.status_code == 201
        assert user.headers["location"] == f"{API}/users/me"

        slug = f"loc-{uuid.uuid4().hex[:8]}"
        tenant = await client.post(
            f"{API}/tenants", json={"name": "Located", "slug": slug}, headers=owner.headers
        )
        assert tenant.status_code == 201
        fetched = await client.get(tenant.headers["location"], headers=owner.headers)
        assert fetched.status_code == 200
        assert fetched.json() == tenant.json()

        invitation = await client.post(
            f"{API}/invitations", json={"email": "someone@example.com"}, headers=owner.headers
        )
        assert invitation.status_code == 201
        assert invitation.headers["location"] == f"{API}/invitations/{invitation.json()['id']}"

        key = await client.post(
            f"{API}/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=owner.headers
        )
        assert key.status_code == 201
        assert key.headers["location"] == f"{API}/api-keys/{key.json()['id']}"

        project = await client.post(f"{API}/projects", json={"name": "P"}, headers=owner.headers)
        assert project.headers["location"] == f"{API}/projects/{project.json()['id']}"
        task = await client.post(
            f"{project.headers['location']}/tasks", json={"title": "T"}, headers=owner.headers
        )
        assert task.headers["location"] == f"{API}/tasks/{task.json()['id']}"

    async def test_another_persons_tenant_is_404(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        assert owner.tenant is not None
        stranger = await sign_up(client)
        pair = await tokens_for(client, stranger["username"])
        response = await client.get(
            f"{API}/tenants/{owner.tenant.id}", headers=bearer(pair["access_token"])
        )
        assert response.status_code == 404


async def test_no_content_has_no_content_type(client: httpx.AsyncClient, owner: Actor) -> None:
    project = await client.post(f"{API}/projects", json={"name": "Gone"}, headers=owner.headers)
    response = await client.delete(project.headers["location"], headers=owner.headers)
    assert response.status_code == 204
    assert "content-type" not in response.headers
    assert response.content == b""


class TestMediaTypes:
    async def test_json_sent_to_the_login_form_says_a_form_is_expected(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            f"{API}/auth/login", json={"username": "someone", "password": PASSWORD}
        )
        assert response.status_code == 422
        body = response.json()
        assert body["errors"] == [{"field": "body", "message": body["detail"]}]
        assert "application/x-www-form-urlencoded" in body["detail"]
        assert "application/json" in body["detail"]

    async def test_a_form_sent_to_a_json_route_says_json_is_expected(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        response = await client.post(
            f"{API}/projects", data={"name": "Form"}, headers=owner.headers
        )
        assert response.status_code == 422
        body = response.json()
        assert "Content-Type: application/json" in body["detail"]
        assert body["errors"][0]["field"] == "body"

    async def test_unreadable_json_is_422_naming_the_body(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        response = await client.post(
            f"{API}/projects",
            content=b'{"name": "\xff\xfe',
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body"


class TestStrictTypes:
    @pytest.mark.parametrize("priority", [True, 2.0, "2"])
    async def test_priority_must_be_an_integer(
        self, client: httpx.AsyncClient, owner: Actor, priority: object
    ) -> None:
        project = await client.post(f"{API}/projects", json={"name": "P"}, headers=owner.headers)
        response = await client.post(
            f"{project.headers['location']}/tasks",
            json={"title": "T", "priority": priority},
            headers=owner.headers,
        )
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["body.priority"]


class TestLoginLimit:
    async def test_one_username_locked_out_does_not_lock_out_the_address(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        assert settings.rate_limit_login == 10
        assert settings.rate_limit_login_ip == 100
        victim = await sign_up(client)
        colleague = await sign_up(client)
        for _ in range(10):
            wrong = await client.post(
                f"{API}/auth/login", data={"username": victim["username"], "password": "x"}
            )
            assert wrong.status_code == 401
        refused = await client.post(
            f"{API}/auth/login", data={"username": victim["username"], "password": PASSWORD}
        )
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        # Same address (an office NAT), another person: still let in.
        other = await client.post(
            f"{API}/auth/login", data={"username": colleague["username"], "password": PASSWORD}
        )
        assert other.status_code == 200, other.text
