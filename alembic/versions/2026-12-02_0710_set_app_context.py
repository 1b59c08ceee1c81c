"""set_app_context(): every RLS setting through `SET LOCAL`, so Citus forwards it.

Row-level security reads its inputs from settings (`app.tenant_id`, `app.user_id`,
`app.api_key_hash`, `app.invitation_token_hash`, `app.maintenance`). They used to be set
with `set_config(…, true)`, which Citus does not forward to its workers: on a cluster
every distributed query would then see no context and answer 0 rows, without an error.
Citus replays `SET LOCAL` statements into the workers' part of the transaction when
`citus.propagate_set_commands = 'local'`, so this one function issues exactly that.

A NULL argument leaves that setting as it is; '' clears it. On plain PostgreSQL the
`citus.` setting is an inert placeholder and the rest behaves like `set_config(…, true)`:
every setting ends with the transaction.

`session_principal()` sets and restores `app.user_id` through it too. It must now run in
an explicit transaction (an autocommit statement is not forwarded either); the caller
(`Database.fetch_one`) opens one.

Revision ID: 0006_set_app_context
Revises: 0005_session_principal
Create Date: 2026-12-02 07:10:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_set_app_context"
down_revision: str | None = "0005_session_principal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PRINCIPAL = """
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
    DECLARE
        previous_user text := current_setting('app.user_id', true);
    BEGIN
        {set_user};
        RETURN QUERY
            SELECT s.revoked_at, s.expires_at, u.is_active, u.is_superuser,
                   m.role, t.status, t.plan, t.deleted_at
            FROM auth_sessions s
            JOIN users u ON u.id = s.user_id
            LEFT JOIN tenants t ON t.id = p_tenant_id
            LEFT JOIN memberships m ON m.tenant_id = t.id AND m.user_id = u.id
                                   AND m.tenant_id = p_tenant_id
            WHERE s.id = p_session_id AND s.user_id = p_user_id;
        {restore_user};
    END
    $$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION set_app_context(
            p_tenant_id text DEFAULT NULL,
            p_user_id text DEFAULT NULL,
            p_api_key_hash text DEFAULT NULL,
            p_invitation_token_hash text DEFAULT NULL,
            p_maintenance text DEFAULT NULL
        )
        RETURNS void
        LANGUAGE plpgsql
        AS $$
        BEGIN
            SET LOCAL citus.propagate_set_commands = 'local';
            IF p_tenant_id IS NOT NULL THEN
                EXECUTE format('SET LOCAL app.tenant_id = %L', p_tenant_id);
            END IF;
            IF p_user_id IS NOT NULL THEN
                EXECUTE format('SET LOCAL app.user_id = %L', p_user_id);
            END IF;
            IF p_api_key_hash IS NOT NULL THEN
                EXECUTE format('SET LOCAL app.api_key_hash = %L', p_api_key_hash);
            END IF;
            IF p_invitation_token_hash IS NOT NULL THEN
                EXECUTE format(
                    'SET LOCAL app.invitation_token_hash = %L', p_invitation_token_hash
                );
            END IF;
            IF p_maintenance IS NOT NULL THEN
                EXECUTE format('SET LOCAL app.maintenance = %L', p_maintenance);
            END IF;
        END
        $$
        """
    )
    op.execute(
        _PRINCIPAL.format(
            set_user="PERFORM set_app_context(p_user_id => p_user_id::text)",
            restore_user="PERFORM set_app_context(p_user_id => coalesce(previous_user, ''))",
        )
    )


def downgrade() -> None:
    op.execute(
        _PRINCIPAL.format(
            set_user="PERFORM set_config('app.user_id', p_user_id::text, true)",
            restore_user="PERFORM set_config('app.user_id', coalesce(previous_user, ''), true)",
        )
    )
    op.execute("DROP FUNCTION set_app_context(text, text, text, text, text)")
