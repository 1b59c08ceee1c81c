"""The transactional outbox: an email is a row in the transaction that caused it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.jobs import Job, enqueue
from tenantry.models import EmailOutbox
from tenantry.notifications.templates import EmailKind, render


def queue_email(
    session: AsyncSession,
    kind: EmailKind,
    *,
    to: str,
    tenant_id: uuid.UUID | None = None,
    **context: Any,
) -> EmailOutbox:
    """Add the outbox row and buffer its delivery job (sent only after the commit).

    If the enqueue is lost (Redis down, worker killed), the relay cron finds the row
    still pending and enqueues it again, so the email is delayed, never lost.
    """
    rendered = render(kind, **context)
    row = EmailOutbox(
        kind=kind.value,
        to_email=to,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        tenant_ref=tenant_id,
    )
    session.add(row)
    enqueue(session, Job.DELIVER_EMAIL, job_id=f"email:{row.id}", outbox_id=str(row.id))
    return row
