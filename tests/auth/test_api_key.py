"""API keys as credentials: format and checksum, lookup, expiry, revocation, last use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from tenantry.auth.api_key import (
    API_KEY_PREFIX,
    KEY_LENGTH,
    LAST_USED_RESOLUTION,
    generate_key,
    granted_scopes,
    is_well_formed,
)
from tenantry.auth.principal import Scope
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import ApiKey, Tenant, TenantStatus
from tests.fixtures.factories import make_tenant
from tests.fixtures.tenancy import make_api_key


class TestKeyFormat:
    def test_generated_keys_are_well_formed_and_distinct(self) -> None:
        keys = {generate_key() for _ in range(200)}
        assert len(keys) == 200
        assert all(k.startswith(API_KEY_PREFIX) and len(k) == KEY_LENGTH for k in keys)
        assert all(is_well_formed(k) for k in keys)

    def test_any_single_typo_fails_the_checksum(self) -> None:
        key = generate_key()
        for position in range(len(API_KEY_PREFIX), len(key)):
            replacement = "a" if key[position] != "a" else "b"
            typo = key[:position] + replacement + key[position + 1 :]
            assert not is_well_formed(typo), position

    @pytest.mark.parametrize(
        "key", ["tnt_", "tnt_short", "xyz_" + "a" * 36, "tnt_" + "-" * 36, "tnt_" + "a" * 37]
    )
    def test_malformed(self, key: str) -> None:
        assert not is_well_formed(key)

    def test_write_implies_read(self) -> None:
        assert granted_scopes(["write"]) == {Scope.READ, Scope.WRITE}
        assert granted_scopes(["read"]) == {Scope.READ}
        assert granted_scopes(["admin"]) == frozenset()


async def _key_row(db: Database, tenant: Tenant, key_id: object) -> ApiKey:
    async with db.session_scope(tenant.id) as session:
        return (
            await session.execute(sa.select(ApiKey).where(ApiKey.id == key_id))  # type: ignore[arg-type]
        ).scalar_one()


class TestKeyAsCredential:
    @pytest.mark.parametrize("style", ["bearer", "x-api-key"])
    async def test_accepted_in_either_header(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, style: str
    ) -> None:
        tenant = await make_tenant(db)
        _, key = await make_api_key(db, settings, tenant)
        headers = {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}
        response = await client.get("/api/v1/tenant", headers=headers)
        assert response.status_code == 200
        assert response.json()["id"] == str(tenant.id)

    @pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "typo"])
    async def test_dead_keys_are_401(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, state: str
    ) -> None:
        tenant = await make_tenant(db)
        _, key = await make_api_key(
            db,
            settings,
            tenant,
            revoked=state == "revoked",
            expires_at=datetime.now(UTC) - timedelta(seconds=1) if state == "expired" else None,
        )
        if state == "unknown":
            key = generate_key()
        elif state == "typo":
            key = key[:-1] + ("a" if key[-1] != "a" else "b")
        response = await client.get("/api/v1/tenant", headers={"X-API-Key": key})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"

    async def test_suspended_tenant_is_403(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        _, key = await make_api_key(db, settings, tenant)
        async with db.session_scope() as session:
            await session.execute(
                sa.update(Tenant)
                .where(Tenant.id == tenant.id)
                .values(status=TenantStatus.SUSPENDED)  # type: ignore[arg-type]
            )
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).status_code == 403

    async def test_read_key_cannot_write_and_keys_cannot_administer(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        _, read_key = await make_api_key(db, settings, tenant, scopes=("read",))
        _, write_key = await make_api_key(db, settings, tenant, scopes=("write",))
        for key in (read_key, write_key):
            assert (
                await client.get("/api/v1/members", headers={"X-API-Key": key})
            ).status_code == 200
            assert (
                await client.get("/api/v1/api-keys", headers={"X-API-Key": key})
            ).status_code == 403

    async def test_last_used_is_written_at_most_once_per_resolution(
        self, client: httpx.AsyncClient, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        row, key = await make_api_key(db, settings, tenant)
        assert row.last_used_at is None
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).status_code == 200
        first = (await _key_row(db, tenant, row.id)).last_used_at
        assert first is not None
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).status_code == 200
        assert (await _key_row(db, tenant, row.id)).last_used_at == first
        # Once the resolution has passed, the next use moves it.
        stale = first - LAST_USED_RESOLUTION - timedelta(seconds=1)
        async with db.session_scope(tenant.id) as session:
            await session.execute(
                sa.update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=stale)  # type: ignore[arg-type]
            )
        assert (await client.get("/api/v1/tenant", headers={"X-API-Key": key})).status_code == 200
        moved = (await _key_row(db, tenant, row.id)).last_used_at
        assert moved is not None and moved > stale
