"""What the Citus-safe RLS context costs per request, against what it replaced.

    uv run python bench/context_cost.py [--admin-dsn postgresql://postgres@127.0.0.1:5432/postgres]
        [--database tenantry_bench_context] [--existing] [-n 2000]

Without `--existing` it creates the database (roles as the test suite makes them),
migrates it and seeds one tenant, user, session, project and 30 tasks; with it, it
uses a database already migrated (e.g. a Citus coordinator's) and seeds the same rows
if they are missing. Then, as the app role on one connection each, interleaved N times:

  - the context of a unit of work: BEGIN, the context statement, a first page of
    tasks, COMMIT — with `set_config(…, true)` (before) and `set_app_context()` (now);
  - the credential check: `session_principal()` as one autocommit statement with its
    old `set_config` body (before) and in BEGIN READ ONLY … COMMIT with the
    `SET LOCAL` body (now: the transaction is what lets Citus forward the context).

Prints median and p99 of each and the differences of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tenantry import embedded
from tenantry.cli import run_migrations

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000c175")
USER = uuid.UUID("00000000-0000-4000-8000-00000000c176")
SESSION = uuid.UUID("00000000-0000-4000-8000-00000000c177")
PROJECT = uuid.UUID("00000000-0000-4000-8000-00000000c178")
LIST = """
SELECT id, project_id, title, description, status, priority, assignee_id, due_date,
       created_at, updated_at
FROM tasks WHERE tenant_id = $1 AND project_id = $2
ORDER BY created_at DESC, id DESC LIMIT 21
"""
OLD_CONTEXT = (
    "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true),"
    " set_config('app.api_key_hash', '', true)"
)
NEW_CONTEXT = (
    "SELECT set_app_context($1, $2, p_api_key_hash => '', p_invitation_token_hash => '',"
    " p_maintenance => '')"
)
# session_principal() as migration 0005 wrote it, for the "before" side only.
OLD_PRINCIPAL = """
CREATE OR REPLACE FUNCTION bench_session_principal_set_config(
    p_session_id uuid, p_user_id uuid, p_tenant_id uuid
)
RETURNS TABLE (revoked_at timestamptz, expires_at timestamptz, is_active boolean,
               is_superuser boolean, role varchar, tenant_status varchar,
               tenant_plan varchar, tenant_deleted_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE previous_user text := current_setting('app.user_id', true);
BEGIN
    PERFORM set_config('app.user_id', p_user_id::text, true);
    RETURN QUERY
        SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
               m.role, t.status, t.plan, t.deleted_at
        FROM auth_sessions s JOIN users u ON u.id = s.user_id
        LEFT JOIN tenants t ON t.id = p_tenant_id
        LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
        WHERE s.id = p_session_id AND s.user_id = p_user_id;
    PERFORM set_config('app.user_id', coalesce(previous_user, ''), true);
END $$
"""


def _with(dsn: str, *, user: str, database: str) -> str:
    parts = urlsplit(dsn)
    netloc = f"{user}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


async def _seed(admin: asyncpg.Connection) -> None:
    if await admin.fetchval("SELECT 1 FROM tenants WHERE id = $1", TENANT):
        return
    async with admin.transaction():
        await admin.execute(
            "INSERT INTO tenants (id, name, slug, plan, status) VALUES ($1, 'Bench', $2, 'pro', 'active')",
            TENANT,
            f"bench-{TENANT.hex[:8]}",
        )
        await admin.execute(
            "INSERT INTO users (id, email, username, full_name, password_hash, is_active,"
            " is_superuser) VALUES ($1, $2, $3, 'Bench', 'x', true, false)",
            USER,
            f"bench-{USER.hex[:8]}@example.com",
            f"bench{USER.hex[:8]}",
        )
        await admin.execute(
            "INSERT INTO memberships (id, tenant_id, user_id, role) VALUES ($1, $2, $3, 'owner')",
            uuid.uuid4(),
            TENANT,
            USER,
        )
        await admin.execute(
            "INSERT INTO auth_sessions (id, user_id, refresh_token_hash, expires_at)"
            " VALUES ($1, $2, $3, now() + interval '1 day')",
            SESSION,
            USER,
            "0" * 64,
        )
        await admin.execute(
            "INSERT INTO projects (id, tenant_id, name) VALUES ($1, $2, 'Bench')", PROJECT, TENANT
        )
        for i in range(30):
            await admin.execute(
                "INSERT INTO tasks (id, tenant_id, project_id, title, status, priority)"
                " VALUES ($1, $2, $3, $4, 'todo', 2)",
                uuid.uuid4(),
                TENANT,
                PROJECT,
                f"task {i}",
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="tenantry_bench_context")
    parser.add_argument("--existing", action="store_true", help="the database is migrated")
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    if not args.existing:
        await embedded.ensure_roles_and_database(args.admin_dsn, args.database)
        owner = _with(args.admin_dsn, user=embedded.OWNER_ROLE, database=args.database)
        await asyncio.to_thread(
            run_migrations,
            owner.replace("postgresql://", "postgresql+asyncpg://"),
            embedded.APP_ROLE,
        )
    admin = await asyncpg.connect(_with(args.admin_dsn, user="postgres", database=args.database))
    await _seed(admin)
    await admin.execute(OLD_PRINCIPAL)
    await admin.execute(
        f'GRANT EXECUTE ON FUNCTION bench_session_principal_set_config(uuid, uuid, uuid) TO "{embedded.APP_ROLE}"'
    )
    app = await asyncpg.connect(
        _with(args.admin_dsn, user=embedded.APP_ROLE, database=args.database)
    )
    tenant, user = str(TENANT), str(USER)

    async def page(context: str) -> int:
        async with app.transaction():
            await app.execute(context, tenant, user)
            return len(await app.fetch(LIST, TENANT, PROJECT))

    async def page_before() -> int:
        return await page(OLD_CONTEXT)

    async def page_now() -> int:
        return await page(NEW_CONTEXT)

    async def check_before() -> int:
        row = await app.fetchrow(
            "SELECT * FROM bench_session_principal_set_config($1, $2, $3)", SESSION, USER, TENANT
        )
        return int(row is not None and row["role"] == "owner")

    async def check_now() -> int:
        async with app.transaction(readonly=True):
            row = await app.fetchrow(
                "SELECT * FROM session_principal($1, $2, $3)", SESSION, USER, TENANT
            )
        return int(row is not None and row["role"] == "owner")

    variants: dict[str, Callable[[], Awaitable[int]]] = {
        "unit of work, set_config (before)": page_before,
        "unit of work, set_app_context (now)": page_now,
        "credential check, autocommit + set_config (before)": check_before,
        "credential check, BEGIN..COMMIT + SET LOCAL (now)": check_now,
    }
    for name, run in variants.items():
        seen = await run()
        print(f"{name:<52} sees {seen} row(s)")
        for _ in range(200):
            await run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.n):
        for name, run in variants.items():
            started = time.perf_counter()
            await run()
            times[name].append((time.perf_counter() - started) * 1000)
    medians = {}
    for name, values in times.items():
        values.sort()
        medians[name] = statistics.median(values)
        p99 = values[int(len(values) * 0.99)]
        print(f"{name:<52} median {medians[name]:6.3f} ms  p99 {p99:6.3f} ms")
    names = list(variants)
    print(
        f"{'=> unit of work, now - before (median)':<52} {medians[names[1]] - medians[names[0]]:+.3f} ms"
    )
    print(
        f"{'=> credential check, now - before (median)':<52} {medians[names[3]] - medians[names[2]]:+.3f} ms"
    )
    await app.close()
    await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
