"""GET /api/v1/exports/tasks.csv: exactly the tenant's tasks, quoted, formula-safe, streamed."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest

from tenantry.auth.principal import Principal
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role, Tenant
from tenantry.tasks.service import EXPORT_BATCH, EXPORT_COLUMNS
from tenantry.tasks.service import task as task_service
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenant_data import make_project, make_tasks

URL = "/api/v1/exports/tasks.csv"


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db, slug=f"acme-{uuid.uuid4().hex[:6]}")


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


class TestExportTasks:
    async def test_exactly_the_tenants_tasks(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        mine = []
        for name in ("Alpha", "Beta"):
            project = await make_project(db, tenant, name=name)
            mine += await make_tasks(db, project, 3)
        other_project = await make_project(db, await make_tenant(db))
        await make_tasks(db, other_project, 4)

        response = await client.get(URL, headers=owner.headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="tasks-{tenant.slug}-')
        assert disposition.endswith('.csv"')
        rows = _rows(response)
        assert list(rows[0]) == list(EXPORT_COLUMNS)
        assert sorted(r["id"] for r in rows) == sorted(str(t.id) for t in mine)
        assert {r["project_name"] for r in rows} == {"Alpha", "Beta"}

    async def test_quoting_and_formula_injection(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        project = await make_project(db, tenant, name='=HYPERLINK("http://evil")')
        await make_tasks(db, project, 1, title='Comma, "quote"', description="line one\nline two")
        await make_tasks(db, project, 1, title="=1+2", description="@SUM(A1)")
        await make_tasks(db, project, 1, title="+cmd", description="-2")
        response = await client.get(URL, headers=owner.headers)
        rows = {r["title"]: r for r in _rows(response)}
        assert rows['Comma, "quote"']["description"] == "line one\nline two"
        assert rows["'=1+2"]["description"] == "'@SUM(A1)"
        assert rows["'+cmd"]["description"] == "'-2"
        assert {r["project_name"] for r in rows.values()} == {'\'=HYPERLINK("http://evil")'}

    async def test_empty_tenant_gets_the_header_only(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        response = await client.get(URL, headers=owner.headers)
        assert response.status_code == 200
        assert response.text.strip() == ",".join(EXPORT_COLUMNS)

    async def test_viewer_may_export_anonymous_may_not(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        assert (await client.get(URL, headers=viewer.headers)).status_code == 200
        assert (await client.get(URL)).status_code == 401

    async def test_streams_in_batches_from_its_own_transaction(
        self, owner: Actor, db: Database, tenant: Tenant
    ) -> None:
        # (httpx's ASGI transport buffers bodies, so the service's chunks are counted.)
        project = await make_project(db, tenant)
        await make_tasks(db, project, EXPORT_BATCH * 2 + 500)
        principal = Principal(user_id=owner.user.id, tenant_id=tenant.id, role=Role.OWNER)
        async with db.session_scope(tenant.id) as session:
            export = await task_service.export_csv(session, db, principal)
        # The request's transaction is over; the stream opens and scopes its own.
        chunks = [chunk async for chunk in export.chunks]
        assert len(chunks) == 1 + 3  # header, then one chunk per batch
        rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
        assert len({r["id"] for r in rows}) == EXPORT_BATCH * 2 + 500
