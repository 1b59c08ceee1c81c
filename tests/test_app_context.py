"""set_app_context(): the one way RLS inputs are set, as `SET LOCAL` (which Citus
forwards to its workers, unlike `set_config(…, true)`), and only for one transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tenantry.config import Settings
from tenantry.db import Database

pytestmark = pytest.mark.committed

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("tenant_id", "user_id", "api_key_hash", "invitation_token_hash", "maintenance")
READ = "SELECT " + ", ".join(f"current_setting('app.{name}', true) AS {name}" for name in SETTINGS)


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    yield connection
    await connection.close()


async def _read(conn: asyncpg.Connection) -> dict[str, str | None]:
    row = await conn.fetchrow(READ)
    assert row is not None
    return {name: row[name] for name in SETTINGS}


async def test_sets_every_setting_for_the_transaction_only(conn: asyncpg.Connection) -> None:
    values = {name: f"{name}-{uuid.uuid4().hex[:6]}" for name in SETTINGS}
    async with conn.transaction():
        await conn.execute(
            "SELECT set_app_context($1, $2, $3, $4, $5)", *(values[name] for name in SETTINGS)
        )
        assert await _read(conn) == values
        # The switch that makes Citus replay these SET LOCALs on its workers.
        assert await conn.fetchval("SHOW citus.propagate_set_commands") == "local"
    after = await _read(conn)
    assert all(value in (None, "") for value in after.values()), after


async def test_null_keeps_a_setting_and_empty_clears_it(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute("SELECT set_app_context('t', 'u', 'k', 'i', 'm')")
        await conn.execute("SELECT set_app_context(p_user_id => '', p_maintenance => 'x')")
        assert await _read(conn) == {
            "tenant_id": "t",
            "user_id": "",
            "api_key_hash": "k",
            "invitation_token_hash": "i",
            "maintenance": "x",
        }


async def test_a_value_is_data_not_sql(conn: asyncpg.Connection) -> None:
    hostile = "x'; SET LOCAL app.user_id = 'owned"
    async with conn.transaction():
        await conn.execute("SELECT set_app_context(p_tenant_id => $1)", hostile)
        assert await conn.fetchval("SELECT current_setting('app.tenant_id', true)") == hostile
        assert await conn.fetchval("SELECT current_setting('app.user_id', true)") in (None, "")


async def test_the_credential_check_runs_in_an_explicit_transaction_on_citus(
    db: Database,
) -> None:
    """An autocommit statement's SET LOCAL would not reach Citus's workers."""
    db.citus = True
    row = await db.fetch_one("SELECT current_setting('transaction_read_only') AS read_only")
    assert row == {"read_only": "on"}


async def test_the_credential_check_is_one_statement_on_a_single_postgresql(
    db: Database, conn: asyncpg.Connection
) -> None:
    """No BEGIN/COMMIT round trips where nothing needs them; and the detection that
    chooses agrees with the server."""
    citus = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'citus'")
    assert await db.detect_citus() is bool(citus)
    db.citus = False
    row = await db.fetch_one("SELECT current_setting('transaction_read_only') AS read_only")
    assert row == {"read_only": "off"}  # no BEGIN READ ONLY was sent


def test_no_code_sets_an_rls_input_but_through_set_app_context() -> None:
    """`set_config('app.…')` works on one PostgreSQL and silently sees nothing on Citus."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("platform", "workers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"set_config\s*\(", line)
    ]
    assert offenders == []
