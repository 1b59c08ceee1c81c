"""Delivering outbox rows: claim, send, record — in that order, in separate steps.

1. **Claim** (one short transaction): `SELECT … FOR UPDATE SKIP LOCKED` picks the row only
   if it is pending, due and not being claimed by another worker right now; the same
   statement counts the attempt and pushes `next_attempt_at` a lease into the future,
   then commits. For the lease, no other worker (nor the relay) touches the row. A row
   never tried is always due (its `next_attempt_at` comes from the API server's clock,
   which may run ahead of the database's). Times are `clock_timestamp()`, the moment
   the statement runs, not the transaction's start.
2. **Send** over SMTP with no transaction and no pooled connection held; the whole send
   is bounded by 2 × SMTP_TIMEOUT, which must stay below the lease.
3. **Record** (another short transaction): sent, or a retry time with backoff, or dead.

Why this order: holding the row lock across the SMTP conversation would pin a database
connection per email in flight and still not make delivery exactly-once. Two workers
never send the same row, because the claim is atomic and the lease outlasts a send.
The one duplicate left is the window the contract names: the SMTP server accepted the message
and the worker died (or lost the database) before step 3 committed; the row stays
pending, its lease runs out, the relay re-enqueues it and it is sent again. (A timeout
waiting for the server's answer to DATA is the same ambiguity from the other side, so
keep SMTP_TIMEOUT generous.) Each message carries `Message-ID: <outbox id@tenantry>`,
so a receiving system can drop such a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from pathlib import Path

import aiosmtplib
import anyio
import sqlalchemy as sa
from arq.connections import ArqRedis
from redis.exceptions import LockError

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.devtools.mail import readable
from tenantry.jobs import Job
from tenantry.observability.metrics import EMAILS

logger = logging.getLogger("tenantry.emails")

RELAY_LOCK = "tenantry:lock:emails.relay"


class Outcome(StrEnum):
    SENT = "sent"
    RETRIED = "retried"
    DEAD = "dead"
    SKIPPED = "skipped"  # not pending, not due, or claimed by another worker


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    attempts: int = 0
    retry_in: float | None = None


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    to_email: str
    subject: str
    text_body: str
    html_body: str | None
    attempts: int


@dataclass(frozen=True)
class _Due:
    id: uuid.UUID
    attempts: int


class PermanentFailure(Exception):
    """The server refused for good (5xx): retrying cannot help."""


_CLAIM = sa.text(
    """
    UPDATE email_outbox
       SET attempts = attempts + 1,
           next_attempt_at = clock_timestamp() + make_interval(secs => :lease),
           updated_at = clock_timestamp()
     WHERE id = (
           SELECT id FROM email_outbox
            WHERE id = :id AND status = 'pending'
              AND (attempts = 0 OR next_attempt_at <= clock_timestamp())
            FOR UPDATE SKIP LOCKED)
    RETURNING id, to_email, subject, text_body, html_body, attempts
    """
)
# Bodies carry one-time tokens (invitation, reset, verification links), which at rest
# live only as hashes: once a row is sent or dead its body goes. What an operator needs
# to follow a delivery stays: recipient, subject, kind (the template), status,
# attempts, last error and times.
SCRUBBED = "(body removed once sent or dead: it held a one-time token)"
_SENT = sa.text(
    """
    UPDATE email_outbox
       SET status = 'sent', sent_at = clock_timestamp(), last_error = NULL,
           text_body = :scrubbed, html_body = NULL, updated_at = clock_timestamp()
     WHERE id = :id AND status = 'pending'
    """
)
# Only the claim this worker holds may record a failure (`attempts` fences a stale one).
_RETRY = sa.text(
    """
    UPDATE email_outbox
       SET next_attempt_at = clock_timestamp() + make_interval(secs => :delay),
           last_error = :error, updated_at = clock_timestamp()
     WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)
_DEAD = sa.text(
    """
    UPDATE email_outbox
       SET status = 'dead', last_error = :error, text_body = :scrubbed, html_body = NULL,
           updated_at = clock_timestamp()
     WHERE id = :id AND status = 'pending' AND attempts = :attempts
    """
)
_DUE = sa.text(
    """
    SELECT id, attempts FROM email_outbox
     WHERE status = 'pending'
       AND next_attempt_at <= clock_timestamp() - make_interval(secs => :grace)
     ORDER BY next_attempt_at
     LIMIT :limit
    """
)


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """Exponential, capped, with "equal jitter": half fixed, half random, so retries
    after an SMTP outage do not all arrive in the same second."""
    growth: float = 2.0 ** max(attempts - 1, 0)
    ceiling = min(settings.email_backoff_max_seconds, settings.email_backoff_base_seconds * growth)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  (jitter, not secrecy)


def build_message(settings: Settings, claimed: _Claimed) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = claimed.to_email
    message["Subject"] = claimed.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{claimed.id}@tenantry>"
    message.set_content(claimed.text_body)
    if claimed.html_body:
        message.add_alternative(claimed.html_body, subtype="html")
    return message


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, PermanentFailure):
        return True
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    return False


class EmailDelivery:
    async def deliver_or_reschedule(
        self, db: Database, settings: Settings, redis: ArqRedis, outbox_id: uuid.UUID
    ) -> Outcome:
        """Send one outbox row; on a transient failure enqueue its next try. If that
        enqueue is lost, the relay finds the row once it is due."""
        result = await self.deliver(db, settings, outbox_id)
        if result.outcome is Outcome.RETRIED and result.retry_in is not None:
            await redis.enqueue_job(
                Job.DELIVER_EMAIL.value,
                outbox_id=str(outbox_id),
                _job_id=job_id(outbox_id, result.attempts),
                _defer_by=result.retry_in,
            )
        return result.outcome

    async def relay(self, db: Database, settings: Settings, redis: ArqRedis) -> int:
        """Re-enqueue overdue pending rows; how many. One relay at a time (a Redis lock),
        though a second would only enqueue job ids that ARQ already refuses."""
        lock = redis.lock(
            RELAY_LOCK, timeout=max(settings.email_relay_interval_seconds * 3, 10), blocking=False
        )
        if not await lock.acquire():
            return 0
        try:
            enqueued = 0
            for due in await self.due(db, settings):
                job = await redis.enqueue_job(
                    Job.DELIVER_EMAIL.value,
                    outbox_id=str(due.id),
                    _job_id=job_id(due.id, due.attempts),
                )
                enqueued += job is not None
            if enqueued:
                logger.info("relayed %d overdue email(s)", enqueued)
            return enqueued
        finally:
            try:
                await lock.release()
            except LockError:
                logger.warning("relay lock expired before the relay finished")

    async def deliver(
        self, db: Database, settings: Settings, outbox_id: uuid.UUID
    ) -> DeliveryResult:
        """Claim, send and record one row; safe to call any number of times."""
        claimed = await self._claim(db, settings, outbox_id)
        if claimed is None:
            return DeliveryResult(Outcome.SKIPPED)
        try:
            await self.send(settings, build_message(settings, claimed))
        except Exception as exc:
            return await self._failed(db, settings, claimed, exc)
        async with db.session_scope() as session:
            await session.execute(_SENT, {"id": claimed.id, "scrubbed": SCRUBBED})
        EMAILS.labels(outcome=Outcome.SENT.value).inc()
        return DeliveryResult(Outcome.SENT, claimed.attempts)

    async def due(self, db: Database, settings: Settings, *, limit: int = 500) -> list[_Due]:
        """Pending rows overdue by more than a relay interval: their job was lost (Redis
        down at enqueue, a worker killed mid-send) or never made it to the queue."""
        async with db.session_scope() as session:
            rows = await session.execute(
                _DUE, {"grace": float(settings.email_relay_interval_seconds), "limit": limit}
            )
            return [_Due(row.id, row.attempts) for row in rows]

    async def send(self, settings: Settings, message: EmailMessage) -> None:
        """SMTP when configured; else the development sink (files, or the log). Never
        silently nowhere: in production without SMTP_HOST the send fails and retries."""
        if settings.smtp_host:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
            async with asyncio.timeout(settings.smtp_timeout * 2):
                await aiosmtplib.send(
                    message,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username,
                    password=password,
                    start_tls=settings.smtp_starttls,
                    timeout=settings.smtp_timeout,
                )
        elif settings.mail_sink_dir:
            await self._write_sink(Path(settings.mail_sink_dir), message)
        elif not settings.is_production:
            logger.warning("no SMTP_HOST or MAIL_SINK_DIR; email follows\n%s", message)
        else:
            raise RuntimeError("SMTP_HOST is not configured")

    async def _write_sink(self, directory: Path, message: EmailMessage) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        ident = str(message["Message-ID"]).strip("<>").split("@")[0]
        target = anyio.Path(directory)
        await target.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a message.
        tmp = target / f".{ident}.tmp"
        # The readable copy first: whoever sees the .eml finds its .txt beside it.
        await tmp.write_text(readable(message))
        await tmp.rename(target / f"{stamp}-{ident}.txt")
        await tmp.write_bytes(bytes(message))
        await tmp.rename(target / f"{stamp}-{ident}.eml")
        logger.info("email written to %s (%s)", directory, message["Subject"])

    async def _claim(
        self, db: Database, settings: Settings, outbox_id: uuid.UUID
    ) -> _Claimed | None:
        async with db.session_scope() as session:
            row = (
                await session.execute(
                    _CLAIM, {"id": outbox_id, "lease": settings.email_claim_lease_seconds}
                )
            ).first()
        if row is None:
            return None
        return _Claimed(
            row.id, row.to_email, row.subject, row.text_body, row.html_body, row.attempts
        )

    async def _failed(
        self, db: Database, settings: Settings, claimed: _Claimed, exc: Exception
    ) -> DeliveryResult:
        error = f"{type(exc).__name__}: {exc}"[:500]
        params = {"id": claimed.id, "attempts": claimed.attempts, "error": error}
        if _is_permanent(exc) or claimed.attempts >= settings.email_max_attempts:
            async with db.session_scope() as session:
                await session.execute(_DEAD, {**params, "scrubbed": SCRUBBED})
            EMAILS.labels(outcome=Outcome.DEAD.value).inc()
            logger.error(
                "email %s is dead after %d attempt(s): %s", claimed.id, claimed.attempts, error
            )
            return DeliveryResult(Outcome.DEAD, claimed.attempts)
        delay = backoff_seconds(settings, claimed.attempts)
        async with db.session_scope() as session:
            await session.execute(_RETRY, {**params, "delay": delay})
        EMAILS.labels(outcome=Outcome.RETRIED.value).inc()
        logger.warning(
            "email %s attempt %d failed (%s); retrying in %.0f s",
            claimed.id,
            claimed.attempts,
            error,
            delay,
        )
        return DeliveryResult(Outcome.RETRIED, claimed.attempts, delay)


def job_id(outbox_id: uuid.UUID, attempts: int | None = None) -> str:
    """The first job is `email:<id>` (from queue_email); later ones name the attempt they
    follow, so a retry and the relay enqueue the same id and ARQ keeps one of them."""
    return f"email:{outbox_id}" if attempts is None else f"email:{outbox_id}:{attempts}"


email_delivery = EmailDelivery()
