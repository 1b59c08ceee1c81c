"""Distribution on a Citus cluster: global tables everywhere, tenant tables by tenant.

`tenantry migrate` calls `distribute()` after the migrations. On a single PostgreSQL
(no `citus` extension in the database) it does nothing. On a Citus coordinator it makes
every table without `tenant_id` a reference table (a copy on every node) and every
table with it a distributed table on `tenant_id`, all colocated, so one tenant's rows
of every table live on the same node and joins on (tenant_id, id) stay on one shard.

The lists come from the models' metadata, never from a hand list: a table another
domain adds is covered. Tables already distributed are skipped, so it is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

DISTRIBUTION_COLUMN = "tenant_id"
CREDENTIAL_TRIGGER_TABLES = ("users", "auth_sessions", "memberships", "tenants")


@dataclass(frozen=True)
class DistributionPlan:
    reference: list[str]  # in dependency order: referenced tables first
    distributed: list[str]  # ditto; the first is the colocation anchor


def distribution_plan(metadata: sa.MetaData) -> DistributionPlan:
    reference: list[str] = []
    distributed: list[str] = []
    for table in metadata.sorted_tables:
        (distributed if DISTRIBUTION_COLUMN in table.c else reference).append(table.name)
    return DistributionPlan(reference, distributed)


def has_citus(connection: Connection) -> bool:
    return bool(
        connection.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'citus'").scalar()
    )


def distribute(connection: Connection, metadata: sa.MetaData) -> list[str]:
    """Distribute what is not yet distributed; what it did to which table, in order.

    Runs in the caller's transaction. `citus.enable_local_reference_table_foreign_keys`
    is turned off for it: otherwise making `tenants` a reference table would first turn
    every still-local table with a foreign key to it into a "Citus local" table on the
    coordinator, which then cannot be distributed by tenant.
    """
    if not has_citus(connection):
        return []
    plan = distribution_plan(metadata)
    done: dict[str, str] = dict(
        connection.exec_driver_sql(
            "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition"
        ).all()
    )
    connection.exec_driver_sql("SET LOCAL citus.enable_local_reference_table_foreign_keys = off")
    changed = []
    # A database made on a single PostgreSQL announces credential changes with triggers
    # (migration 0012); Citus refuses to distribute a table that has one, and no API
    # process would hear a shard's NOTIFY anyway.
    for name in CREDENTIAL_TRIGGER_TABLES:
        if name not in done:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS credentials_changed ON {name}")
    for name in plan.reference:
        if name not in done:
            connection.execute(sa.text("SELECT create_reference_table(:t)"), {"t": name})
            changed.append(f"{name}: reference table")
    anchor = plan.distributed[0] if plan.distributed else None
    for name in plan.distributed:
        if name in done:
            continue
        colocate = "default" if name == anchor else anchor
        connection.execute(
            sa.text("SELECT create_distributed_table(:t, :column, colocate_with => :with)"),
            {"t": name, "column": DISTRIBUTION_COLUMN, "with": colocate},
        )
        changed.append(f"{name}: distributed by {DISTRIBUTION_COLUMN}, colocated with {anchor}")
    return changed
