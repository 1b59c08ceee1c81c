"""The lookup arms of invitations and api_keys, from the attacker's side: raw SQL as the
app role. Naming a hash reveals that one row, read-only; it never widens to other rows,
never allows a write, and an empty or wrong hash sees nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tenantry.auth import tokens
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role, Tenant
from tests.fixtures.factories import make_tenant
from tests.fixtures.tenancy import make_api_key, make_invitation

pytestmark = pytest.mark.committed

# The lookup setting of each table's arm, as named by set_app_context()'s parameter.
ARMS = {
    "invitations": ("p_invitation_token_hash", "token_hash"),
    "api_keys": ("p_api_key_hash", "key_hash"),
}


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    yield connection
    await connection.close()


@pytest.fixture
async def rows(db: Database, settings: Settings) -> dict[str, dict[str, str]]:
    """Two tenants with two invitations and two keys each; the hashes by table and name."""
    out: dict[str, dict[str, str]] = {"invitations": {}, "api_keys": {}, "tenants": {}}
    for name in ("a", "b"):
        tenant: Tenant = await make_tenant(db)
        out["tenants"][name] = str(tenant.id)
        for i in range(2):
            invitation, _ = await make_invitation(db, settings, tenant, role=Role.ADMIN)
            key, _ = await make_api_key(db, settings, tenant)
            out["invitations"][f"{name}{i}"] = invitation.token_hash
            out["api_keys"][f"{name}{i}"] = key.key_hash
    return out


async def _scoped(conn: asyncpg.Connection, setting: str, value: str, tenant: str = "") -> None:
    # `setting` is one of ARMS' parameter names, never input.
    await conn.execute(f"SELECT set_app_context(p_tenant_id => $2, {setting} => $1)", value, tenant)


@pytest.mark.parametrize("table", sorted(ARMS))
class TestLookupArm:
    async def test_names_exactly_one_row(
        self, conn: asyncpg.Connection, rows: dict, table: str
    ) -> None:
        setting, column = ARMS[table]
        async with conn.transaction():
            await _scoped(conn, setting, rows[table]["b0"])
            seen = await conn.fetch(f"SELECT {column} FROM {table}")
        assert [r[column] for r in seen] == [rows[table]["b0"]]

    @pytest.mark.parametrize("value", ["", "%", "' OR true --", "0" * 64])
    async def test_empty_or_wrong_hash_sees_nothing(
        self, conn: asyncpg.Connection, rows: dict, table: str, value: str
    ) -> None:
        setting, _ = ARMS[table]
        async with conn.transaction():
            await _scoped(conn, setting, value)
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0

    async def test_cannot_write_through_the_arm(
        self, conn: asyncpg.Connection, rows: dict, table: str
    ) -> None:
        setting, column = ARMS[table]
        target = rows[table]["b0"]
        change = "revoked_at = NULL, name = 'hijacked'" if table == "api_keys" else "role = 'owner'"
        async with conn.transaction():
            await _scoped(conn, setting, target)
            updated = await conn.execute(f"UPDATE {table} SET {change} WHERE {column} = $1", target)
            deleted = await conn.execute(f"DELETE FROM {table} WHERE {column} = $1", target)
        assert updated == "UPDATE 0"
        assert deleted == "DELETE 0"

    async def test_other_tenant_context_plus_hash_still_cannot_write_b(
        self, conn: asyncpg.Connection, rows: dict, table: str
    ) -> None:
        # Tenant A's transaction that also names B's hash can see that row, not change it.
        setting, column = ARMS[table]
        target = rows[table]["b0"]
        async with conn.transaction():
            await _scoped(conn, setting, target, rows["tenants"]["a"])
            seen = {r[column] for r in await conn.fetch(f"SELECT {column} FROM {table}")}
            updated = await conn.execute(
                f"UPDATE {table} SET tenant_id = $1 WHERE {column} = $2",
                uuid.UUID(rows["tenants"]["a"]),
                target,
            )
        assert seen == {rows[table]["a0"], rows[table]["a1"], target}
        assert updated == "UPDATE 0"

    async def test_cannot_insert_into_the_named_rows_tenant(
        self, conn: asyncpg.Connection, rows: dict, settings: Settings, table: str
    ) -> None:
        setting, _ = ARMS[table]
        forged = tokens.hash_secret(settings, "forged")
        expires = datetime.now(UTC) + timedelta(days=1)
        insert = (
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes, created_at, updated_at)"
            " VALUES ($1, $2, 'x', 'tnt_x', $3, ARRAY['write'], now(), now())"
            if table == "api_keys"
            else "INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at, created_at, updated_at)"
            " VALUES ($1, $2, 'x@example.com', 'owner', $3, $4, now(), now())"
        )
        args: list[object] = [uuid.uuid4(), uuid.UUID(rows["tenants"]["b"]), forged]
        if table == "invitations":
            args.append(expires)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await _scoped(conn, setting, forged)
                await conn.execute(insert, *args)
