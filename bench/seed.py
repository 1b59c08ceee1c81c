"""Seed a benchmark database: N tenants × M tasks, one owner per tenant with a live session.

Rows go in with COPY as the PostgreSQL superuser (bulk loads are not what we measure);
the API under test still connects as the RLS-bound app role. Writes a targets file with
one line per tenant: `<tenant_id> <project_id> <task_id> <access token> <project_id>
<task_id>`, the last two in the tenant's second project, which the write benchmarks use
(so the first project's pages, and the cursors into them, stay as seeded).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from tenantry import embedded
from tenantry.auth import tokens
from tenantry.cli import run_migrations
from tenantry.config import Settings

PROJECTS_PER_TENANT = 2
STATUSES = ("todo", "doing", "done")
WORDS = ("alpha", "beta", "gamma", "delta", "ship", "fix", "review", "paint", "deploy", "plan")


def owner_url(admin_dsn: str, database: str) -> str:
    host = admin_dsn.rsplit("/", 1)[0].replace("postgresql://postgres@", "")
    return f"postgresql+asyncpg://{embedded.OWNER_ROLE}@{host}/{database}"


async def recreate(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await conn.close()
    await embedded.ensure_roles_and_database(admin_dsn, database)


async def seed(
    admin_dsn: str, database: str, tenants: int, tasks: int, settings: Settings
) -> list[str]:
    conn = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{database}")
    now = datetime.now(UTC)
    rng = random.Random(42)
    tenant_rows, user_rows, member_rows, session_rows, project_rows, task_rows = (
        [],
        [],
        [],
        [],
        [],
        [],
    )
    lines = []
    for index in range(tenants):
        tenant_id, user_id, session_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        tenant_rows.append((tenant_id, f"Bench {index}", f"bench-{index}", "enterprise", "active"))
        user_rows.append(
            (user_id, f"bench{index}@example.com", f"bench_{index}", "Bench", "!", True, False)
        )
        member_rows.append((uuid.uuid4(), tenant_id, user_id, "owner"))
        session_rows.append(
            (session_id, user_id, tenant_id, uuid.uuid4().hex, now + timedelta(days=30))
        )
        projects = [uuid.uuid4() for _ in range(PROJECTS_PER_TENANT)]
        for number, project_id in enumerate(projects):
            project_rows.append((project_id, tenant_id, f"Project {number}", None, now, now))
        first_tasks: list[uuid.UUID] = []
        for number in range(tasks):
            task_id = uuid.uuid4()
            if number < PROJECTS_PER_TENANT:
                first_tasks.append(task_id)
            created = now - timedelta(seconds=tasks - number)
            task_rows.append(
                (
                    task_id,
                    tenant_id,
                    projects[number % PROJECTS_PER_TENANT],
                    f"{rng.choice(WORDS)} {rng.choice(WORDS)} {number}",
                    f"{rng.choice(WORDS)} the {rng.choice(WORDS)}" if number % 2 else None,
                    STATUSES[number % 3],
                    number % 4 + 1,
                    user_id if number % 5 else None,
                    date(2027, 1, 1) + timedelta(days=number % 90) if number % 4 else None,
                    created,
                    created,
                )
            )
        token = tokens.create_access_token(
            settings, user_id=user_id, tenant_id=tenant_id, role="owner", session_id=session_id
        )
        lines.append(
            f"{tenant_id} {projects[0]} {first_tasks[0]} {token} {projects[1]} {first_tasks[1]}"
        )

    await conn.copy_records_to_table(
        "tenants", records=tenant_rows, columns=["id", "name", "slug", "plan", "status"]
    )
    await conn.copy_records_to_table(
        "users",
        records=user_rows,
        columns=[
            "id",
            "email",
            "username",
            "full_name",
            "password_hash",
            "is_active",
            "is_superuser",
        ],
    )
    await conn.copy_records_to_table(
        "memberships", records=member_rows, columns=["id", "tenant_id", "user_id", "role"]
    )
    await conn.copy_records_to_table(
        "auth_sessions",
        records=session_rows,
        columns=["id", "user_id", "bound_tenant_id", "refresh_token_hash", "expires_at"],
    )
    await conn.copy_records_to_table(
        "projects",
        records=project_rows,
        columns=["id", "tenant_id", "name", "description", "created_at", "updated_at"],
    )
    await conn.copy_records_to_table(
        "tasks",
        records=task_rows,
        columns=[
            "id",
            "tenant_id",
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
    )
    await conn.execute("VACUUM ANALYZE")
    await conn.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="tenantry_bench")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200, help="tasks per tenant")
    parser.add_argument("--secret", default="bench-secret-key-0123456789abcdef0123456789")
    parser.add_argument("--out", type=Path, default=Path("bench/.targets.txt"))
    args = parser.parse_args()
    settings = Settings(secret_key=args.secret, access_token_ttl_seconds=6 * 3600)
    started = time.perf_counter()
    asyncio.run(recreate(args.admin_dsn, args.database))
    run_migrations(owner_url(args.admin_dsn, args.database), embedded.APP_ROLE)
    lines = asyncio.run(seed(args.admin_dsn, args.database, args.tenants, args.tasks, settings))
    args.out.write_text("\n".join(lines) + "\n")
    print(
        f"seeded {args.tenants} tenants × {args.tasks} tasks into {args.database} "
        f"in {time.perf_counter() - started:.1f}s → {args.out}"
    )


if __name__ == "__main__":
    main()
