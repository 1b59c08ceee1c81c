"""Worker memory while building a large report: RSS before, peak during, after.

Seeds one tenant with N rows in a scratch database, queues a report through the real
service, runs a real `tenantry worker` process, and samples its RSS until the report
succeeds. Usage:

    uv run python bench/report_memory.py --rows 100000 --kind tasks --format csv
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil
import sqlalchemy as sa

from tenantry import embedded
from tenantry.cli import run_migrations
from tenantry.config import get_settings
from tenantry.db import Database
from tenantry.models import Report, ReportStatus, Tenant

ADMIN = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

SEED = {
    "activity": (
        "INSERT INTO audit_events (id, tenant_id, action, target_id, data, created_at)"
        " SELECT gen_random_uuid(), :t, 'bulk.' || g, 'target-' || g, '{}', now()"
        " FROM generate_series(1, :n) g"
    ),
    "tasks": (
        "WITH p AS (INSERT INTO projects (id, tenant_id, name, description, created_at, updated_at)"
        " VALUES (gen_random_uuid(), :t, 'Bench', '', now(), now()) RETURNING id)"
        " INSERT INTO tasks (id, tenant_id, project_id, title, description, status, priority,"
        " created_at, updated_at)"
        " SELECT gen_random_uuid(), :t, p.id, 'Task ' || g, repeat('x', 80),"
        " (ARRAY['todo','doing','done'])[1 + g % 3], 1 + g % 4, now(), now()"
        " FROM p, generate_series(1, :n) g"
    ),
}


async def main(rows: int, kind: str, fmt: str, redis_url: str) -> None:
    database = f"tenantry_bench_{uuid.uuid4().hex[:8]}"
    await embedded.ensure_roles_and_database(ADMIN, database)
    base = ADMIN.rsplit("/", 1)[0].replace("postgresql://postgres@", "postgresql+asyncpg://{}@")
    os.environ.update(
        DATABASE_URL=base.format(embedded.APP_ROLE) + f"/{database}",
        DATABASE_OWNER_URL=base.format(embedded.OWNER_ROLE) + f"/{database}",
        REDIS_URL=redis_url,
        ENVIRONMENT="test",
    )
    get_settings.cache_clear()
    try:
        await asyncio.to_thread(run_migrations)
        db = Database.from_settings(get_settings())
        tenant = Tenant(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
        async with db.session_scope() as session:
            session.add(tenant)
        started = time.perf_counter()
        async with db.session_scope(tenant.id) as session:
            await session.execute(sa.text(SEED[kind]), {"t": tenant.id, "n": rows})
        print(f"seeded {rows} {kind} rows in {time.perf_counter() - started:.1f}s")
        today = datetime.now(UTC).date()
        params = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
        report = Report(
            tenant_id=tenant.id,
            kind=kind,
            format=fmt,
            params=params if kind == "activity" else {},
        )
        async with db.session_scope(tenant.id) as session:
            session.add(report)
        from tenantry.redis_client import create_redis

        redis = create_redis(get_settings())
        await redis.flushdb()
        await redis.enqueue_job("reports.build", report_id=str(report.id), tenant_id=str(tenant.id))
        worker = subprocess.Popen([sys.executable, "-m", "tenantry.cli", "worker"])
        proc = psutil.Process(worker.pid)
        await asyncio.sleep(3)
        baseline = proc.memory_info().rss
        peak = baseline
        started = time.perf_counter()
        status = ReportStatus.QUEUED
        while status not in (ReportStatus.SUCCEEDED, ReportStatus.FAILED):
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.05)
            async with db.session_scope(tenant.id) as session:
                fresh = await session.get(Report, report.id)
                assert fresh is not None
                status = fresh.status
                size = fresh.size_bytes
        elapsed = time.perf_counter() - started
        worker.terminate()
        worker.wait(timeout=15)
        mib = 1024 * 1024
        print(
            f"report {kind}/{fmt}: {status.value} in {elapsed:.1f}s, {(size or 0) / mib:.1f} MiB; "
            f"worker RSS baseline {baseline / mib:.0f} MiB, peak {peak / mib:.0f} MiB, "
            f"growth {(peak - baseline) / mib:.0f} MiB"
        )
        await redis.aclose()
        await db.dispose()
    finally:
        conn = await asyncpg.connect(ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kind", choices=sorted(SEED), default="activity")
    parser.add_argument("--format", choices=["csv", "json"], default="csv")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.kind, args.format, args.redis_url))
