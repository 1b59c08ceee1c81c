"""Reports end to end: the API queues, a real ARQ worker builds, the API streams it back."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, EmailOutbox, Report, ReportChunk, Role, Tenant
from tenantry.usage import usage_key
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.smtp import SmtpServer
from tests.fixtures.worker import RunWorker
from tests.workers.test_emails import run_worker as run_worker_with

TODAY = datetime.now(UTC).date()
RANGE = {"from": (TODAY - timedelta(days=2)).isoformat(), "to": TODAY.isoformat()}


async def seed_events(db: Database, tenant: Tenant, count: int, *, when: datetime) -> None:
    async with db.session_scope(tenant.id) as session:
        for i in range(count):
            session.add(
                AuditEvent(
                    tenant_id=tenant.id,
                    action=f"seed.{i}",
                    created_at=when,
                    target_type="thing",
                    target_id=f"=cmd|{i}",
                )
            )


class TestRequest:
    async def test_queues_with_location(self, client: httpx.AsyncClient, owner: Actor) -> None:
        response = await client.post(
            "/api/v1/reports",
            json={"kind": "activity", "format": "csv", "params": RANGE},
            headers=owner.headers,
        )
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["location"] == f"/api/v1/reports/{body['id']}"
        status = await client.get(response.headers["location"], headers=owner.headers)
        assert status.status_code == 200
        assert status.json()["status"] == "queued"

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            (
                {"kind": "activity", "format": "csv", "params": {"to": "2026-01-01"}},
                "body.params.from",
            ),
            (
                {"kind": "usage", "params": {"from": "yesterday", "to": "2026-01-01"}},
                "body.params.from",
            ),
            (
                {"kind": "usage", "params": {"from": "2026-02-01", "to": "2026-01-01"}},
                "body.params",
            ),
            ({"kind": "tasks", "params": {"project_id": "nope"}}, "body.params.project_id"),
            ({"kind": "project_summary", "params": {"extra": 1}}, "body.params.extra"),
            ({"kind": "nonsense"}, "body.kind"),
            ({"kind": "usage", "format": "xlsx", "params": RANGE}, "body.format"),
        ],
    )
    async def test_invalid_params_422_name_the_field(
        self, client: httpx.AsyncClient, owner: Actor, payload: dict, field: str
    ) -> None:
        response = await client.post("/api/v1/reports", json=payload, headers=owner.headers)
        assert response.status_code == 422
        assert field in {e["field"] for e in response.json()["errors"]}

    async def test_viewer_may_request(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, tenant: Tenant
    ) -> None:
        viewer = await make_actor(db, settings, tenant=tenant, role=Role.VIEWER)
        response = await client.post(
            "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=viewer.headers
        )
        assert response.status_code == 202

    async def test_cap_on_reports_in_flight(
        self, client: httpx.AsyncClient, owner: Actor, settings: Settings
    ) -> None:
        body = {"kind": "usage", "params": RANGE}
        for _ in range(settings.reports_max_in_flight):
            assert (
                await client.post("/api/v1/reports", json=body, headers=owner.headers)
            ).status_code == 202
        refused = await client.post("/api/v1/reports", json=body, headers=owner.headers)
        assert refused.status_code == 429
        assert refused.headers["retry-after"]
        assert refused.headers["content-type"] == "application/problem+json"

    async def test_download_before_success_is_409(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        queued = await client.post(
            "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=owner.headers
        )
        download = await client.get(f"{queued.headers['location']}/download", headers=owner.headers)
        assert download.status_code == 409

    async def test_other_tenant_gets_404(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        queued = await client.post(
            "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=owner.headers
        )
        intruder = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        for path in ("", "/download"):
            response = await client.get(queued.headers["location"] + path, headers=intruder.headers)
            assert response.status_code == 404
        missing = await client.get(f"/api/v1/reports/{uuid.uuid4()}", headers=owner.headers)
        assert missing.status_code == 404

    @pytest.mark.parametrize(
        "values",
        [["nope", "x"], ["2026-12-02T05:37:16+00:00", "x"], [1, 2], ["a"], {"a": 1}],
    )
    async def test_tampered_cursor_is_422(
        self, client: httpx.AsyncClient, owner: Actor, values: object
    ) -> None:
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
        response = await client.get(
            "/api/v1/reports", params={"cursor": cursor}, headers=owner.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "query.cursor"

    async def test_pages_newest_first(self, client: httpx.AsyncClient, owner: Actor) -> None:
        for _ in range(3):
            await client.post(
                "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=owner.headers
            )
        first = await client.get("/api/v1/reports", params={"limit": 2}, headers=owner.headers)
        rest = await client.get(
            "/api/v1/reports",
            params={"limit": 2, "cursor": first.json()["next_cursor"]},
            headers=owner.headers,
        )
        items = first.json()["items"] + rest.json()["items"]
        assert rest.json()["next_cursor"] is None
        assert len({r["id"] for r in items}) == 3
        stamps = [r["created_at"] for r in items]
        assert stamps == sorted(stamps, reverse=True)

    async def test_list_is_tenant_scoped(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        await client.post(
            "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=owner.headers
        )
        intruder = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        assert (await client.get("/api/v1/reports", headers=intruder.headers)).json()["items"] == []
        assert (
            len((await client.get("/api/v1/reports", headers=owner.headers)).json()["items"]) == 1
        )


@pytest.mark.committed
class TestBuild:
    async def request(self, client: httpx.AsyncClient, actor: Actor, **body: object) -> str:
        response = await client.post("/api/v1/reports", json=body, headers=actor.headers)
        assert response.status_code == 202, response.text
        return str(response.headers["location"])

    async def test_activity_csv_has_exactly_the_tenants_rows(
        self,
        client: httpx.AsyncClient,
        db: Database,
        settings: Settings,
        tenant: Tenant,
        owner: Actor,
        run_worker: RunWorker,
    ) -> None:
        other = await make_tenant(db)
        await seed_events(db, tenant, 7, when=datetime.now(UTC) - timedelta(days=1))
        await seed_events(db, tenant, 3, when=datetime.now(UTC) - timedelta(days=10))
        await seed_events(db, other, 5, when=datetime.now(UTC))
        location = await self.request(client, owner, kind="activity", format="csv", params=RANGE)
        await run_worker()
        status = (await client.get(location, headers=owner.headers)).json()
        assert status["status"] == "succeeded", status
        download = await client.get(f"{location}/download", headers=owner.headers)
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/csv")
        assert download.headers["content-disposition"].startswith('attachment; filename="activity-')
        rows = list(csv.DictReader(io.StringIO(download.text)))
        # 7 seeded in range + the "report.requested" audit event of this request.
        seeded = [r for r in rows if r["action"].startswith("seed.")]
        assert len(seeded) == 7
        assert status["row_count"] == len(rows)
        assert {r["action"] for r in rows} - {f"seed.{i}" for i in range(7)} == {"report.requested"}
        assert all(r["target_id"].startswith("'=") for r in seeded)

    async def test_usage_json_counts_calls_per_day(
        self,
        client: httpx.AsyncClient,
        db: Database,
        tenant: Tenant,
        owner: Actor,
        redis: ArqRedis,
        run_worker: RunWorker,
    ) -> None:
        other = await make_tenant(db)
        for _ in range(4):
            await redis.incr(usage_key(tenant.id, TODAY))
        await redis.incr(usage_key(other.id, TODAY))
        location = await self.request(client, owner, kind="usage", format="json", params=RANGE)
        await run_worker()
        status = (await client.get(location, headers=owner.headers)).json()
        assert status["status"] == "succeeded", status
        body = json.loads((await client.get(f"{location}/download", headers=owner.headers)).content)
        by_day = {item["date"]: item["calls"] for item in body["items"]}
        assert len(by_day) == 3
        # The 4 recorded above, plus the POST that requested the report: every
        # tenant-scoped call is metered (in the rate limiter's round trip).
        assert by_day[TODAY.isoformat()] == 5
        assert sum(by_day.values()) == 5

    async def test_requester_is_emailed_once(
        self,
        client: httpx.AsyncClient,
        db: Database,
        owner: Actor,
        settings: Settings,
        smtp: SmtpServer,
    ) -> None:
        location = await self.request(client, owner, kind="usage", format="csv", params=RANGE)
        await run_worker_with(settings.model_copy(update=smtp.settings_overrides()))
        async with db.session_scope() as session:
            emails = (
                (
                    await session.execute(
                        sa.select(EmailOutbox).where(EmailOutbox.kind == "report_ready")
                    )  # type: ignore[arg-type]
                )
                .scalars()
                .all()
            )
        assert [e.to_email for e in emails] == [owner.user.email]
        assert emails[0].subject == "Your report is ready"
        # The outbox scrubs a body once sent; the link is in the email as delivered.
        (delivered,) = smtp.recorder.to(owner.user.email)
        assert location.rsplit("/", 1)[1] in delivered.text

    async def test_running_twice_builds_once(
        self,
        client: httpx.AsyncClient,
        db: Database,
        tenant: Tenant,
        owner: Actor,
        redis: ArqRedis,
        run_worker: RunWorker,
    ) -> None:
        location = await self.request(client, owner, kind="usage", format="csv", params=RANGE)
        report_id = location.rsplit("/", 1)[1]
        await run_worker()
        # At-least-once delivery: the same job again (ARQ refuses the same id while its
        # result is kept, so use a fresh id) must not rebuild or re-email.
        await redis.enqueue_job(
            "reports.build",
            _queue_name="tenantry:queue",
            report_id=report_id,
            tenant_id=str(tenant.id),
        )
        await run_worker()
        async with db.session_scope(tenant.id) as session:
            report = await session.get(Report, uuid.UUID(report_id))
            assert report is not None
            assert report.attempts == 1
            emails = (
                await session.execute(sa.select(sa.func.count()).select_from(EmailOutbox))
            ).scalar()
        assert emails == 1

    async def test_poison_report_fails_safely_and_others_finish(
        self,
        client: httpx.AsyncClient,
        db: Database,
        tenant: Tenant,
        owner: Actor,
        run_worker: RunWorker,
    ) -> None:
        poison = await self.request(client, owner, kind="usage", format="csv", params=RANGE)
        healthy = await self.request(client, owner, kind="usage", format="json", params=RANGE)
        # Corrupt the stored params behind the API's back: building it always raises.
        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(Report)
                .where(Report.id == uuid.UUID(poison.rsplit("/", 1)[1]))  # type: ignore[arg-type]
                .values(params={"from": "garbage", "to": "garbage"})
            )
        await run_worker()
        failed = (await client.get(poison, headers=owner.headers)).json()
        assert failed["status"] == "failed"
        assert failed["error"]
        assert "garbage" not in failed["error"] and "Traceback" not in failed["error"]
        assert (await client.get(healthy, headers=owner.headers)).json()["status"] == "succeeded"

    async def test_large_report_is_chunked_and_streams_back(
        self,
        client: httpx.AsyncClient,
        db: Database,
        tenant: Tenant,
        owner: Actor,
        run_worker: RunWorker,
    ) -> None:
        await seed_events(db, tenant, 3000, when=datetime.now(UTC))
        location = await self.request(client, owner, kind="activity", format="json", params=RANGE)
        await run_worker()
        report_id = uuid.UUID(location.rsplit("/", 1)[1])
        async with db.session_scope(tenant.id) as session:
            chunks = (
                await session.execute(
                    sa.select(sa.func.count()).where(ReportChunk.report_id == report_id)  # type: ignore[arg-type]
                )
            ).scalar()
        assert chunks is not None and chunks > 1
        body = json.loads((await client.get(f"{location}/download", headers=owner.headers)).content)
        assert len([i for i in body["items"] if i["action"].startswith("seed.")]) == 3000


@pytest.mark.committed
async def test_relay_requeues_a_lost_job(
    client: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    owner: Actor,
    redis: ArqRedis,
    run_worker: RunWorker,
    settings: Settings,
) -> None:
    response = await client.post(
        "/api/v1/reports", json={"kind": "usage", "params": RANGE}, headers=owner.headers
    )
    location = response.headers["location"]
    await redis.flushdb()  # Redis lost the queued job
    async with db.session_scope(tenant.id) as session:
        await session.execute(
            sa.update(Report).values(created_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    from workers.reports import relay

    assert await relay({"db": db, "redis": redis, "settings": settings}) == 1
    await run_worker()
    assert (await client.get(location, headers=owner.headers)).json()["status"] == "succeeded"


def test_dates_are_inclusive() -> None:
    from tenantry.models import ReportKind
    from tenantry.reports.schemas import parse_params

    assert parse_params(ReportKind.ACTIVITY, {"from": "2026-01-01", "to": "2026-01-01"}) == {
        "from": "2026-01-01",
        "to": "2026-01-01",
    }
    assert date.fromisoformat("2026-01-01")


async def seed_tasks(
    db: Database, tenant: Tenant, assignees: list[uuid.UUID]
) -> dict[str, uuid.UUID]:
    """Two projects: Alpha (todo, doing ×2 (one overdue), done (past due, not overdue)) and
    an empty Beta; tasks assigned round-robin."""
    from tenantry.models import Project, Task, TaskStatus

    past = datetime.now(UTC).date() - timedelta(days=3)
    future = datetime.now(UTC).date() + timedelta(days=3)
    alpha = Project(tenant_id=tenant.id, name="Alpha")
    beta = Project(tenant_id=tenant.id, name="Beta")
    async with db.session_scope(tenant.id) as session:
        session.add_all([alpha, beta])
        await session.flush()
        specs = [
            ("write spec", TaskStatus.TODO, future, assignees[0]),
            ("=HYPERLINK(evil)", TaskStatus.DOING, past, assignees[0]),
            ("review", TaskStatus.DOING, None, assignees[1]),
            ("ship", TaskStatus.DONE, past, None),
        ]
        for title, status, due, assignee in specs:
            session.add(
                Task(
                    tenant_id=tenant.id,
                    project_id=alpha.id,
                    title=title,
                    status=status,
                    due_date=due,
                    assignee_id=assignee,
                )
            )
    return {"alpha": alpha.id, "beta": beta.id}


@pytest.mark.committed
class TestTaskReports:
    async def build(
        self, client: httpx.AsyncClient, actor: Actor, run_worker: RunWorker, **body: object
    ) -> httpx.Response:
        response = await client.post("/api/v1/reports", json=body, headers=actor.headers)
        assert response.status_code == 202, response.text
        await run_worker()
        status = (await client.get(response.headers["location"], headers=actor.headers)).json()
        assert status["status"] == "succeeded", status
        return await client.get(f"{response.headers['location']}/download", headers=actor.headers)

    @pytest.fixture
    async def world(self, db: Database, settings: Settings, tenant: Tenant) -> dict[str, object]:
        owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        member = await make_actor(db, settings, tenant=tenant, role=Role.MEMBER)
        projects = await seed_tasks(db, tenant, [owner.user.id, member.user.id])
        other = await make_tenant(db)
        stranger = await make_actor(db, settings, tenant=other, role=Role.OWNER)
        await seed_tasks(db, other, [stranger.user.id, stranger.user.id])
        return {"owner": owner, "member": member, "projects": projects}

    async def test_tasks_json_has_every_task_and_the_api_fields(
        self, client: httpx.AsyncClient, world: dict, run_worker: RunWorker
    ) -> None:
        download = await self.build(client, world["owner"], run_worker, kind="tasks", format="json")
        items = download.json()["items"]
        assert len(items) == 4
        assert {i["project_id"] for i in items} == {str(world["projects"]["alpha"])}
        assert set(items[0]) == {
            "id",
            "project_id",
            "title",
            "description",
            "status",
            "priority",
            "assignee_id",
            "due_date",
            "created_at",
            "updated_at",
        }
        assert sorted(i["status"] for i in items) == ["doing", "doing", "done", "todo"]

    async def test_tasks_csv_quotes_formulas_and_filters_by_project(
        self, client: httpx.AsyncClient, world: dict, run_worker: RunWorker
    ) -> None:
        download = await self.build(
            client,
            world["owner"],
            run_worker,
            kind="tasks",
            format="csv",
            params={"project_id": str(world["projects"]["beta"])},
        )
        assert list(csv.reader(io.StringIO(download.text))) == [
            [
                "id",
                "project_id",
                "title",
                "description",
                "status",
                "priority",
                "assignee_id",
                "due_date",
                "created_at",
                "updated_at",
            ],
        ]
        everything = await self.build(
            client, world["owner"], run_worker, kind="tasks", format="csv"
        )
        titles = {r["title"] for r in csv.DictReader(io.StringIO(everything.text))}
        assert "'=HYPERLINK(evil)" in titles

    async def test_project_summary_json(
        self, client: httpx.AsyncClient, world: dict, run_worker: RunWorker
    ) -> None:
        download = await self.build(
            client, world["owner"], run_worker, kind="project_summary", format="json"
        )
        projects = download.json()["projects"]
        assert [p["name"] for p in projects] == ["Alpha", "Beta"]
        alpha, beta = projects
        assert alpha["project_id"] == str(world["projects"]["alpha"])
        assert alpha["counts"] == {"todo": 1, "doing": 2, "done": 1}
        assert alpha["overdue"] == 1
        owner, member = world["owner"], world["member"]
        assert alpha["by_assignee"] == [
            {"user_id": str(owner.user.id), "username": owner.user.username, "count": 2},
            {"user_id": str(member.user.id), "username": member.user.username, "count": 1},
        ]
        assert beta == {
            "project_id": str(world["projects"]["beta"]),
            "name": "Beta",
            "counts": {"todo": 0, "doing": 0, "done": 0},
            "overdue": 0,
            "by_assignee": [],
        }

    async def test_project_summary_csv(
        self, client: httpx.AsyncClient, world: dict, run_worker: RunWorker
    ) -> None:
        download = await self.build(
            client, world["owner"], run_worker, kind="project_summary", format="csv"
        )
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows == [
            ["project_id", "name", "todo", "doing", "done", "overdue"],
            [str(world["projects"]["alpha"]), "Alpha", "1", "2", "1", "1"],
            [str(world["projects"]["beta"]), "Beta", "0", "0", "0", "0"],
        ]
