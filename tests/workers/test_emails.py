"""Emails end to end: API → outbox row → ARQ worker → SMTP wire, including a killed worker."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from fastapi import FastAPI

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import EmailOutbox
from tenantry.notifications.outbox import queue_email
from tenantry.notifications.templates import EmailKind
from tests.fixtures.accounts import bearer, login, sign_up, tokens_for
from tests.fixtures.smtp import SmtpServer
from tests.fixtures.worker import drain_queue, worker_process
from workers.settings import cron_jobs

pytestmark = pytest.mark.committed


async def run_worker(settings: Settings) -> None:
    """A real ARQ worker in this process, with the relay crons, until the queue is empty."""
    await drain_queue(settings, ctx={"settings": settings}, cron_jobs=cron_jobs())


def _token(text: str) -> str:
    match = re.search(r"\?token=([A-Za-z0-9._-]+)", text)
    assert match, text
    return match.group(1)


async def _statuses(db: Database) -> dict[str, str]:
    async with db.session_scope() as session:
        rows = await session.execute(sa.select(EmailOutbox.to_email, EmailOutbox.status))
        return {to: status for to, status in rows.all()}  # noqa: C416


class TestWelcomeEmail:
    async def test_exactly_one_on_the_wire_with_a_working_token(
        self, client: httpx.AsyncClient, settings: Settings, smtp: SmtpServer
    ) -> None:
        account = await sign_up(client)
        worker_settings = settings.model_copy(update=smtp.settings_overrides())
        await run_worker(worker_settings)
        await run_worker(worker_settings)  # again: the relay and a second pass add nothing
        (welcome,) = smtp.recorder.to(account["email"])
        assert welcome.message["Subject"] == "Welcome to Tenantry — verify your email"
        token = _token(welcome.text)
        assert f"{settings.public_url}/verify-email?token={token}" in welcome.text
        assert (
            await client.post("/api/v1/auth/verify-email", json={"token": token})
        ).status_code == 204
        headers = bearer((await tokens_for(client, account["username"]))["access_token"])
        assert (await client.get("/api/v1/users/me", headers=headers)).json()["email_verified"]


class TestResetEmail:
    async def test_token_from_the_wire_works_once(
        self, client: httpx.AsyncClient, settings: Settings, smtp: SmtpServer
    ) -> None:
        account = await sign_up(client)
        response = await client.post(
            "/api/v1/auth/password-reset/request", json={"email": account["email"]}
        )
        assert response.status_code == 202
        await run_worker(settings.model_copy(update=smtp.settings_overrides()))
        (reset,) = [
            m
            for m in smtp.recorder.to(account["email"])
            if m.message["Subject"] == "Reset your Tenantry password"
        ]
        body = {"token": _token(reset.text), "new_password": "Res3t!Password"}
        first = await client.post("/api/v1/auth/password-reset/confirm", json=body)
        second = await client.post("/api/v1/auth/password-reset/confirm", json=body)
        assert (first.status_code, second.status_code) == (204, 400)
        assert (await login(client, account["username"], "Res3t!Password")).status_code == 200


class TestRelay:
    async def test_row_whose_enqueue_was_lost_is_delivered(
        self, db: Database, settings: Settings, smtp: SmtpServer, redis: ArqRedis
    ) -> None:
        # As if Redis was down at commit: the row exists, its job never reached the queue.
        async with db.session_scope() as session:
            row = queue_email(
                session,
                EmailKind.REPORT_READY,
                to="lost@example.com",
                name="L",
                report_kind="tasks",
                link="http://x/?token=t",
            )
            row.next_attempt_at = datetime.now(UTC) - timedelta(minutes=5)
            session.info.pop("jobs", None)
        assert await redis.zcard(settings.queue_name) == 0
        await run_worker(settings.model_copy(update=smtp.settings_overrides()))
        assert len(smtp.recorder.to("lost@example.com")) == 1
        assert (await _statuses(db))["lost@example.com"] == "sent"


@pytest.fixture
def worker_env(settings: Settings, smtp: SmtpServer) -> dict[str, str]:
    return {
        **os.environ,
        **smtp.env(),
        # Generous enough that no client times out while the server queues messages
        # (a timeout after DATA is ambiguous too); the lease outlasts 2 × SMTP_TIMEOUT.
        "SMTP_TIMEOUT": "4",
        "EMAIL_CLAIM_LEASE_SECONDS": "9",
        "EMAIL_RELAY_INTERVAL_SECONDS": "1",
        "EMAIL_BACKOFF_BASE_SECONDS": "1",
        "REDIS_URL": settings.redis_url,
    }


class TestKilledWorker:
    async def test_every_row_delivered_duplicates_only_in_the_window(
        self,
        app: FastAPI,
        db: Database,
        smtp: SmtpServer,
        worker_env: dict[str, str],
    ) -> None:
        # The server accepts one message at a time, so the kill lands mid-delivery.
        smtp.recorder.serial_hold = 0.15
        addresses = []
        for i in range(12):
            # Twelve sign-ups from one IP would meet the sign-up limit (5 a minute).
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{i + 1}", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                email = f"kill-{i}-{uuid.uuid4().hex[:6]}@example.com"
                addresses.append((await sign_up(client, email=email))["email"])
        first = worker_process(worker_env)
        second = None
        try:
            deadline = time.monotonic() + 30
            while len(smtp.recorder.accepted) < 3:
                assert time.monotonic() < deadline, "the first worker delivered nothing"
                await asyncio.sleep(0.02)
            killed_at = time.time()
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            accepted_before_kill = len(smtp.recorder.accepted)
            assert accepted_before_kill < len(addresses), "the kill came too late to matter"

            second = worker_process(worker_env)
            deadline = time.monotonic() + 60
            while set((await _statuses(db)).values()) != {"sent"}:
                assert time.monotonic() < deadline, await _statuses(db)
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # room for any stray duplicate to arrive
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=15)

        for address in addresses:
            received = smtp.recorder.to(address)
            assert received, f"{address} never delivered"
            if len(received) > 1:
                # Only a message the server accepted before the kill, whose "sent" the
                # dead worker could not commit, may arrive twice.
                assert len(received) == 2, address
                assert received[0].at <= killed_at, address
        duplicates = sum(len(smtp.recorder.to(a)) - 1 for a in addresses)
        assert duplicates <= 2
