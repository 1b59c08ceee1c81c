"""session_principal(): the per-request credential check as one statement.

Every request with an access token asks the same question — is this session live, is
the user active, what is their role in the token's tenant now, and is that tenant
usable — and the memberships part is only visible under RLS once `app.user_id` is set.
Through the ORM that was four round trips (BEGIN, set_config, the query, COMMIT) and
more CPU than the rest of a cached read. As a function it is one statement that needs
no transaction: it sets `app.user_id` itself, reads, and puts the setting back, so it
leaves no RLS context behind in whatever transaction it runs in.

SECURITY INVOKER (the default): it runs as the app role, under the same policies.

Revision ID: 0005_session_principal
Revises: 0004_data
Create Date: 2026-11-26 01:10:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_session_principal"
down_revision: str | None = "0004_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION session_principal(
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
        DECLARE
            previous_user text := current_setting('app.user_id', true);
        BEGIN
            PERFORM set_config('app.user_id', p_user_id::text, true);
            RETURN QUERY
                SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
                       m.role, t.status, t.plan, t.deleted_at
                FROM auth_sessions s
                JOIN users u ON u.id = s.user_id
                LEFT JOIN tenants t ON t.id = p_tenant_id
                LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
                WHERE s.id = p_session_id AND s.user_id = p_user_id;
            PERFORM set_config('app.user_id', coalesce(previous_user, ''), true);
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION session_principal(uuid, uuid, uuid)")
