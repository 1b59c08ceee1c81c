"""`If-Match` on PATCH and DELETE of projects and tasks (the contract's optimistic concurrency).

A stale or malformed tag answers 412 problem+json and changes nothing; `*` matches an
object that exists; no header, no check. Two writers racing with the same tag: exactly
one wins, because the tag is checked on the locked row in the writing transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Project, Role, Task, Tenant
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenant_data import make_project, make_tasks


@dataclass
class Target:
    """One object with an ETag, its URL and a change to PATCH it with."""

    url: str
    change: dict[str, Any]
    model: type[Project] | type[Task]
    id: uuid.UUID


@pytest.fixture(params=["project", "task"])
async def target(request: pytest.FixtureRequest, db: Database, tenant: Tenant) -> Target:
    project = await make_project(db, tenant, name="Original")
    if request.param == "project":
        return Target(f"/api/v1/projects/{project.id}", {"name": "Changed"}, Project, project.id)
    [task] = await make_tasks(db, project, 1, title="Original")
    return Target(f"/api/v1/tasks/{task.id}", {"title": "Changed"}, Task, task.id)


async def _current(client: httpx.AsyncClient, target: Target, owner: Actor) -> httpx.Response:
    response = await client.get(target.url, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response


def _assert_412(response: httpx.Response) -> None:
    assert response.status_code == 412, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 412
    assert body["type"].endswith("/precondition-failed")


async def _stored(db: Database, tenant: Tenant, target: Target) -> Any:
    async with db.session_scope(tenant.id) as session:
        return await session.get(target.model, {"tenant_id": tenant.id, "id": target.id})


def _label(target: Target, row: Any) -> str:
    return str(row.name if target.model is Project else row.title)


class TestPatch:
    async def test_current_tag_writes_and_answers_the_new_tag(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        etag = (await _current(client, target, owner)).headers["etag"]
        headers = {**owner.headers, "If-Match": etag}
        response = await client.patch(target.url, json=target.change, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["etag"] != etag
        assert (await _current(client, target, owner)).headers["etag"] == response.headers["etag"]

    async def test_stale_tag_is_412_and_changes_nothing(
        self, client: httpx.AsyncClient, owner: Actor, target: Target, db: Database, tenant: Tenant
    ) -> None:
        stale = (await _current(client, target, owner)).headers["etag"]
        first = await client.patch(
            target.url, json=target.change, headers={**owner.headers, "If-Match": stale}
        )
        assert first.status_code == 200
        other = dict.fromkeys(target.change, "Lost update")
        response = await client.patch(
            target.url, json=other, headers={**owner.headers, "If-Match": stale}
        )
        _assert_412(response)
        assert _label(target, await _stored(db, tenant, target)) == "Changed"

    @pytest.mark.parametrize("tag", ["garbage", '"unterminated', "W/", '"a" "b"', ""])
    async def test_malformed_tag_is_412_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        target: Target,
        db: Database,
        tenant: Tenant,
        tag: str,
    ) -> None:
        response = await client.patch(
            target.url, json=target.change, headers={**owner.headers, "If-Match": tag}
        )
        _assert_412(response)
        assert _label(target, await _stored(db, tenant, target)) == "Original"

    async def test_weak_tag_never_matches(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        etag = (await _current(client, target, owner)).headers["etag"]
        response = await client.patch(
            target.url, json=target.change, headers={**owner.headers, "If-Match": f"W/{etag}"}
        )
        _assert_412(response)

    async def test_a_list_matches_any_of_its_tags(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        etag = (await _current(client, target, owner)).headers["etag"]
        headers = {**owner.headers, "If-Match": f'"other", {etag}'}
        response = await client.patch(target.url, json=target.change, headers=headers)
        assert response.status_code == 200, response.text

    async def test_star_matches_an_existing_object(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        headers = {**owner.headers, "If-Match": "*"}
        response = await client.patch(target.url, json=target.change, headers=headers)
        assert response.status_code == 200, response.text

    async def test_star_on_a_missing_object_is_404(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        url = target.url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
        headers = {**owner.headers, "If-Match": "*"}
        response = await client.patch(url, json=target.change, headers=headers)
        assert response.status_code == 404

    async def test_without_the_header_the_write_goes_through(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        response = await client.patch(target.url, json=target.change, headers=owner.headers)
        assert response.status_code == 200


class TestDelete:
    async def test_stale_tag_is_412_and_the_object_stays(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        stale = (await _current(client, target, owner)).headers["etag"]
        await client.patch(target.url, json=target.change, headers=owner.headers)
        response = await client.delete(target.url, headers={**owner.headers, "If-Match": stale})
        _assert_412(response)
        assert (await client.get(target.url, headers=owner.headers)).status_code == 200

    async def test_malformed_tag_is_412(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        response = await client.delete(target.url, headers={**owner.headers, "If-Match": "x"})
        _assert_412(response)
        assert (await client.get(target.url, headers=owner.headers)).status_code == 200

    async def test_current_tag_deletes(
        self, client: httpx.AsyncClient, owner: Actor, target: Target
    ) -> None:
        etag = (await _current(client, target, owner)).headers["etag"]
        response = await client.delete(target.url, headers={**owner.headers, "If-Match": etag})
        assert response.status_code == 204
        assert "content-type" not in response.headers
        assert (await client.get(target.url, headers=owner.headers)).status_code == 404


async def _waiting_on_locks(db: Database, count: int) -> None:
    """Until `count` backends of this database wait on a lock (our held row lock)."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(600):
        async with db.engine.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} requests never queued behind the row lock")


@pytest.mark.committed
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_two_concurrent_writers_with_the_same_tag_one_wins(
    client: httpx.AsyncClient, db: Database, settings: Settings, method: str
) -> None:
    """Both requests are held at the row (the test locks it), so both hold the same tag
    before either writes; released, exactly one writes. The other answers 412 (its tag
    is stale) or, after a delete, 404 (the object is gone)."""
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    project = await make_project(db, tenant, name="Original")
    url = f"/api/v1/projects/{project.id}"
    etag = (await client.get(url, headers=owner.headers)).headers["etag"]
    headers = {**owner.headers, "If-Match": etag}

    def write(name: str) -> Any:
        if method == "PATCH":
            return client.patch(url, json={"name": name}, headers=headers)
        return client.delete(url, headers=headers)

    async with db.session_scope(tenant.id) as holder:
        await holder.execute(
            sa.select(Project)
            .where(Project.tenant_id == tenant.id, Project.id == project.id)  # type: ignore[arg-type]
            .with_for_update()
        )
        racing = [asyncio.create_task(write(name)) for name in ("First", "Second")]
        await _waiting_on_locks(db, 2)
    responses = await asyncio.gather(*racing)
    statuses = sorted(r.status_code for r in responses)
    expected = [200, 412] if method == "PATCH" else [204, 404]
    assert statuses == expected, [r.text for r in responses]
    stored = await _stored(db, tenant, Target(url, {}, Project, project.id))
    if method == "PATCH":
        winner = next(r for r in responses if r.status_code == 200).json()["name"]
        assert stored.name == winner
    else:
        assert stored is None
