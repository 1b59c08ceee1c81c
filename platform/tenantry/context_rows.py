"""A GET's statement and its RLS context in one round trip: `context_rows()` (migration
0013).

`Database.reads` used to spend three round trips per read on a single PostgreSQL:
BEGIN with the context, the statement, COMMIT. The two besides the statement cost the
API process about 120 µs of CPU (asyncpg, the event loop), about a fifth of page 2's.
Here the statement runs alone, in its own implicit transaction, as the call

    SELECT * FROM context_rows($1, $2, '<name>', '<statement>', ARRAY[<args as text>])
    AS r(<columns>)

which sets the context and executes `<name>`, a statement prepared on the server
connection (by the function itself, the first time it meets it there): the original
SQL with each `$n` read back from the text array and cast to the type PostgreSQL gave
it. Prepared, its plan is cached per connection like asyncpg's own statements (an
`EXECUTE` of text would plan it on every call). `bench/context_rows.py` measures the
three ways.

What a call needs is learned once per statement shape per process, from PostgreSQL
itself (`learn`): the parameter and column types of the original statement, as asyncpg
prepares it. A statement that cannot be rewritten safely (a literal in its text, two
columns of one name) is read the old way, in a transaction of its own.

Not used on Citus, nor where asyncpg keeps no statements (`DB_STATEMENT_CACHE_SIZE=0`,
for a PgBouncer that cannot keep them): `Database.reads` decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# A positional parameter, not part of an identifier (`a$1` is a legal column name).
_PARAM = re.compile(r"(?<![\w$])\$(\d+)")
# What a statement's text must not hold for `_PARAM` to find only parameters: a
# string, a comment, a quoted name with a `$` in it.
_UNSAFE = re.compile(r"'|\$\$|--|/\*|\"[^\"]*\$")


@dataclass(frozen=True)
class ContextCall:
    """One statement shape as a `context_rows()` call."""

    name: str  # of the prepared statement, the same on every connection
    call: str  # $1 tenant, $2 user, then the statement's own arguments


_CALLS: dict[str, ContextCall | None] = {}
_CALLS_MAX = 512
# What a call raises when the statement a connection prepared no longer matches the
# schema (a migration while serving): learned and prepared again, once. A real error
# of these kinds is raised again on the repeat, and then passed on.
_STALE = (
    asyncpg.FeatureNotSupportedError,  # "cached plan must not change result type"
    asyncpg.DatatypeMismatchError,  # its columns are no longer the call's list
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def learn(connection: asyncpg.Connection, sql: str) -> ContextCall | None:
    """The call for `sql`, or None when it must be read in a transaction instead."""
    if _UNSAFE.search(sql):
        return None
    statement = await connection.prepare(sql)  # to read its types
    params = statement.get_parameters()
    columns = statement.get_attributes()
    names = [column.name for column in columns]
    if not columns or len(set(names)) != len(names):
        return None
    oids = list({t.oid for t in params} | {c.type.oid for c in columns})
    typed = dict(
        await connection.fetch(
            "SELECT oid, format_type(oid, NULL) FROM pg_type WHERE oid = ANY($1::oid[])", oids
        )
    )

    def read_back(found: re.Match[str]) -> str:
        n = int(found[1])
        return f"CAST($1[{n}] AS {typed[params[n - 1].oid]})"

    # The name is made from the SQL: the same on every connection and every process,
    # so a connection that prepared it for anyone holds the right statement.
    name = "tenantry_read_" + hashlib.sha256(sql.encode()).hexdigest()[:24]
    prepared = _PARAM.sub(read_back, sql)  # no quote in it: `_UNSAFE` let none through
    args = ", ".join(
        f"CAST(CAST(${n + 3} AS {typed[t.oid]}) AS text)" for n, t in enumerate(params)
    )
    listed = ", ".join(f"{_quoted(c.name)} {typed[c.type.oid]}" for c in columns)
    return ContextCall(
        name=name,
        call=(
            f"SELECT * FROM context_rows($1, $2, '{name}', '{prepared}',"
            f" ARRAY[{args}]::text[]) AS r({listed})"
        ),
    )


async def _call(connection: asyncpg.Connection, sql: str) -> ContextCall | None:
    if sql not in _CALLS:
        if len(_CALLS) >= _CALLS_MAX:
            _CALLS.clear()
        _CALLS[sql] = await learn(connection, sql)
    return _CALLS[sql]


async def _forget(connection: asyncpg.Connection, call: ContextCall, sql: str) -> None:
    """Learn `sql` again; the next call prepares it anew on this connection."""
    _CALLS.pop(sql, None)
    with contextlib.suppress(asyncpg.InvalidSQLStatementNameError):  # not prepared here
        await connection.execute(f"DEALLOCATE {call.name}")


def context_text(value: object | None) -> str:
    """An id as `set_app_context` takes it ('' clears the setting)."""
    return "" if value is None else str(value)


async def fetch(
    connection: asyncpg.Connection,
    sql: str,
    args: Sequence[Any],
    tenant: str,
    user: str,
    *,
    otherwise: Callable[[], Awaitable[None]],
) -> list[asyncpg.Record]:
    """The rows of `sql` under the context, in one round trip where it can be; else
    `otherwise()` begins a transaction under the context first (the caller ends it)."""
    rows: list[asyncpg.Record]
    for attempt in (1, 2):
        call = await _call(connection, sql)
        if call is None:
            await otherwise()
            rows = await connection.fetch(sql, *args)
            return rows
        try:
            rows = await connection.fetch(call.call, tenant, user, *args)
            return rows
        except _STALE:
            if attempt == 2:
                raise
            await _forget(connection, call, sql)
    raise AssertionError("unreachable: the second attempt returns or raises")
