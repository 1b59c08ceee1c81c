"""context_rows(): a GET's read as one round trip, its RLS context set by the same call.

A read under row-level security needed three round trips on a pooled connection:
BEGIN with `set_app_context(...)`, the statement, COMMIT. Here the context and the
statement travel together: the function sets the context (`SET LOCAL`, which lasts as
long as the statement's own implicit transaction, so the connection carries nothing
after it) and executes a prepared statement by name, with its arguments as text (each
cast back to its type inside the prepared statement). Being prepared, its plan is
cached per connection as asyncpg's own statements are; a statement run by `EXECUTE` of
its text would be planned on every call. The caller sends the statement's text too:
the first call on a server connection prepares it there (whichever one a pooler
hands over), so the caller keeps no state per connection.

The statement runs read-only, as in the `BEGIN READ ONLY` it replaces. The function is
not SECURITY DEFINER: it runs as its caller, under RLS, and can do nothing the caller
could not (`tenantry.context_rows` is its one user). Not used on a
Citus coordinator, where `SET LOCAL` reaches the workers only from inside a transaction
block: there reads keep their transaction.

Revision ID: 0013_context_rows
Revises: 0012_credential_changes
Create Date: 2026-12-03 13:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_context_rows"
down_revision: str | None = "0012_credential_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION context_rows(
            p_tenant_id text, p_user_id text, p_statement text, p_sql text, p_args text[]
        )
        RETURNS SETOF record
        LANGUAGE plpgsql
        AS $$
        BEGIN
            PERFORM set_app_context(p_tenant_id, p_user_id, '', '', '');
            -- As BEGIN READ ONLY did: a read cannot write, whatever its statement says.
            PERFORM set_config('transaction_read_only', 'on', true);
            BEGIN
                RETURN QUERY EXECUTE format('EXECUTE %I(%L)', p_statement, p_args);
            EXCEPTION WHEN syntax_error OR invalid_sql_statement_name THEN
                -- Not prepared on this server connection yet (PL/pgSQL says "EXECUTE
                -- query does not return tuples"): prepare it, once per connection.
                EXECUTE format('PREPARE %I(text[]) AS %s', p_statement, p_sql);
                RETURN QUERY EXECUTE format('EXECUTE %I(%L)', p_statement, p_args);
            END;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION context_rows(text, text, text, text, text[])")
