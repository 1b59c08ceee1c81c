"""Comments on tasks: keyed (tenant_id, id), forced RLS, gone with their task.

Revision ID: 0008_comments
Revises: 0007_refresh_grace_outbox_scrub
Create Date: 2026-12-02 08:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from tenantry.migrations import disable_tenant_rls, enable_tenant_rls

revision: str = "0008_comments"
down_revision: str | None = "0007_refresh_grace_outbox_scrub"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_comments")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_comments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_comments_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_comments_author_id_users")
        ),
        sa.CheckConstraint(
            "char_length(body) BETWEEN 1 AND 10000", name=op.f("ck_comments_body_length")
        ),
    )
    op.create_index(op.f("ix_comments_tenant_id"), "comments", ["tenant_id"])
    op.create_index(
        "ix_comments_task_created", "comments", ["tenant_id", "task_id", "created_at", "id"]
    )
    enable_tenant_rls("comments")


def downgrade() -> None:
    disable_tenant_rls("comments")
    op.drop_table("comments")
