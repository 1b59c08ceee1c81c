"""Refresh grace window on auth_sessions; scrub the bodies of delivered outbox rows.

- `auth_sessions.previous_refresh_token_hash`, `rotated_at` and `grace_pair`: the token
  a refresh just rotated out is answered again, with the same new pair, for a short
  window (browser tabs refreshing at once); `grace_pair` holds that pair encrypted
  under a key derived from the rotated-out token, which is stored only as a hash.
- `email_outbox`: bodies carry one-time tokens (invitation, reset, verification).
  Rows already sent or dead lose them now; delivery scrubs every later one.

Revision ID: 0007_refresh_grace_outbox_scrub
Revises: 0006_set_app_context
Create Date: 2026-12-02 07:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_refresh_grace_outbox_scrub"
down_revision: str | None = "0006_set_app_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCRUBBED = "(body removed once sent or dead: it held a one-time token)"


def upgrade() -> None:
    op.add_column(
        "auth_sessions",
        sa.Column("previous_refresh_token_hash", sa.String(length=64), nullable=True),
    )
    op.add_column("auth_sessions", sa.Column("rotated_at", sa.DateTime(timezone=True)))
    op.add_column("auth_sessions", sa.Column("grace_pair", sa.Text(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE email_outbox SET text_body = :scrubbed, html_body = NULL"
            " WHERE status IN ('sent', 'dead')"
        ).bindparams(scrubbed=SCRUBBED)
    )


def downgrade() -> None:
    op.drop_column("auth_sessions", "grace_pair")
    op.drop_column("auth_sessions", "rotated_at")
    op.drop_column("auth_sessions", "previous_refresh_token_hash")
