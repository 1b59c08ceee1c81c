"""Tasks over HTTP: CRUD, validation, the BOLA matrix, keyset walks, filters, ETags."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Membership, Project, Role, Task, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant, make_user
from tests.fixtures.tenant_data import make_project, make_tasks

SORTS = ["created_at", "-created_at", "due_date", "-due_date", "priority", "-priority"]


@pytest.fixture
async def project(db: Database, tenant: Tenant) -> Project:
    return await make_project(db, tenant)


def _tasks_url(project: Project | uuid.UUID) -> str:
    pid = project.id if isinstance(project, Project) else project
    return f"/api/v1/projects/{pid}/tasks"


class TestCreateTask:
    async def test_defaults_location_and_audit(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        project: Project,
        db: Database,
        tenant: Tenant,
    ) -> None:
        response = await client.post(
            _tasks_url(project), json={"title": "Write tests"}, headers=owner.headers
        )
        assert response.status_code == 201
        body = response.json()
        assert body["title"] == "Write tests"
        assert body["status"] == "todo"
        assert body["priority"] == 2
        assert body["project_id"] == str(project.id)
        assert body["assignee_id"] is None
        assert body["due_date"] is None
        assert response.headers["location"] == f"/api/v1/tasks/{body['id']}"
        async with db.session_scope(tenant.id) as session:
            actions = (await session.execute(sa.select(AuditEvent.action))).scalars().all()  # type: ignore[call-overload]
        assert "task.created" in actions

    async def test_all_fields(
        self, client: httpx.AsyncClient, owner: Actor, project: Project
    ) -> None:
        payload = {
            "title": "Ship",
            "description": "v1",
            "status": "doing",
            "priority": 4,
            "assignee_id": str(owner.user.id),
            "due_date": "2027-03-01",
        }
        response = await client.post(_tasks_url(project), json=payload, headers=owner.headers)
        assert response.status_code == 201
        body = response.json()
        assert {k: body[k] for k in payload} == payload

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({}, "body.title"),
            ({"title": ""}, "body.title"),
            ({"title": "x" * 201}, "body.title"),
            ({"title": "t", "status": "blocked"}, "body.status"),
            ({"title": "t", "priority": 0}, "body.priority"),
            ({"title": "t", "priority": 5}, "body.priority"),
            ({"title": "t", "due_date": "tomorrow"}, "body.due_date"),
            ({"title": "t", "assignee_id": "nobody"}, "body.assignee_id"),
            ({"title": "t", "project_id": str(uuid.uuid4())}, "body.project_id"),
        ],
    )
    async def test_invalid_is_422(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        project: Project,
        payload: dict,
        field: str,
    ) -> None:
        response = await client.post(_tasks_url(project), json=payload, headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field

    async def test_assignee_must_be_a_member(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        stranger = await make_user(db)
        response = await client.post(
            _tasks_url(project),
            json={"title": "t", "assignee_id": str(stranger.id)},
            headers=owner.headers,
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"field": "body.assignee_id", "message": "assignee_id must be a member of this tenant"}
        ]

    async def test_member_of_another_tenant_is_not_assignable(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        project: Project,
        db: Database,
        settings: Settings,
    ) -> None:
        elsewhere = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        response = await client.post(
            _tasks_url(project),
            json={"title": "t", "assignee_id": str(elsewhere.user.id)},
            headers=owner.headers,
        )
        assert response.status_code == 422

    async def test_unknown_project_with_a_stranger_assigned_is_404_not_422(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        """Both foreign keys fail; the missing project decides, whatever order the
        database checks them in (Citus's shards check the assignee first)."""
        response = await client.post(
            _tasks_url(uuid.uuid4()),
            json={"title": "t", "assignee_id": str(uuid.uuid4())},
            headers=owner.headers,
        )
        assert response.status_code == 404

    async def test_unknown_project_is_404(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            _tasks_url(uuid.uuid4()), json={"title": "t"}, headers=owner.headers
        )
        assert response.status_code == 404

    async def test_viewer_cannot_create(
        self,
        client: httpx.AsyncClient,
        project: Project,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.post(
            _tasks_url(project), json={"title": "t"}, headers=viewer.headers
        )
        assert response.status_code == 403


class TestGetUpdateDeleteTask:
    async def test_get_with_etag_and_304(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        response = await client.get(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        assert response.status_code == 200
        assert response.json()["id"] == str(task.id)
        etag = response.headers["etag"]
        again = await client.get(
            f"/api/v1/tasks/{task.id}", headers={**owner.headers, "If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

    async def test_patch_returns_new_etag_and_next_get_sees_it(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        url = f"/api/v1/tasks/{task.id}"
        before = await client.get(url, headers=owner.headers)
        patched = await client.patch(
            url, json={"status": "done", "priority": 1}, headers=owner.headers
        )
        assert patched.status_code == 200
        assert patched.json()["status"] == "done"
        assert patched.headers["etag"] != before.headers["etag"]
        after = await client.get(
            url, headers={**owner.headers, "If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200
        assert after.json()["status"] == "done"
        assert after.headers["etag"] == patched.headers["etag"]

    async def test_patch_can_clear_nullable_fields(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        (task,) = await make_tasks(
            db, project, 1, description="d", due_date=date(2027, 1, 2), assignee_id=owner.user.id
        )
        response = await client.patch(
            f"/api/v1/tasks/{task.id}",
            json={"description": None, "due_date": None, "assignee_id": None},
            headers=owner.headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["description"], body["due_date"], body["assignee_id"]) == (None, None, None)

    @pytest.mark.parametrize("field", ["title", "status", "priority"])
    async def test_patch_null_required_field_is_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database, field: str
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        response = await client.patch(
            f"/api/v1/tasks/{task.id}", json={field: None}, headers=owner.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == f"body.{field}"

    async def test_patch_non_member_assignee_is_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        stranger = await make_user(db)
        response = await client.patch(
            f"/api/v1/tasks/{task.id}",
            json={"assignee_id": str(stranger.id)},
            headers=owner.headers,
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.assignee_id"

    async def test_delete(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        response = await client.delete(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        assert response.status_code == 204
        gone = await client.get(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        assert gone.status_code == 404

    async def test_malformed_id_is_422(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.get("/api/v1/tasks/123", headers=owner.headers)
        assert response.status_code == 422

    @pytest.mark.parametrize(("method", "body"), [("PATCH", {"title": "x"}), ("DELETE", None)])
    async def test_viewer_cannot_write(
        self,
        client: httpx.AsyncClient,
        project: Project,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        method: str,
        body: dict | None,
    ) -> None:
        (task,) = await make_tasks(db, project, 1)
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        url = f"/api/v1/tasks/{task.id}"
        response = await client.request(method, url, json=body, headers=viewer.headers)
        assert response.status_code == 403
        assert (await client.get(url, headers=viewer.headers)).json()["title"] == task.title

    async def test_removing_a_member_unassigns_their_tasks(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        project: Project,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        (task,) = await make_tasks(db, project, 1, assignee_id=member.user.id)
        url = f"/api/v1/tasks/{task.id}"
        assert (await client.get(url, headers=owner.headers)).json()["assignee_id"] == str(
            member.user.id
        )
        removed = await client.delete(f"/api/v1/members/{member.user.id}", headers=owner.headers)
        assert removed.status_code == 204, removed.text
        async with db.session_scope(tenant.id) as session:
            stored = await session.get(Task, {"tenant_id": tenant.id, "id": task.id})
            assert stored is not None
            assert stored.assignee_id is None
            assert stored.tenant_id == tenant.id
        assert (await client.get(url, headers=owner.headers)).json()["assignee_id"] is None

    async def test_the_database_refuses_to_drop_an_assigned_membership(
        self, project: Project, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        """No ON DELETE SET NULL (Citus refuses it): only the members service, which
        unassigns first, can remove a member who still has tasks."""
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        await make_tasks(db, project, 1, assignee_id=member.user.id)
        with pytest.raises(sa.exc.IntegrityError, match="fk_tasks_assignee_membership"):
            async with db.session_scope(tenant.id) as session:
                await session.execute(
                    sa.delete(Membership).where(
                        col(Membership.tenant_id) == tenant.id,
                        col(Membership.user_id) == member.user.id,
                    )
                )


class TestOtherTenant:
    """The BOLA matrix: tenant A's credential against tenant B's ids."""

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", "/api/v1/tasks/{task}", None),
            ("PATCH", "/api/v1/tasks/{task}", {"title": "Hijacked"}),
            ("DELETE", "/api/v1/tasks/{task}", None),
            ("GET", "/api/v1/projects/{project}/tasks", None),
            ("POST", "/api/v1/projects/{project}/tasks", {"title": "Planted"}),
            ("GET", "/api/v1/projects/{project}", None),
            ("PATCH", "/api/v1/projects/{project}", {"name": "Hijacked"}),
            ("DELETE", "/api/v1/projects/{project}", None),
        ],
    )
    async def test_is_404_like_missing_and_b_unchanged(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        method: str,
        path: str,
        body: dict | None,
    ) -> None:
        victim = await make_tenant(db)
        victim_owner = await make_actor(db, settings, tenant=victim, role=Role.OWNER)
        their_project = await make_project(db, victim, name="Theirs")
        (their_task,) = await make_tasks(db, their_project, 1, title="Secret")
        # B reads its own objects first, so they sit in B's cache too.
        await client.get(f"/api/v1/tasks/{their_task.id}", headers=victim_owner.headers)
        await client.get(_tasks_url(their_project), headers=victim_owner.headers)

        url = path.format(task=their_task.id, project=their_project.id)
        missing = path.format(task=uuid.uuid4(), project=uuid.uuid4())
        response = await client.request(method, url, json=body, headers=owner.headers)
        baseline = await client.request(method, missing, json=body, headers=owner.headers)
        assert response.status_code == 404
        assert response.json() == baseline.json()

        task_view = await client.get(f"/api/v1/tasks/{their_task.id}", headers=victim_owner.headers)
        assert task_view.json()["title"] == "Secret"
        listed = await client.get(_tasks_url(their_project), headers=victim_owner.headers)
        assert [t["id"] for t in listed.json()["items"]] == [str(their_task.id)]
        project_view = await client.get(
            f"/api/v1/projects/{their_project.id}", headers=victim_owner.headers
        )
        assert project_view.json()["name"] == "Theirs"


async def _walk(
    client: httpx.AsyncClient,
    actor: Actor,
    project: Project,
    params: dict[str, Any],
    *,
    between_pages: Any = None,
) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(_tasks_url(project), params=query, headers=actor.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params.get("limit", 20)
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        if between_pages is not None:
            await between_pages()
    raise AssertionError("pagination did not end")


def _sort_key(sort: str) -> Any:
    field = sort.lstrip("-")
    descending = sort.startswith("-")

    def key(task: dict) -> tuple:
        value = task[field]
        # Undated tasks come last in both directions; ties break on id.
        missing = value is None
        return (missing, value if not missing else "", task["id"])

    if not descending:
        return key
    return lambda task: _Reversed(key(task))


class _Reversed:
    def __init__(self, key: tuple) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        # Descending on value and id, but "missing" still sorts last.
        (m1, v1, i1), (m2, v2, i2) = self.key, other.key
        if m1 != m2:
            return m1 < m2
        return (v1, i1) > (v2, i2)


class TestListTasks:
    @pytest.mark.parametrize("sort", SORTS)
    async def test_walks_every_row_once_while_rows_are_inserted(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database, sort: str
    ) -> None:
        # Ties on priority and due date (and a shared created_at) make `id` break them.
        original = await make_tasks(db, project, 23)
        inserted: list[Task] = []

        async def insert() -> None:
            inserted.extend(await make_tasks(db, project, 2))

        seen = await _walk(client, owner, project, {"sort": sort, "limit": 4}, between_pages=insert)
        ids = [t["id"] for t in seen]
        assert len(ids) == len(set(ids)), "a row was served twice"
        assert {str(t.id) for t in original} <= set(ids), "a row was skipped"
        assert set(ids) <= {str(t.id) for t in original + inserted}
        assert seen == sorted(seen, key=_sort_key(sort))

    async def test_default_is_newest_first(
        self, client: httpx.AsyncClient, owner: Actor, project: Project
    ) -> None:
        for title in ("first", "second", "third"):
            await client.post(_tasks_url(project), json={"title": title}, headers=owner.headers)
        response = await client.get(_tasks_url(project), headers=owner.headers)
        assert [t["title"] for t in response.json()["items"]] == ["third", "second", "first"]

    async def test_cursor_of_another_sort_is_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, db: Database
    ) -> None:
        await make_tasks(db, project, 3)
        page = await client.get(
            _tasks_url(project), params={"limit": 1, "sort": "priority"}, headers=owner.headers
        )
        response = await client.get(
            _tasks_url(project),
            params={"limit": 1, "sort": "due_date", "cursor": page.json()["next_cursor"]},
            headers=owner.headers,
        )
        assert response.status_code == 422

    @pytest.mark.parametrize(
        "values",
        [
            ["-created_at", "2026-12-02T05:37:16.966493+00:00", {"a": 1}],
            ["-created_at", "2026-12-02T05:37:16", str(uuid.uuid4())],
            ["-created_at", "0001-01-01T00:00:00+05:00", str(uuid.uuid4())],
            ["-created_at", None, str(uuid.uuid4())],
            ["priority", 2**70, str(uuid.uuid4())],
            ["priority", True, str(uuid.uuid4())],
            ["priority", "2", str(uuid.uuid4())],
            ["due_date", "2026-13-01", str(uuid.uuid4())],
            ["due_date", ["2026-01-01"], str(uuid.uuid4())],
            ["-created_at", "2026-12-02T05:37:16+00:00\u0000", str(uuid.uuid4())],
        ],
    )
    async def test_tampered_cursor_is_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, values: list[Any]
    ) -> None:
        sort = values[0]
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
        response = await client.get(
            _tasks_url(project), params={"sort": sort, "cursor": cursor}, headers=owner.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "query.cursor"

    @pytest.mark.parametrize("sort", ["title", "created", "--priority", "id"])
    async def test_unknown_sort_is_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project, sort: str
    ) -> None:
        response = await client.get(
            _tasks_url(project), params={"sort": sort}, headers=owner.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.sort"

    async def test_filters(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        project: Project,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        await make_tasks(db, project, 1, title="Paint the fence", status="done")
        await make_tasks(
            db, project, 1, title="Buy paint", description="white", assignee_id=member.user.id
        )
        await make_tasks(db, project, 1, title="Mow", description="Use the PAINTed mower")
        await make_tasks(db, project, 1, title="Other", assignee_id=member.user.id)

        async def titles(**params: str) -> set[str]:
            response = await client.get(_tasks_url(project), params=params, headers=owner.headers)
            assert response.status_code == 200
            return {t["title"] for t in response.json()["items"]}

        assert await titles(status="done") == {"Paint the fence"}
        assert await titles(assignee_id=str(member.user.id)) == {"Buy paint", "Other"}
        assert await titles(q="paint") == {"Paint the fence", "Buy paint", "Mow"}
        assert await titles(q="paint", status="todo") == {"Buy paint", "Mow"}
        assert await titles(q="paint", assignee_id=str(member.user.id)) == {"Buy paint"}
        assert await titles(q="zzz") == set()

    async def test_bad_filter_values_are_422(
        self, client: httpx.AsyncClient, owner: Actor, project: Project
    ) -> None:
        for params in ({"status": "open"}, {"assignee_id": "me"}, {"q": "x" * 201}):
            response = await client.get(_tasks_url(project), params=params, headers=owner.headers)
            assert response.status_code == 422, params

    async def test_unknown_project_is_404_and_empty_project_is_empty(
        self, client: httpx.AsyncClient, owner: Actor, project: Project
    ) -> None:
        missing = await client.get(_tasks_url(uuid.uuid4()), headers=owner.headers)
        assert missing.status_code == 404
        empty = await client.get(_tasks_url(project), headers=owner.headers)
        assert empty.json() == {"items": [], "next_cursor": None}

    async def test_list_sees_writes_at_once(
        self, client: httpx.AsyncClient, owner: Actor, project: Project
    ) -> None:
        url = _tasks_url(project)
        assert (await client.get(url, headers=owner.headers)).json()["items"] == []
        created = (await client.post(url, json={"title": "a"}, headers=owner.headers)).json()
        assert [
            t["title"] for t in (await client.get(url, headers=owner.headers)).json()["items"]
        ] == ["a"]
        await client.patch(
            f"/api/v1/tasks/{created['id']}", json={"title": "b"}, headers=owner.headers
        )
        assert [
            t["title"] for t in (await client.get(url, headers=owner.headers)).json()["items"]
        ] == ["b"]
        await client.delete(f"/api/v1/tasks/{created['id']}", headers=owner.headers)
        assert (await client.get(url, headers=owner.headers)).json()["items"] == []
