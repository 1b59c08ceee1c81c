"""Projects over HTTP: CRUD, validation, roles, tenant isolation, lists, ETags, cache."""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Project, Role, Task, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenant_data import make_project, make_tasks

API = "/api/v1/projects"


async def _audit_actions(db: Database, tenant: Tenant) -> list[str]:
    async with db.session_scope(tenant.id) as session:
        rows = await session.execute(
            sa.select(AuditEvent.action).order_by(AuditEvent.created_at)  # type: ignore[arg-type]
        )
        return list(rows.scalars())


class TestCreateProject:
    async def test_created_with_location_and_etag(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        response = await client.post(
            API, json={"name": "Apollo", "description": "Moon"}, headers=owner.headers
        )
        assert response.status_code == 201
        body = response.json()
        assert body["name"] == "Apollo"
        assert body["description"] == "Moon"
        assert set(body) == {"id", "name", "description", "created_at", "updated_at"}
        assert response.headers["location"] == f"{API}/{body['id']}"
        assert response.headers["etag"].startswith('"')
        assert "project.created" in await _audit_actions(db, tenant)

    async def test_description_is_optional(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(API, json={"name": "Solo"}, headers=owner.headers)
        assert response.status_code == 201
        assert response.json()["description"] is None

    @pytest.mark.parametrize(
        "body",
        [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": None}, {"name": 5}],
    )
    async def test_invalid_name_is_422(
        self, client: httpx.AsyncClient, owner: Actor, body: dict
    ) -> None:
        response = await client.post(API, json=body, headers=owner.headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == "body.name"

    async def test_name_of_200_is_accepted(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(API, json={"name": "x" * 200}, headers=owner.headers)
        assert response.status_code == 201

    @pytest.mark.parametrize("field", ["tenant_id", "id", "created_at"])
    async def test_mass_assignment_is_422(
        self, client: httpx.AsyncClient, owner: Actor, field: str
    ) -> None:
        other = str(uuid.uuid4())
        response = await client.post(
            API, json={"name": "Sneaky", field: other}, headers=owner.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == f"body.{field}"

    async def test_viewer_cannot_create(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.post(API, json={"name": "Nope"}, headers=viewer.headers)
        assert response.status_code == 403

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post(API, json={"name": "Nope"})
        assert response.status_code == 401


class TestGetProject:
    async def test_found_with_etag(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant, name="Gemini")
        response = await client.get(f"{API}/{project.id}", headers=owner.headers)
        assert response.status_code == 200
        assert response.json()["name"] == "Gemini"
        assert response.headers["etag"]

    async def test_if_none_match_is_304_without_body(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        first = await client.get(f"{API}/{project.id}", headers=owner.headers)
        etag = first.headers["etag"]
        again = await client.get(
            f"{API}/{project.id}", headers={**owner.headers, "If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

    async def test_stale_if_none_match_is_200(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        response = await client.get(
            f"{API}/{project.id}", headers={**owner.headers, "If-None-Match": '"stale"'}
        )
        assert response.status_code == 200

    async def test_missing_is_404(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.get(f"{API}/{uuid.uuid4()}", headers=owner.headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_malformed_id_is_422(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.get(f"{API}/not-a-uuid", headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "path.id"

    async def test_viewer_can_read(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.get(f"{API}/{project.id}", headers=viewer.headers)
        assert response.status_code == 200


class TestUpdateProject:
    async def test_patch_changes_only_sent_fields_and_etag(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant, name="Old", description="Keep")
        before = await client.get(f"{API}/{project.id}", headers=owner.headers)
        response = await client.patch(
            f"{API}/{project.id}", json={"name": "New"}, headers=owner.headers
        )
        assert response.status_code == 200
        assert response.json()["name"] == "New"
        assert response.json()["description"] == "Keep"
        assert response.headers["etag"] != before.headers["etag"]
        after = await client.get(f"{API}/{project.id}", headers=owner.headers)
        assert after.json()["name"] == "New"
        assert after.headers["etag"] == response.headers["etag"]
        old = await client.get(
            f"{API}/{project.id}",
            headers={**owner.headers, "If-None-Match": before.headers["etag"]},
        )
        assert old.status_code == 200
        assert "project.updated" in await _audit_actions(db, tenant)

    async def test_description_can_be_cleared(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant, description="Gone soon")
        response = await client.patch(
            f"{API}/{project.id}", json={"description": None}, headers=owner.headers
        )
        assert response.status_code == 200
        assert response.json()["description"] is None

    async def test_null_name_is_422(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        response = await client.patch(
            f"{API}/{project.id}", json={"name": None}, headers=owner.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.name"

    async def test_viewer_cannot_patch(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant, name="Same")
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.patch(
            f"{API}/{project.id}", json={"name": "Changed"}, headers=viewer.headers
        )
        assert response.status_code == 403


class TestDeleteProject:
    async def test_deletes_project_and_its_tasks(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant)
        await make_tasks(db, project, 3)
        response = await client.delete(f"{API}/{project.id}", headers=owner.headers)
        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(f"{API}/{project.id}", headers=owner.headers)).status_code == 404
        async with db.session_scope(tenant.id) as session:
            left = await session.execute(
                sa.select(sa.func.count()).select_from(Task).where(Task.project_id == project.id)  # type: ignore[arg-type]
            )
            assert left.scalar() == 0
        assert "project.deleted" in await _audit_actions(db, tenant)

    async def test_missing_is_404(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.delete(f"{API}/{uuid.uuid4()}", headers=owner.headers)
        assert response.status_code == 404


class TestOtherTenant:
    """Tenant A's owner against tenant B's project: every verb answers as if missing."""

    @pytest.mark.parametrize(
        ("method", "body"), [("GET", None), ("PATCH", {"name": "Hijacked"}), ("DELETE", None)]
    )
    async def test_is_404_and_untouched(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        method: str,
        body: dict | None,
    ) -> None:
        victim = await make_tenant(db)
        project = await make_project(db, victim, name="Theirs")
        missing = await client.request(
            method, f"{API}/{uuid.uuid4()}", json=body, headers=owner.headers
        )
        response = await client.request(
            method, f"{API}/{project.id}", json=body, headers=owner.headers
        )
        assert response.status_code == 404
        assert response.json() == missing.json()
        async with db.session_scope(victim.id) as session:
            stored = await session.get(Project, project.id)
            assert stored is not None
            assert stored.name == "Theirs"

    async def test_list_shows_only_own(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        mine = await make_project(db, tenant)
        await make_project(db, await make_tenant(db))
        response = await client.get(API, headers=owner.headers)
        assert [p["id"] for p in response.json()["items"]] == [str(mine.id)]


class TestListProjects:
    async def test_newest_first_with_cursor(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        for index in range(5):
            await make_project(db, tenant, name=f"P{index}")
        first = await client.get(API, params={"limit": 3}, headers=owner.headers)
        assert first.status_code == 200
        page = first.json()
        assert [p["name"] for p in page["items"]] == ["P4", "P3", "P2"]
        second = await client.get(
            API, params={"limit": 3, "cursor": page["next_cursor"]}, headers=owner.headers
        )
        assert [p["name"] for p in second.json()["items"]] == ["P1", "P0"]
        assert second.json()["next_cursor"] is None

    async def test_q_matches_name_substring_case_insensitively(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        await make_project(db, tenant, name="Mars Rover")
        await make_project(db, tenant, name="Lunar Lander")
        await make_project(db, tenant, name="100% done_ish")
        rover = await client.get(API, params={"q": "ROVER"}, headers=owner.headers)
        assert [p["name"] for p in rover.json()["items"]] == ["Mars Rover"]
        literal = await client.get(API, params={"q": "0%"}, headers=owner.headers)
        assert [p["name"] for p in literal.json()["items"]] == ["100% done_ish"]
        underscore = await client.get(API, params={"q": "_"}, headers=owner.headers)
        assert [p["name"] for p in underscore.json()["items"]] == ["100% done_ish"]

    @pytest.mark.parametrize("limit", [0, 101, "x"])
    async def test_bad_limit_is_422(
        self, client: httpx.AsyncClient, owner: Actor, limit: object
    ) -> None:
        response = await client.get(API, params={"limit": limit}, headers=owner.headers)
        assert response.status_code == 422

    @pytest.mark.parametrize("cursor", ["garbage", "WyJ4Il0", "W10"])
    async def test_bad_cursor_is_422(
        self, client: httpx.AsyncClient, owner: Actor, cursor: str
    ) -> None:
        response = await client.get(API, params={"cursor": cursor}, headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.cursor"

    async def test_create_is_visible_in_the_next_list(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        assert (await client.get(API, headers=owner.headers)).json()["items"] == []
        created = await client.post(API, json={"name": "Fresh"}, headers=owner.headers)
        listed = await client.get(API, headers=owner.headers)
        assert [p["id"] for p in listed.json()["items"]] == [created.json()["id"]]
