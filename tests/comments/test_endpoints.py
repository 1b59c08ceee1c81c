"""Comments over HTTP: who writes, reads and deletes; the list; attackers from another tenant."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Comment, Role, Task, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenancy import make_api_key
from tests.fixtures.tenant_data import make_project, make_tasks


@pytest.fixture
async def task(db: Database, tenant: Tenant) -> Task:
    return (await make_tasks(db, await make_project(db, tenant), 1))[0]


@pytest.fixture
async def member(db: Database, settings: Settings, tenant: Tenant) -> Actor:
    return await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)


@pytest.fixture
async def intruder(db: Database, settings: Settings) -> Actor:
    return await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)


def _url(task: Task | uuid.UUID) -> str:
    return f"/api/v1/tasks/{task.id if isinstance(task, Task) else task}/comments"


async def _comment(client: httpx.AsyncClient, actor: Actor, task: Task, body: str = "Hi") -> str:
    response = await client.post(_url(task), json={"body": body}, headers=actor.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _actions(db: Database, tenant: Tenant) -> list[str]:
    async with db.session_scope(tenant.id) as session:
        stmt = sa.select(AuditEvent.action)  # type: ignore[call-overload]
        return list((await session.execute(stmt)).scalars().all())


class TestCreateComment:
    async def test_member_comments_as_themselves(
        self, client: httpx.AsyncClient, member: Actor, task: Task, db: Database, tenant: Tenant
    ) -> None:
        response = await client.post(
            _url(task), json={"body": "Looks good"}, headers=member.headers
        )
        assert response.status_code == 201
        body = response.json()
        assert body["body"] == "Looks good"
        assert body["task_id"] == str(task.id)
        assert body["author_id"] == str(member.user.id)
        assert uuid.UUID(body["id"]) and body["created_at"]
        assert "comment.created" in await _actions(db, tenant)

    @pytest.mark.parametrize(
        ("length", "status"), [(0, 422), (1, 201), (10_000, 201), (10_001, 422)]
    )
    async def test_body_is_1_to_10000_characters(
        self, client: httpx.AsyncClient, owner: Actor, task: Task, length: int, status: int
    ) -> None:
        response = await client.post(_url(task), json={"body": "x" * length}, headers=owner.headers)
        assert response.status_code == status
        if status == 422:
            assert response.json()["errors"][0]["field"] == "body.body"

    async def test_unknown_fields_are_refused(
        self, client: httpx.AsyncClient, owner: Actor, task: Task
    ) -> None:
        response = await client.post(
            _url(task), json={"body": "x", "author_id": str(uuid.uuid4())}, headers=owner.headers
        )
        assert response.status_code == 422

    async def test_viewer_may_not_write(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        task: Task,
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.post(_url(task), json={"body": "x"}, headers=viewer.headers)
        assert response.status_code == 403

    @pytest.mark.parametrize("scopes", [("read",), ("read", "write")])
    async def test_api_keys_may_not_write(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        task: Task,
        scopes: tuple[str, ...],
    ) -> None:
        _, key = await make_api_key(db, settings, tenant, scopes=scopes)
        response = await client.post(_url(task), json={"body": "x"}, headers={"X-API-Key": key})
        assert response.status_code == 403

    async def test_another_tenants_task_is_404(
        self, client: httpx.AsyncClient, intruder: Actor, task: Task, db: Database, tenant: Tenant
    ) -> None:
        response = await client.post(_url(task), json={"body": "x"}, headers=intruder.headers)
        assert response.status_code == 404
        async with db.session_scope(tenant.id) as session:
            stmt = sa.select(sa.func.count()).select_from(Comment)
            assert (await session.execute(stmt)).scalar_one() == 0

    async def test_missing_task_is_404(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(_url(uuid.uuid4()), json={"body": "x"}, headers=owner.headers)
        assert response.status_code == 404


class TestListComments:
    async def test_oldest_first_page_by_page(
        self, client: httpx.AsyncClient, member: Actor, owner: Actor, task: Task
    ) -> None:
        ids = [await _comment(client, (member, owner)[i % 2], task, f"c{i}") for i in range(5)]
        seen: list[str] = []
        cursor = None
        for _ in range(5):
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(_url(task), params=params, headers=member.headers)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids

    async def test_viewers_and_read_keys_read(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        owner: Actor,
        task: Task,
    ) -> None:
        await _comment(client, owner, task)
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        _, key = await make_api_key(db, settings, tenant, scopes=("read",))
        for headers in (viewer.headers, {"X-API-Key": key}):
            response = await client.get(_url(task), headers=headers)
            assert response.status_code == 200
            assert len(response.json()["items"]) == 1

    async def test_only_this_tasks_comments(
        self, client: httpx.AsyncClient, owner: Actor, task: Task, db: Database
    ) -> None:
        other = (await make_tasks(db, await make_project(db, owner.tenant), 1))[0]  # type: ignore[arg-type]
        await _comment(client, owner, other)
        assert (await client.get(_url(task), headers=owner.headers)).json()["items"] == []

    async def test_another_tenants_task_is_404(
        self, client: httpx.AsyncClient, owner: Actor, intruder: Actor, task: Task
    ) -> None:
        await _comment(client, owner, task)
        assert (await client.get(_url(task), headers=intruder.headers)).status_code == 404
        assert (await client.get(_url(uuid.uuid4()), headers=owner.headers)).status_code == 404

    @pytest.mark.parametrize("raw", [b'["nope","x"]', b'["2026-01-01T00:00:00+00:00",{"a":1}]'])
    async def test_tampered_cursor_is_422(
        self, client: httpx.AsyncClient, owner: Actor, task: Task, raw: bytes
    ) -> None:
        cursor = base64.urlsafe_b64encode(raw).decode()
        response = await client.get(_url(task), params={"cursor": cursor}, headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.cursor"


class TestDeleteComment:
    async def test_author_deletes(
        self, client: httpx.AsyncClient, member: Actor, task: Task, db: Database, tenant: Tenant
    ) -> None:
        comment_id = await _comment(client, member, task)
        response = await client.delete(f"/api/v1/comments/{comment_id}", headers=member.headers)
        assert response.status_code == 204
        assert (await client.get(_url(task), headers=member.headers)).json()["items"] == []
        assert "comment.deleted" in await _actions(db, tenant)

    async def test_another_member_may_not(
        self, client: httpx.AsyncClient, member: Actor, owner: Actor, task: Task, db: Database
    ) -> None:
        comment_id = await _comment(client, owner, task)
        response = await client.delete(f"/api/v1/comments/{comment_id}", headers=member.headers)
        assert response.status_code == 403

    async def test_an_admin_may(
        self,
        client: httpx.AsyncClient,
        member: Actor,
        task: Task,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        comment_id = await _comment(client, member, task)
        admin = await make_actor(db, settings, tenant=tenant, role=Role.ADMIN)
        response = await client.delete(f"/api/v1/comments/{comment_id}", headers=admin.headers)
        assert response.status_code == 204

    async def test_another_tenant_cannot_see_it(
        self, client: httpx.AsyncClient, owner: Actor, intruder: Actor, task: Task
    ) -> None:
        comment_id = await _comment(client, owner, task)
        response = await client.delete(f"/api/v1/comments/{comment_id}", headers=intruder.headers)
        assert response.status_code == 404
        assert len((await client.get(_url(task), headers=owner.headers)).json()["items"]) == 1

    async def test_missing_is_404(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.delete(f"/api/v1/comments/{uuid.uuid4()}", headers=owner.headers)
        assert response.status_code == 404


class TestCascade:
    async def test_comments_go_with_their_task(
        self, client: httpx.AsyncClient, owner: Actor, task: Task, db: Database, tenant: Tenant
    ) -> None:
        await _comment(client, owner, task)
        assert (
            await client.delete(f"/api/v1/tasks/{task.id}", headers=owner.headers)
        ).status_code == 204
        async with db.session_scope(tenant.id) as session:
            stmt = sa.select(sa.func.count()).select_from(Comment)
            assert (await session.execute(stmt)).scalar_one() == 0
        assert (await client.get(_url(task), headers=owner.headers)).status_code == 404
