"""session_principal() reads the membership on its own, by (tenant_id, user_id).

The old body outer-joined `memberships` (distributed on Citus) to `tenants` (a
reference table) on `t.id = p_tenant_id`. With no tenant in the token (p_tenant_id NULL)
Citus 13.2's planner crashed the backend on that join (a segfault, so every request of a
token without a tenant answered 503). Now the membership is a separate single-row read
by its key, `tenant_id = p_tenant_id AND user_id = p_user_id`, which routes to one shard
and is skipped when there is no tenant; the rest reads only global tables. Same columns,
same answers, on a single PostgreSQL too.

Revision ID: 0011_principal_on_citus
Revises: 0010_tenant_keys
Create Date: 2026-12-02 08:35:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_principal_on_citus"
down_revision: str | None = "0010_tenant_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = """
    CREATE OR REPLACE FUNCTION session_principal(
        p_session_id uuid, p_user_id uuid, p_tenant_id uuid
    )
    RETURNS TABLE (
        revoked_at timestamptz,
        expires_at timestamptz,
        is_active boolean,
        is_superuser boolean,
        role varchar,
        tenant_status varchar,
        tenant_plan varchar,
        tenant_deleted_at timestamptz
    )
    LANGUAGE plpgsql
    AS $$
"""


def upgrade() -> None:
    op.execute(
        _SIGNATURE
        + """
        DECLARE
            previous_user text := current_setting('app.user_id', true);
            member_role varchar;
        BEGIN
            PERFORM set_app_context(p_user_id => p_user_id::text);
            IF p_tenant_id IS NOT NULL THEN
                SELECT m.role INTO member_role FROM memberships m
                 WHERE m.tenant_id = p_tenant_id AND m.user_id = p_user_id;
            END IF;
            RETURN QUERY
                SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
                       CASE WHEN t.id IS NULL THEN NULL ELSE member_role END,
                       t.status, t.plan, t.deleted_at
                FROM auth_sessions s
                JOIN users u ON u.id = s.user_id
                LEFT JOIN tenants t ON t.id = p_tenant_id
                WHERE s.id = p_session_id AND s.user_id = p_user_id;
            PERFORM set_app_context(p_user_id => coalesce(previous_user, ''));
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        _SIGNATURE
        + """
        DECLARE
            previous_user text := current_setting('app.user_id', true);
        BEGIN
            PERFORM set_app_context(p_user_id => p_user_id::text);
            RETURN QUERY
                SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
                       m.role, t.status, t.plan, t.deleted_at
                FROM auth_sessions s
                JOIN users u ON u.id = s.user_id
                LEFT JOIN tenants t ON t.id = p_tenant_id
                LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
                                       AND m.tenant_id = p_tenant_id
                WHERE s.id = p_session_id AND s.user_id = p_user_id;
            PERFORM set_app_context(p_user_id => coalesce(previous_user, ''));
        END
        $$
        """
    )
