"""Helpers that migrations share: row-level security and grants for the app role."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alembic import op

TENANT_SETTING = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
USER_SETTING = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def enable_tenant_rls(table: str, *, select_arms: tuple[str, ...] = ()) -> None:
    """ENABLE + FORCE RLS with a tenant policy (FORCE so even the owner obeys it).

    `select_arms` add narrow read-only ways in, e.g. `user_id = <app.user_id>` so a user
    can list their own memberships before any tenant is chosen.
    """
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = {TENANT_SETTING}) WITH CHECK (tenant_id = {TENANT_SETTING})"
    )
    for index, arm in enumerate(select_arms):
        op.execute(f"CREATE POLICY lookup_{index} ON {table} FOR SELECT USING ({arm})")


def disable_tenant_rls(table: str, *, select_arms: int = 0) -> None:
    for index in range(select_arms):
        op.execute(f"DROP POLICY IF EXISTS lookup_{index} ON {table}")
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant_app_role(connection: Connection, role: str) -> None:
    """Grant the app role data access, nothing more: it owns nothing and cannot alter
    the schema, so it can neither drop a policy nor bypass one. Idempotent; runs after
    every migration so new tables are covered."""
    quoted = connection.dialect.identifier_preparer.quote(role)
    exists = connection.execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).scalar()
    if not exists:
        raise RuntimeError(f"app role {role!r} does not exist; create it before migrating")
    connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {quoted}")
    connection.exec_driver_sql(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"
    )
    connection.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    connection.exec_driver_sql(f"REVOKE ALL ON alembic_version FROM {quoted}")
    connection.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {quoted}")
