"""SIGKILL a worker mid-report; a new worker finishes it, whole and once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import EmailOutbox, Report, ReportChunk, ReportStatus, Role
from tests.fixtures.factories import make_actor, make_tenant
from tests.fixtures.worker import worker_process

pytestmark = pytest.mark.committed

ROWS = 20_000


def start_worker(timeout: int) -> subprocess.Popen[bytes]:
    return worker_process({"REPORT_JOB_TIMEOUT": str(timeout)})


async def status_of(db: Database, tenant_id: uuid.UUID, report_id: uuid.UUID) -> ReportStatus:
    async with db.session_scope(tenant_id) as session:
        report = await session.get(Report, {"tenant_id": tenant_id, "id": report_id})
        assert report is not None
        return report.status


async def test_killed_worker_mid_build(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    async with db.session_scope(tenant.id) as session:
        await session.execute(
            sa.text(
                "INSERT INTO audit_events (id, tenant_id, action, data, created_at)"
                " SELECT gen_random_uuid(), :t, 'bulk.' || g, '{}', now()"
                " FROM generate_series(1, :n) g"
            ),
            {"t": tenant.id, "n": ROWS},
        )
    today = datetime.now(UTC).date()
    response = await client.post(
        "/api/v1/reports",
        json={
            "kind": "activity",
            "format": "csv",
            "params": {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()},
        },
        headers=owner.headers,
    )
    report_id = uuid.UUID(response.json()["id"])

    first = start_worker(timeout=4)
    try:
        for _ in range(6000):  # worker start-up is slow on a loaded 2-core machine
            if await status_of(db, tenant.id, report_id) is ReportStatus.RUNNING:
                break
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    # Killed mid-build: the claim is committed, nothing of the file is.
    assert await status_of(db, tenant.id, report_id) is ReportStatus.RUNNING
    async with db.session_scope(tenant.id) as session:
        chunks = (
            await session.execute(sa.select(sa.func.count()).select_from(ReportChunk))
        ).scalar()
    assert chunks == 0

    second = start_worker(timeout=60)
    try:
        # ARQ re-runs it once the first worker's in-progress key expires (its longest
        # timeout + 10 s); the second worker then has ample time to build it.
        for _ in range(900):
            if await status_of(db, tenant.id, report_id) is ReportStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=15)
    assert await status_of(db, tenant.id, report_id) is ReportStatus.SUCCEEDED
    download = await client.get(f"/api/v1/reports/{report_id}/download", headers=owner.headers)
    lines = download.text.strip().split("\r\n")
    assert len(lines) == 1 + ROWS + 1  # header, the bulk rows, the report.requested event
    async with db.session_scope(tenant.id) as session:
        report = await session.get(Report, {"tenant_id": tenant.id, "id": report_id})
        assert report is not None
        assert report.attempts == 2
        emails = (
            await session.execute(sa.select(sa.func.count()).select_from(EmailOutbox))
        ).scalar()
    assert emails == 1
