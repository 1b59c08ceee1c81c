"""What row-level security costs per request: the same reads with and without it.

    uv run python bench/run.py --tenants 10 ...      # seeds tenantry_bench_10 once
    uv run python bench/rls_overhead.py [--database tenantry_bench_10] [-n 3000]

Interleaves, on one connection each, N times:
  - the credential check: `session_principal()` as the app role (sets app.user_id,
    memberships under RLS) against the same SELECT as the superuser (RLS bypassed);
  - a first page of tasks in a transaction: BEGIN, set_app_context, the list query, COMMIT as
    the app role, against BEGIN, the list query, COMMIT as the superuser.
Prints the wall-clock median and p99 of each and the difference of the medians: the
RLS overhead per request (issue #5 asks for RLS plus rate limiting within 0.5 ms;
`bench/ratelimit.py` measures the rate-limit half).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import jwt

from tenantry import embedded

ROOT = Path(__file__).resolve().parents[1]
STATE = """
SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
       m.role, t.status, t.plan, t.deleted_at
FROM auth_sessions s
JOIN users u ON u.id = s.user_id
LEFT JOIN tenants t ON t.id = $3
LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
WHERE s.id = $1 AND s.user_id = $2
"""
LIST = """
SELECT id, project_id, title, description, status, priority, assignee_id, due_date,
       created_at, updated_at
FROM tasks WHERE tenant_id = $1 AND project_id = $2
ORDER BY created_at DESC, id DESC LIMIT 21
"""
CONTEXT = "SELECT set_app_context($1, '')"


def targets(database: str) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]]:
    """(tenant, project, session, user) of every seeded owner, from the bench's token file."""
    rows = []
    path = ROOT / "bench" / f".targets-{database.removeprefix('tenantry_bench_')}.txt"
    for line in path.read_text().splitlines():
        tenant, project, _, token = line.split()
        claims = jwt.decode(token, options={"verify_signature": False})
        rows.append(
            (
                uuid.UUID(tenant),
                uuid.UUID(project),
                uuid.UUID(claims["sid"]),
                uuid.UUID(claims["sub"]),
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="tenantry_bench_10")
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    rows = targets(args.database)
    app = await asyncpg.connect(f"postgresql://{embedded.APP_ROLE}@127.0.0.1/{args.database}")
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1/{args.database}")

    async def principal_rls(row: Any) -> None:
        tenant, _, session, user = row
        async with app.transaction(readonly=True):  # as Database.fetch_one runs it
            await app.fetchrow("SELECT * FROM session_principal($1, $2, $3)", session, user, tenant)

    async def principal_bypass(row: Any) -> None:
        tenant, _, session, user = row
        await admin.fetchrow(STATE, session, user, tenant)

    async def page_rls(row: Any) -> None:
        tenant, project, *_ = row
        async with app.transaction():
            await app.execute(CONTEXT, str(tenant))
            await app.fetch(LIST, tenant, project)

    async def page_bypass(row: Any) -> None:
        tenant, project, *_ = row
        async with admin.transaction():
            await admin.fetch(LIST, tenant, project)

    variants: dict[str, Callable[[Any], Awaitable[None]]] = {
        "credential check, app role under RLS": principal_rls,
        "credential check, superuser (no RLS)": principal_bypass,
        "first page in a transaction, app role under RLS": page_rls,
        "first page in a transaction, superuser (no RLS)": page_bypass,
    }
    for run in variants.values():  # warm plans and caches
        for row in rows[:200]:
            await run(row)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.n):
        row = rows[i % len(rows)]
        for name, run in variants.items():
            started = time.perf_counter()
            await run(row)
            times[name].append((time.perf_counter() - started) * 1000)
    medians = {}
    for name, values in times.items():
        values.sort()
        medians[name] = statistics.median(values)
        p99 = values[int(len(values) * 0.99)]
        print(f"{name:<50} median {medians[name]:6.3f} ms  p99 {p99:6.3f} ms")
    names = list(variants)
    print(
        f"{'=> RLS overhead, credential check (median)':<50} {medians[names[0]] - medians[names[1]]:.3f} ms"
    )
    print(
        f"{'=> RLS overhead, first page (median)':<50} {medians[names[2]] - medians[names[3]]:.3f} ms"
    )
    await app.close()
    await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
