"""Credential rows say when they change: NOTIFY on `tenantry_credentials`.

Each API process keeps credential checks and `/users/me` bodies while generations in
Redis hold, and the API's unit of work bumps them after its own writes. A write past the
API (SQL by hand, a script, a restore) bumped nothing and was seen only when the kept
answer expired. These triggers announce every committed change of a row the credential
check reads, whoever made it, as `u:<user id>` or `t:<tenant id>`; the API's listener
(`tenantry.auth.credential_changes`) bumps the generation named.

Not on a Citus coordinator: a trigger there fires on the shards' nodes, whose NOTIFY
no API process hears (`tenantry.citus.distribute` drops them if a database made on a
single PostgreSQL is distributed later). There kept answers stand only for their short
time, as before.

Revision ID: 0012_credential_changes
Revises: 0011_principal_on_citus
Create Date: 2026-12-03 08:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_credential_changes"
down_revision: str | None = "0011_principal_on_citus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → (what the payload names, the column holding its id, the events announced).
# A new auth session changes no kept answer (none can exist before its row).
_TABLES = {
    "users": ("u", "id", "UPDATE OR DELETE"),
    "auth_sessions": ("u", "user_id", "UPDATE OR DELETE"),
    "memberships": ("u", "user_id", "INSERT OR UPDATE OR DELETE"),
    "tenants": ("t", "id", "UPDATE OR DELETE"),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION credentials_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            -- Delivered at COMMIT, once per distinct payload per transaction.
            PERFORM pg_notify(
                'tenantry_credentials',
                TG_ARGV[0] || ':' || (to_jsonb(COALESCE(NEW, OLD)) ->> TG_ARGV[1])
            );
            RETURN NULL;
        END
        $$
        """
    )
    tables = "\n".join(
        f"EXECUTE 'CREATE TRIGGER credentials_changed AFTER {events} ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION credentials_changed(''{kind}'', ''{column}'')';"
        for table, (kind, column, events) in _TABLES.items()
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
                {tables}
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS credentials_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS credentials_changed()")
