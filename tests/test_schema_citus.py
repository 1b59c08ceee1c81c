"""The schema stays one that Citus can distribute by tenant, read from the migrated
database (what operators run), not from the models alone.

Citus refuses, on a table distributed by `tenant_id`: a primary key or unique constraint
without `tenant_id`; a foreign key to another distributed table that does not include
it, or that sets it NULL/DEFAULT on delete; and a reference (global) table with a
foreign key to a distributed one. A new tenant table that breaks a rule fails here on a
single PostgreSQL, long before anyone distributes it.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.citus import distribute, distribution_plan, has_citus
from tenantry.models import GLOBAL_TABLES, metadata

_CONSTRAINTS = sa.text(
    """
    SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype::text AS contype,
           c.confrelid::regclass::text AS referenced, c.confdeltype::text AS confdeltype,
           ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                 ORDER BY k.i) AS columns,
           ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                 ORDER BY k.i) AS referenced_columns
    FROM pg_constraint c
    WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')
    """
)
_UNIQUE_INDEXES = sa.text(
    """
    SELECT t.relname AS table_name, i.relname AS index_name,
           pg_get_indexdef(x.indexrelid) AS definition
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    WHERE t.relnamespace = 'public'::regnamespace AND x.indisunique
    """
)


@pytest.fixture(scope="module")
def tenant_tables() -> set[str]:
    return {t.name for t in metadata.sorted_tables if "tenant_id" in t.c} - GLOBAL_TABLES


async def _constraints(owner_engine: AsyncEngine) -> list[Any]:
    async with owner_engine.connect() as conn:
        return list((await conn.execute(_CONSTRAINTS)).all())


async def test_every_tenant_key_leads_with_tenant_id(
    owner_engine: AsyncEngine, tenant_tables: set[str]
) -> None:
    keys = {
        row.table_name: row.columns
        for row in await _constraints(owner_engine)
        if row.contype == "p" and row.table_name in tenant_tables
    }
    assert set(keys) == tenant_tables
    assert {table: cols[0] for table, cols in keys.items()} == dict.fromkeys(
        tenant_tables, "tenant_id"
    )


async def test_every_unique_includes_tenant_id(
    owner_engine: AsyncEngine, tenant_tables: set[str]
) -> None:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(_UNIQUE_INDEXES)).all()
    offenders = [
        row.index_name
        for row in rows
        if row.table_name in tenant_tables and "tenant_id" not in row.definition
    ]
    assert offenders == []


async def test_foreign_keys_between_tenant_tables_are_composite_and_never_set_null(
    owner_engine: AsyncEngine, tenant_tables: set[str]
) -> None:
    offenders = []
    for row in await _constraints(owner_engine):
        if row.contype != "f":
            continue
        if row.table_name in tenant_tables and row.referenced in tenant_tables:
            composite = (
                "tenant_id" in row.columns
                and row.referenced_columns[row.columns.index("tenant_id")] == "tenant_id"
            )
            if not composite or row.confdeltype in ("n", "d"):
                offenders.append(row.conname)
        if row.table_name not in tenant_tables and row.referenced in tenant_tables:
            offenders.append(row.conname)  # a global table may not point into a tenant's
    assert offenders == []


async def test_the_models_key_tenant_tables_as_the_database_does(
    owner_engine: AsyncEngine, tenant_tables: set[str]
) -> None:
    """The ORM's identity (and its UPDATE/DELETE statements) use the same key."""
    database = {
        row.table_name: list(row.columns)
        for row in await _constraints(owner_engine)
        if row.contype == "p"
    }
    models = {t.name: [c.name for c in t.primary_key.columns] for t in metadata.sorted_tables}
    assert {t: models[t] for t in tenant_tables} == {t: database[t] for t in tenant_tables}


def test_the_distribution_plan_is_derived_from_the_models(tenant_tables: set[str]) -> None:
    """A tenant table another domain adds is distributed without anyone listing it."""
    plan = distribution_plan(metadata)
    assert set(plan.distributed) == tenant_tables
    assert set(plan.reference) == {t.name for t in metadata.sorted_tables} - tenant_tables
    # Colocated with the first, and every table after the tables it references.
    order = plan.reference + plan.distributed
    for table in metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != table.name:
                assert order.index(fk.column.table.name) < order.index(table.name)


async def test_distribution_does_nothing_on_a_single_postgresql(owner_engine: AsyncEngine) -> None:
    async with owner_engine.connect() as conn:
        if await conn.run_sync(has_citus):
            pytest.skip("a Citus database: the CI job checks distribution there")
        assert await conn.run_sync(distribute, metadata) == []
