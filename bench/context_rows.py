"""What a read under RLS costs, three ways: why `tenantry.context_rows` prepares.

    uv run python bench/run.py --tenants 10 ...          # seeds tenantry_bench_10 once
    uv run python bench/context_rows.py [--database tenantry_bench_10] [-n 3000]

Reads page 2 of one project's tasks (the API's own list statement, keyset after the
20th task, the rest of the page) as the app role, on one connection, N times each, interleaved three rounds:

- `transaction`: BEGIN READ ONLY with `set_app_context(...)`, the statement, COMMIT
  (what `Database.reads` did, and still does on Citus and behind PgBouncer);
- `text`: one call of a function that sets the context and runs the statement's text
  with `EXECUTE ... USING` (planned on every call);
- `prepared`: the `context_rows()` call `tenantry.context_rows` makes (the statement
  prepared once on the connection, its arguments as text).

Prints, per read: the client's CPU (this process: asyncpg and the event loop, what the
API's server pays), the PostgreSQL backend's CPU (read from /proc: run it on the
database's machine) and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from tenantry import context_rows, embedded
from tenantry.db import compiled
from tenantry.kit.keyset import _paged, _plan
from tenantry.tasks.repository import SORTS, _in_project
from tenantry.tasks.schemas import TaskSort

_TEXT_FUNCTION = """
CREATE FUNCTION pg_temp.rows_by_text(p_tenant text, p_sql text, p_args text[])
RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_app_context(p_tenant, '', '', '', '');
    RETURN QUERY EXECUTE p_sql USING p_args;
END $$
"""


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> None:
    dsn = f"postgresql://{embedded.APP_ROLE}@127.0.0.1:5432/{args.database}"
    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{args.database}")
    tenant, project = await admin.fetchrow("SELECT tenant_id, project_id FROM tasks LIMIT 1")
    after = await admin.fetchrow(
        "SELECT created_at, id FROM tasks WHERE tenant_id = $1 AND project_id = $2"
        " ORDER BY created_at DESC, id DESC OFFSET 19 LIMIT 1",
        tenant,
        project,
    )
    await admin.close()
    sort = SORTS[TaskSort.CREATED_AT_DESC]
    (phase,) = _plan(sort, "valued")
    stmt = _paged(_in_project(False, False, False), phase, template=True)
    values = {"tenant_id": tenant, "project_id": project, "page_limit": 21}
    values |= {"after_0": after["created_at"], "after_1": after["id"]}
    sql, bound = compiled(stmt, asyncpg_dialect.dialect(), values)

    connection = await asyncpg.connect(dsn)
    pid = await connection.fetchval("SELECT pg_backend_pid()")
    await connection.execute(_TEXT_FUNCTION)
    call = await context_rows.learn(connection, sql)
    assert call is not None
    columns = call.call.rsplit(" AS r(", 1)[1]
    by_text = (
        "SELECT * FROM pg_temp.rows_by_text($1, $2, ARRAY["
        + ", ".join(f"${n + 3}::text" for n in range(len(bound)))
        + f"]) AS r({columns}"
    )
    text_sql = context_rows._PARAM.sub(
        lambda m: f"$1[{m[1]}]", sql
    )  # each `$n::TYPE` becomes `$1[n]::TYPE`
    begin = f"BEGIN READ ONLY; SELECT set_app_context('{tenant}', '', '', '', '')"

    async def transaction() -> list[Any]:
        await connection.execute(begin)
        rows = await connection.fetch(sql, *bound)
        await connection.execute("COMMIT")
        return rows

    async def text() -> list[Any]:
        return await connection.fetch(by_text, str(tenant), text_sql, *map(str, bound))

    async def prepared() -> list[Any]:
        async def never() -> None:
            raise AssertionError("the list statement is always a call")

        return await context_rows.fetch(connection, sql, bound, str(tenant), "", otherwise=never)

    ways: dict[str, Callable[[], Awaitable[list[Any]]]] = {
        "transaction": transaction,
        "text": text,
        "prepared": prepared,
    }
    expected = [dict(row) for row in await transaction()]
    assert expected, "page 2 is empty: seed more tasks per project"
    for way in ways.values():
        assert [dict(row) for row in await way()] == expected
    measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    for _ in range(3):
        for name, way in ways.items():
            client, backend, wall = _client_cpu(), _backend_cpu(pid), time.perf_counter()
            for _ in range(args.n):
                await way()
            measured[name].append(
                (
                    (_client_cpu() - client) / args.n * 1e6,
                    (_backend_cpu(pid) - backend) / args.n * 1e6,
                    (time.perf_counter() - wall) / args.n * 1e6,
                )
            )
    await connection.close()
    print(f"page 2 of a project's tasks ({len(expected)} rows), {args.n} reads × 3 rounds:")
    print("| way | round trips | client CPU µs | backend CPU µs | wall µs |")
    print("| --- | --- | --- | --- | --- |")
    trips = {"transaction": 3, "text": 1, "prepared": 1}
    for name, rounds in measured.items():
        client, backend, wall = (statistics.median(r[i] for r in rounds) for i in range(3))
        print(f"| {name} | {trips[name]} | {client:.0f} | {backend:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="tenantry_bench_10")
    parser.add_argument("-n", type=int, default=3000)
    asyncio.run(main(parser.parse_args()))
