"""Tenant tables keyed by (tenant_id, id): the schema Citus can distribute by tenant.

A table distributed by `tenant_id` must carry `tenant_id` in every primary key and unique
constraint, and foreign keys between such tables must include it; `ON DELETE SET NULL`
is refused on them. This migration changes the schema in place, on existing data, and
is an ordinary migration on a single PostgreSQL too:

- every tenant table's primary key becomes (tenant_id, id) — report_chunks
  (tenant_id, report_id, seq); api_usage_daily already is (tenant_id, day);
- report_chunks → reports becomes composite (tenant_id, report_id), and so does
  comments → tasks (tenant_id, task_id);
- tasks → projects now references the primary key (the extra unique goes);
- tasks → memberships (assignee) loses `SET NULL (assignee_id)`: removing a member
  unassigns their tasks in the members service, in the same transaction;
- the globally unique hashes (api_keys.key_hash, invitations.token_hash) become unique
  per tenant, with a plain index for the lookup that has no tenant yet (an HMAC of 178
  random bits does not collide; the uniqueness was never what protected them).

No global table has a foreign key to a tenant table (tests/test_schema_citus.py keeps
it so).

Revision ID: 0010_tenant_keys
Revises: 0009_webhooks
Create Date: 2026-12-02 07:50:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_tenant_keys"
down_revision: str | None = "0009_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_ID = ("memberships", "invitations", "api_keys", "audit_events", "projects", "tasks", "reports")
_HASHES = (("api_keys", "key_hash"), ("invitations", "token_hash"))


def upgrade() -> None:
    # Foreign keys hang on the indexes replaced below: drop them first, add them back last.
    op.execute("ALTER TABLE tasks DROP CONSTRAINT fk_tasks_project")
    op.execute("ALTER TABLE tasks DROP CONSTRAINT fk_tasks_assignee_membership")
    op.execute("ALTER TABLE report_chunks DROP CONSTRAINT fk_report_chunks_report_id_reports")
    op.execute("ALTER TABLE comments DROP CONSTRAINT fk_comments_task_id_tasks")

    for table in _BY_ID:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table},"
            f" ADD CONSTRAINT pk_{table} PRIMARY KEY (tenant_id, id)"
        )
    op.execute(
        "ALTER TABLE report_chunks DROP CONSTRAINT pk_report_chunks,"
        " ADD CONSTRAINT pk_report_chunks PRIMARY KEY (tenant_id, report_id, seq)"
    )
    op.execute("ALTER TABLE projects DROP CONSTRAINT uq_projects_tenant_id_id")
    for table, column in _HASHES:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT uq_{table}_{column},"
            f" ADD CONSTRAINT uq_{table}_tenant_id_{column} UNIQUE (tenant_id, {column})"
        )
        op.execute(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")

    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT fk_tasks_project FOREIGN KEY (tenant_id, project_id)"
        " REFERENCES projects (tenant_id, id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT fk_tasks_assignee_membership"
        " FOREIGN KEY (tenant_id, assignee_id) REFERENCES memberships (tenant_id, user_id)"
    )
    op.execute(
        "ALTER TABLE report_chunks ADD CONSTRAINT fk_report_chunks_report"
        " FOREIGN KEY (tenant_id, report_id) REFERENCES reports (tenant_id, id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE comments ADD CONSTRAINT fk_comments_task"
        " FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE CASCADE"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE comments DROP CONSTRAINT fk_comments_task")
    op.execute("ALTER TABLE report_chunks DROP CONSTRAINT fk_report_chunks_report")
    op.execute("ALTER TABLE tasks DROP CONSTRAINT fk_tasks_assignee_membership")
    op.execute("ALTER TABLE tasks DROP CONSTRAINT fk_tasks_project")
    for table, column in _HASHES:
        op.execute(f"DROP INDEX ix_{table}_{column}")
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT uq_{table}_tenant_id_{column},"
            f" ADD CONSTRAINT uq_{table}_{column} UNIQUE ({column})"
        )
    op.execute(
        "ALTER TABLE projects ADD CONSTRAINT uq_projects_tenant_id_id UNIQUE (tenant_id, id)"
    )
    op.execute(
        "ALTER TABLE report_chunks DROP CONSTRAINT pk_report_chunks,"
        " ADD CONSTRAINT pk_report_chunks PRIMARY KEY (report_id, seq)"
    )
    for table in _BY_ID:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table},"
            f" ADD CONSTRAINT pk_{table} PRIMARY KEY (id)"
        )
    op.execute(
        "ALTER TABLE report_chunks ADD CONSTRAINT fk_report_chunks_report_id_reports"
        " FOREIGN KEY (report_id) REFERENCES reports (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT fk_tasks_assignee_membership"
        " FOREIGN KEY (tenant_id, assignee_id) REFERENCES memberships (tenant_id, user_id)"
        " ON DELETE SET NULL (assignee_id)"
    )
    op.execute(
        "ALTER TABLE comments ADD CONSTRAINT fk_comments_task_id_tasks"
        " FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT fk_tasks_project FOREIGN KEY (tenant_id, project_id)"
        " REFERENCES projects (tenant_id, id) ON DELETE CASCADE"
    )
