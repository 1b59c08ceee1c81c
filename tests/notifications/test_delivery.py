"""Outbox delivery against a real SMTP server: claim, send, record; retries and dead rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col

from tenantry.config import Environment, Settings
from tenantry.db import Database
from tenantry.models import EmailOutbox
from tenantry.notifications.delivery import SCRUBBED, Outcome, backoff_seconds, email_delivery
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.observability.metrics import EMAILS
from tests.fixtures.smtp import SmtpServer, free_port


async def _queue(db: Database, to: str = "someone@example.com") -> uuid.UUID:
    async with db.session_scope() as session:
        row = queue_email(
            session,
            EmailKind.WELCOME,
            to=to,
            name="Someone",
            token="tok-123",
            link="http://localhost:8000/verify-email?token=tok-123",
        )
    return row.id


async def _row(db: Database, row_id: uuid.UUID) -> EmailOutbox:
    async with db.session_scope() as session:
        row = await session.get(EmailOutbox, row_id)
    assert row is not None
    return row


async def _make_due(db: Database, row_id: uuid.UUID) -> None:
    async with db.session_scope() as session:
        await session.execute(
            sa.update(EmailOutbox)
            .where(col(EmailOutbox.id) == row_id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.fixture
def smtp_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(update=smtp.settings_overrides())


class TestDeliver:
    async def test_sent_once(self, db: Database, smtp_settings: Settings, smtp: SmtpServer) -> None:
        row_id = await _queue(db)
        before = EMAILS.labels(outcome="sent")._value.get()
        result = await email_delivery.deliver(db, smtp_settings, row_id)
        assert result.outcome is Outcome.SENT
        (accepted,) = smtp.recorder.to("someone@example.com")
        assert accepted.message["Subject"] == "Welcome to Tenantry — verify your email"
        assert accepted.message["Message-ID"] == f"<{row_id}@tenantry>"
        assert "tok-123" in accepted.text
        assert accepted.message.get_body(preferencelist=("html",)) is not None
        row = await _row(db, row_id)
        assert row.status == "sent" and row.sent_at is not None and row.attempts == 1
        assert EMAILS.labels(outcome="sent")._value.get() == before + 1
        # A duplicate job (relay, ARQ retry) finds nothing to do.
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.SKIPPED
        assert len(smtp.recorder.to("someone@example.com")) == 1

    async def test_transient_failure_retries_later(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        smtp.recorder.reply = "451 4.3.0 Try again later"
        row_id = await _queue(db)
        result = await email_delivery.deliver(db, smtp_settings, row_id)
        assert result.outcome is Outcome.RETRIED
        assert result.retry_in is not None and result.retry_in > 0
        row = await _row(db, row_id)
        assert row.status == "pending" and row.attempts == 1
        assert row.next_attempt_at > datetime.now(UTC)
        assert row.last_error and "451" in row.last_error
        # Not due yet: a second job does nothing.
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.SKIPPED
        smtp.recorder.reply = None
        await _make_due(db, row_id)
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.SENT
        assert (await _row(db, row_id)).attempts == 2

    async def test_unreachable_server_retries(self, db: Database, settings: Settings) -> None:
        closed = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": free_port()})
        row_id = await _queue(db)
        assert (await email_delivery.deliver(db, closed, row_id)).outcome is Outcome.RETRIED

    async def test_dead_after_last_try(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        two_tries = smtp_settings.model_copy(update={"email_max_attempts": 2})
        smtp.recorder.reply = "421 4.7.0 Too busy"
        row_id = await _queue(db)
        before = EMAILS.labels(outcome="dead")._value.get()
        assert (await email_delivery.deliver(db, two_tries, row_id)).outcome is Outcome.RETRIED
        await _make_due(db, row_id)
        assert (await email_delivery.deliver(db, two_tries, row_id)).outcome is Outcome.DEAD
        row = await _row(db, row_id)
        assert row.status == "dead" and row.attempts == 2
        assert EMAILS.labels(outcome="dead")._value.get() == before + 1
        await _make_due(db, row_id)
        assert (await email_delivery.deliver(db, two_tries, row_id)).outcome is Outcome.SKIPPED

    async def test_permanent_refusal_dead_at_once(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        smtp.recorder.reply = "550 5.1.1 No such user"
        row_id = await _queue(db)
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.DEAD
        assert (await _row(db, row_id)).attempts == 1

    async def test_claimed_row_is_left_alone(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        row_id = await _queue(db)
        async with db.session_scope() as session:
            # As a claim does: the lease pushes next_attempt_at into the future.
            await session.execute(
                sa.update(EmailOutbox)
                .where(col(EmailOutbox.id) == row_id)
                .values(attempts=1, next_attempt_at=datetime.now(UTC) + timedelta(minutes=2))
            )
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.SKIPPED
        assert smtp.recorder.accepted == []

    async def test_unknown_row_skipped(self, db: Database, smtp_settings: Settings) -> None:
        result = await email_delivery.deliver(db, smtp_settings, uuid.uuid4())
        assert result.outcome is Outcome.SKIPPED


class TestScrub:
    """No one-time token stays at rest in the outbox once a row is sent or dead (issue
    #15, item 5); what an operator needs to follow the delivery does."""

    async def test_sent_row_keeps_no_token(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        row_id = await _queue(db, to="scrub@example.com")
        assert "tok-123" in (await _row(db, row_id)).text_body  # pending: still needed
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.SENT
        (accepted,) = smtp.recorder.to("scrub@example.com")
        assert "tok-123" in accepted.text  # the recipient got it
        row = await _row(db, row_id)
        assert "tok-123" not in row.text_body and row.html_body is None
        assert row.text_body == SCRUBBED
        assert (row.to_email, row.kind, row.status, row.attempts) == (
            "scrub@example.com",
            EmailKind.WELCOME.value,
            "sent",
            1,
        )
        assert row.subject == "Welcome to Tenantry — verify your email"

    async def test_dead_row_keeps_no_token_but_its_error(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        smtp.recorder.reply = "550 5.1.1 No such user"
        row_id = await _queue(db)
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.DEAD
        row = await _row(db, row_id)
        assert "tok-123" not in row.text_body and row.html_body is None
        assert row.status == "dead" and row.last_error and "550" in row.last_error

    async def test_retried_row_keeps_its_body(
        self, db: Database, smtp_settings: Settings, smtp: SmtpServer
    ) -> None:
        smtp.recorder.reply = "451 4.3.0 Try again later"
        row_id = await _queue(db)
        assert (await email_delivery.deliver(db, smtp_settings, row_id)).outcome is Outcome.RETRIED
        assert "tok-123" in (await _row(db, row_id)).text_body


class TestSink:
    async def test_no_smtp_host_writes_eml(
        self, db: Database, settings: Settings, tmp_path: Path
    ) -> None:
        sink = settings.model_copy(update={"smtp_host": None, "mail_sink_dir": str(tmp_path)})
        row_id = await _queue(db, "dev@example.com")
        assert (await email_delivery.deliver(db, sink, row_id)).outcome is Outcome.SENT
        (eml,) = tmp_path.glob("*.eml")  # noqa: ASYNC240
        message = message_from_bytes(eml.read_bytes(), policy=default_policy)
        assert message["To"] == "dev@example.com"
        assert "?token=tok-123" in eml.read_text()

    async def test_production_without_smtp_retries_not_drops(
        self, db: Database, settings: Settings
    ) -> None:
        prod = settings.model_copy(
            update={"smtp_host": None, "mail_sink_dir": None, "environment": Environment.PRODUCTION}
        )
        row_id = await _queue(db)
        assert (await email_delivery.deliver(db, prod, row_id)).outcome is Outcome.RETRIED
        assert (await _row(db, row_id)).status == "pending"


class TestDue:
    async def test_only_overdue_pending_rows(self, db: Database, settings: Settings) -> None:
        fresh, overdue, sent = await _queue(db), await _queue(db), await _queue(db)
        async with db.session_scope() as session:
            past = datetime.now(UTC) - timedelta(minutes=5)
            await session.execute(
                sa.update(EmailOutbox)
                .where(col(EmailOutbox.id).in_([overdue, sent]))
                .values(next_attempt_at=past)
            )
            await session.execute(
                sa.update(EmailOutbox).where(col(EmailOutbox.id) == sent).values(status="sent")
            )
        due = {d.id for d in await email_delivery.due(db, settings)}
        assert overdue in due
        assert fresh not in due and sent not in due


class TestBackoff:
    def test_grows_and_caps_with_jitter(self, settings: Settings) -> None:
        s = settings.model_copy(
            update={"email_backoff_base_seconds": 10.0, "email_backoff_max_seconds": 100.0}
        )
        for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (20, 100)]:
            values = {backoff_seconds(s, attempts) for _ in range(20)}
            assert all(ceiling / 2 <= v <= ceiling for v in values)
            assert len(values) > 1
