"""Delivering webhooks: claim under a per-endpoint lease, POST, record — separate steps.

1. **Claim** (one short transaction). The endpoint's row is locked first (`FOR NO KEY
   UPDATE`, which new deliveries' foreign-key checks do not wait for), so claims for
   one endpoint take turns; the next statement, with a fresh snapshot, counts that
   endpoint's live leases and, below WEBHOOK_CONCURRENCY_PER_ENDPOINT, takes its oldest
   due delivery (`SKIP LOCKED`), counts the attempt and leases it for the timeout plus
   a margin. The cap therefore holds across every worker process, whatever Redis does.
2. **Send** with no transaction and no pooled connection held: resolve the host, check
   every address (SSRF), connect to a checked one, sign with the Standard Webhooks
   library, read at most 1 KiB of the answer; all of it bounded by
   WEBHOOK_TIMEOUT_SECONDS.
3. **Record** (another short transaction), fenced by the attempt count so only the
   claim's holder records: the attempt row, then succeeded, a retry time from
   WEBHOOK_RETRY_SCHEDULE, or failed; a 410, or WEBHOOK_DISABLE_AFTER deliveries in a
   row failed for good, disable the endpoint and email its tenant's owners and admins.

At least once: a worker killed during step 2 leaves the delivery pending under a lease
that runs out; the relay (or ARQ's own retry of the job) then sends it again with the
same `webhook-id`. That is the one duplicate: the receiver answered 2xx but the worker
died (or lost the database) before step 3 committed. Receivers deduplicate on
`webhook-id`.

Isolation: an endpoint that hangs holds at most its own cap of leases, each for one
timeout; its other deliveries wait in PostgreSQL, not in worker slots, and a job woken
for it that finds the cap reached returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from tenantry.audit.service import audit
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.jobs import Job, send_jobs, take_jobs
from tenantry.kit.http import api_path, public_link
from tenantry.members.service import member as member_service
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tenantry.observability.metrics import (
    WEBHOOK_ATTEMPT_DURATION,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS_DISABLED,
)
from tenantry.tenants.service import tenant as tenant_service
from tenantry.webhooks import addresses, maintenance
from tenantry.webhooks.events import generation_key, wake_job_id
from tenantry.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from tenantry.webhooks.secrets import SealedSecretError, Sealer, signature_header

logger = logging.getLogger("tenantry.webhooks")

RESPONSE_BODY_LIMIT = 1024
# A claim's lease outlasts the whole send (bounded by the timeout) and its record.
LEASE_MARGIN_SECONDS = 15.0
USER_AGENT = "Tenantry-Webhooks/1"
# One job sends for this long at most, then hands over to a fresh job: a busy endpoint
# never needs a long job timeout (which would also delay ARQ's re-run of a killed job).
DRAIN_SECONDS = 20.0
GENERATION_TTL_SECONDS = 24 * 3600


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRIED = "retried"
    FAILED = "failed"


@dataclass(frozen=True)
class Claimed:
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    attempt: int
    max_attempts: int
    url: str
    body: str
    secret_sealed: str
    previous_secret_sealed: str | None
    more_due: bool


@dataclass(frozen=True)
class Response:
    status_code: int | None
    body: str | None
    error: str | None
    duration_ms: int
    # Refused by the address check: retrying cannot help.
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: uuid.UUID
    outcome: Outcome
    attempt: int
    retry_in: float | None
    more_due: bool
    disabled: bool


def retry_delay(settings: Settings, attempt: int) -> float:
    """The wait after failed attempt number `attempt` (1-based)."""
    schedule = settings.webhook_retry_schedule
    return schedule[min(attempt, len(schedule)) - 1] if schedule else 0.0


def attempts_allowed(settings: Settings, max_attempts: int) -> int:
    return max_attempts or len(settings.webhook_retry_schedule) + 1


async def close_client() -> None:
    """Close the process's webhook client, if a send made one (this imports no httpx)."""
    transport = sys.modules.get("tenantry.webhooks.transport")
    if transport is not None:
        await transport.close_client()


def _error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


async def _wake(
    redis: ArqRedis,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    defer_by: float | None = None,
    job_id: str | None = None,
) -> None:
    if job_id is None:
        generation = await redis.get(generation_key(tenant_id, endpoint_id))
        job_id = f"{wake_job_id(endpoint_id)}:{int(generation or 0)}"
    await redis.enqueue_job(
        Job.DELIVER_WEBHOOKS.value,
        tenant_id=str(tenant_id),
        endpoint_id=str(endpoint_id),
        _job_id=job_id,
        _defer_by=defer_by,
    )


def _headers(claimed: Claimed, target: addresses.Target, secrets: list[str]) -> dict[str, str]:
    """Signed when sent, so the timestamp is the moment of the POST."""
    now = datetime.now(UTC)
    msg_id = str(claimed.delivery_id)
    return {
        "host": target.host_header,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(secrets, msg_id, now, claimed.body),
    }


class WebhookDelivery:
    async def drain(
        self,
        db: Database,
        settings: Settings,
        redis: ArqRedis,
        tenant_id: uuid.UUID,
        endpoint_id: uuid.UUID,
    ) -> int:
        """Send this endpoint's due deliveries one after another until none is due, its
        concurrency cap is reached, or DRAIN_SECONDS are spent; how many were tried.

        Bumping the generation first means any wake-up sent from now on gets a new job id
        and is not absorbed by this job (which may already have looked for the last time).
        """
        key = generation_key(tenant_id, endpoint_id)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, GENERATION_TTL_SECONDS)
            await pipe.execute()
        deadline = time.monotonic() + DRAIN_SECONDS
        tried = 0
        while True:
            result = await self.attempt_next(db, settings, tenant_id, endpoint_id, redis)
            if result is None:
                return tried
            tried += 1
            if result.retry_in is not None:
                retry_id = f"{wake_job_id(endpoint_id)}:retry:{result.delivery_id}:{result.attempt}"
                await _wake(
                    redis, tenant_id, endpoint_id, defer_by=result.retry_in, job_id=retry_id
                )
            if result.disabled or not result.more_due:
                # Nothing else was due at the claim; whatever is committed since then woke
                # a job of its own (the generation this job bumped makes it a new one).
                return tried
            if time.monotonic() >= deadline:
                await _wake(redis, tenant_id, endpoint_id)
                return tried
            # Another job may take the next one at the same time, up to the cap.
            await _wake(redis, tenant_id, endpoint_id)

    async def relay(self, db: Database, settings: Settings, redis: ArqRedis) -> int:
        """Wake endpoints whose due deliveries have no job (Redis lost it, a worker died
        mid-send and its lease ran out); how many."""
        grace = float(settings.webhook_relay_interval_seconds)
        due = await maintenance.due_endpoints(db, grace=grace)
        for item in due:
            await _wake(redis, item.tenant_id, item.endpoint_id)
        if due:
            logger.info("relayed deliveries of %d webhook endpoint(s)", len(due))
        return len(due)

    async def attempt_next(
        self,
        db: Database,
        settings: Settings,
        tenant_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        redis: ArqRedis | None = None,
    ) -> AttemptResult | None:
        """Claim, send and record this endpoint's next due delivery; None when there is
        none, the endpoint is disabled or gone, or its concurrency cap is reached."""
        claimed = await self.claim(db, settings, tenant_id, endpoint_id)
        if claimed is None:
            return None
        response = await self.send(settings, claimed)
        return await self.record(db, settings, claimed, response, redis)

    async def claim(
        self, db: Database, settings: Settings, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
    ) -> Claimed | None:
        async with db.session_scope(tenant_id) as session:
            endpoint = await WebhookEndpointRepository(session, tenant_id).lock_enabled(endpoint_id)
            if endpoint is None:
                return None
            row = await WebhookDeliveryRepository(session, tenant_id).claim(
                endpoint_id,
                cap=settings.webhook_concurrency_per_endpoint,
                lease=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS,
            )
        if row is None:
            return None
        return Claimed(
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            delivery_id=row.id,
            attempt=row.attempt_count,
            max_attempts=row.max_attempts,
            url=endpoint.url,
            body=row.body,
            secret_sealed=endpoint.secret_sealed,
            previous_secret_sealed=endpoint.previous_secret_sealed,
            more_due=bool(row.more_due),
        )

    async def send(self, settings: Settings, claimed: Claimed) -> Response:
        # Here, not at the top: the first send imports httpx (see webhooks.transport).
        from tenantry.webhooks import transport

        started = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            sealer = Sealer(settings)
            secrets = [sealer.open(claimed.endpoint_id, claimed.secret_sealed)]
            if claimed.previous_secret_sealed:
                secrets.append(sealer.open(claimed.endpoint_id, claimed.previous_secret_sealed))
        except SealedSecretError as exc:
            logger.error("webhook %s: %s", claimed.delivery_id, exc)
            return Response(None, None, "The endpoint's secret cannot be read; rotate it", took())
        try:
            async with asyncio.timeout(settings.webhook_timeout_seconds):
                target = await addresses.resolve_target(settings, claimed.url)
                status_code, raw = await transport.post(
                    target.pinned_url(claimed.url),
                    claimed.body.encode(),
                    _headers(claimed, target, secrets),
                    timeout_seconds=settings.webhook_timeout_seconds,
                    sni_hostname=target.host if target.scheme == "https" else None,
                    limit=RESPONSE_BODY_LIMIT,
                )
        except addresses.AddressRefused as exc:
            return Response(None, None, str(exc)[:500], took(), refused=True)
        except TimeoutError:
            return Response(
                None, None, f"Timed out after {settings.webhook_timeout_seconds:g} s", took()
            )
        except (transport.HTTPError, OSError) as exc:
            return Response(None, None, _error(exc), took())
        error = None
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
            if 300 <= status_code < 400:
                error += " (redirects are not followed)"
        return Response(status_code, raw.decode("utf-8", errors="replace"), error, took())

    async def record(
        self,
        db: Database,
        settings: Settings,
        claimed: Claimed,
        response: Response,
        redis: ArqRedis | None = None,
    ) -> AttemptResult:
        """Record the attempt; emails it queues (an endpoint disabled) leave after the
        commit, or with the email relay if `redis` is None or down."""
        WEBHOOK_ATTEMPT_DURATION.observe(response.duration_ms / 1000)
        retry_in: float | None = None
        disabled = False
        code, error = response.status_code, response.error
        async with db.session_scope(claimed.tenant_id) as session:
            deliveries = WebhookDeliveryRepository(session, claimed.tenant_id)
            await deliveries.add_attempt(
                claimed.delivery_id,
                at=datetime.now(UTC),
                status_code=code,
                duration_ms=response.duration_ms,
                error=error,
                response_body=response.body,
            )
            endpoints = WebhookEndpointRepository(session, claimed.tenant_id)
            if response.ok:
                outcome = Outcome.SUCCEEDED
                if await deliveries.settle(
                    claimed.delivery_id, claimed.attempt, outcome, status_code=code, error=error
                ):
                    await endpoints.reset_failures(claimed.endpoint_id)
            elif (
                response.refused
                or response.status_code == 410
                or claimed.attempt >= attempts_allowed(settings, claimed.max_attempts)
            ):
                outcome = Outcome.FAILED
                if await deliveries.settle(
                    claimed.delivery_id, claimed.attempt, outcome, status_code=code, error=error
                ):
                    disabled = await self._failed_for_good(
                        session, settings, claimed, gone=response.status_code == 410
                    )
            else:
                outcome = Outcome.RETRIED
                retry_in = retry_delay(settings, claimed.attempt)
                await deliveries.settle(
                    claimed.delivery_id,
                    claimed.attempt,
                    outcome,
                    status_code=code,
                    error=error,
                    retry_in=retry_in,
                )
            jobs = take_jobs(session)
        await send_jobs(redis, jobs)
        WEBHOOK_DELIVERIES.labels(outcome=outcome.value).inc()
        if outcome is not Outcome.SUCCEEDED:
            logger.warning(
                "webhook %s attempt %d: %s (%s)",
                claimed.delivery_id,
                claimed.attempt,
                response.error,
                outcome.value,
            )
        return AttemptResult(
            claimed.delivery_id, outcome, claimed.attempt, retry_in, claimed.more_due, disabled
        )

    async def _failed_for_good(
        self, session: AsyncSession, settings: Settings, claimed: Claimed, *, gone: bool
    ) -> bool:
        """Count a delivery that failed for good; disable the endpoint on a 410 or at
        WEBHOOK_DISABLE_AFTER in a row. True when this disabled it."""
        endpoints = WebhookEndpointRepository(session, claimed.tenant_id)
        row = await endpoints.count_failure(claimed.endpoint_id)
        if row is None:
            return False
        if gone:
            reason = "The endpoint answered 410 Gone"
        elif row.consecutive_failures >= settings.webhook_disable_after:
            reason = f"{row.consecutive_failures} deliveries in a row failed"
        else:
            return False
        return await disable(
            session,
            settings,
            claimed.tenant_id,
            claimed.endpoint_id,
            reason,
            cause="gone" if gone else "failures",
        )


async def disable(
    session: AsyncSession,
    settings: Settings,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    reason: str,
    *,
    cause: str,
) -> bool:
    """Disable an enabled endpoint on the system's own authority: its pending deliveries
    fail, the audit log says so, and the tenant's owners and admins get an email."""
    url = await WebhookEndpointRepository(session, tenant_id).disable(endpoint_id, reason)
    if url is None:
        return False
    await WebhookDeliveryRepository(session, tenant_id).cancel_pending(endpoint_id)
    await audit.record_system(
        session,
        tenant_id,
        "webhook.disabled",
        target_type="webhook",
        target_id=endpoint_id,
        data={"reason": reason, "url": url},
    )
    tenant = await tenant_service.get_live(session, tenant_id)
    tenant_name = tenant.name if tenant else "your organisation"
    for email in await member_service.admin_emails(session, tenant_id):
        queue_email(
            session,
            EmailKind.WEBHOOK_DISABLED,
            to=email,
            tenant_id=tenant_id,
            tenant_name=tenant_name,
            url=url,
            reason=reason,
            link=public_link(settings, api_path("webhooks", endpoint_id)),
        )
    WEBHOOK_ENDPOINTS_DISABLED.labels(reason=cause).inc()
    logger.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    return True


webhook_delivery = WebhookDelivery()
