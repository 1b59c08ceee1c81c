"""Sentry, offline: a transport that keeps events instead of sending them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
import sentry_sdk
from arq import func
from arq.connections import ArqRedis
from fastapi import APIRouter, Depends, Request
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.config import Settings
from tenantry.db import Database
from tenantry.main import create_app
from tenantry.observability.sentry import before_send, init_sentry
from tenantry.observability.worker import instrument_job
from tests.fixtures.factories import make_actor, make_tenant
from tests.fixtures.worker import drain_queue

DSN = "https://public@o0.ingest.sentry.io/1"
EMAIL = "victim.person@example.com"
API_KEY = "tnt_SentryShouldNeverSeeThisKey0123456789"
QUERY_TOKEN = "qs-token-8d7f6e5a4b"

probe = APIRouter(prefix="/api/v1/probe-sentry", tags=["probe"])
Reader = Annotated[Principal, Depends(Authorize(Scope.READ))]


@probe.get("/crash")
async def crash(request: Request, principal: Reader) -> None:
    """Fails with an email and the credential in the message."""
    raise RuntimeError(f"could not notify {EMAIL} using {request.headers['authorization']}")


async def crashing_job(ctx: dict[str, Any], tenant_id: str, password: str) -> None:
    raise ValueError(f"delivery to {EMAIL} failed with password={password}")


class CapturingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


@pytest.fixture
def sentry_events(settings: Settings) -> Iterator[CapturingTransport]:
    transport = CapturingTransport()
    init_sentry(
        settings.model_copy(update={"sentry_dsn": DSN, "release": "tenantry@test"}),
        component="test",
        transport=transport,
    )
    yield transport
    sentry_sdk.init()  # no DSN: reporting off again for the rest of the run


class TestRequestErrors:
    async def test_one_event_tagged_and_scrubbed(
        self, sentry_events: CapturingTransport, settings: Settings, db: Database, redis: ArqRedis
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant)
        app = create_app(settings, db=db)
        app.include_router(probe)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get(
                    f"/api/v1/probe-sentry/crash?token={QUERY_TOKEN}&page=1",
                    headers={
                        **actor.headers,
                        "X-API-Key": API_KEY,
                        "Cookie": f"session={QUERY_TOKEN}",
                        "X-Request-ID": "sentry-req-1",
                    },
                )
        sentry_sdk.flush()
        assert response.status_code == 500
        assert len(sentry_events.events) == 1
        event = sentry_events.events[0]
        assert event["tags"]["tenant_id"] == str(tenant.id)
        assert event["tags"]["request_id"] == "sentry-req-1"
        assert event["environment"] == "test"
        assert event["release"] == "tenantry@test"
        assert event["exception"]["values"][-1]["type"] == "RuntimeError"
        text = json.dumps(event)
        for secret in (actor.token, API_KEY, QUERY_TOKEN, EMAIL):
            assert secret not in text, f"{secret[:12]}… reached Sentry"


class TestJobErrors:
    async def test_one_event_tagged_and_scrubbed(
        self, sentry_events: CapturingTransport, settings: Settings, redis: ArqRedis
    ) -> None:
        tenant_id = "7b0c5c2e-0000-4000-8000-000000000001"
        await redis.enqueue_job("test.crashing", tenant_id=tenant_id, password="Job$ecret!1")
        await drain_queue(
            settings,
            functions=[instrument_job(func(crashing_job, name="test.crashing", max_tries=1))],
            poll_delay=0.02,
        )
        sentry_sdk.flush()
        assert len(sentry_events.events) == 1
        event = sentry_events.events[0]
        assert event["tags"]["tenant_id"] == tenant_id
        assert event["exception"]["values"][-1]["type"] == "ValueError"
        text = json.dumps(event)
        assert "Job$ecret!1" not in text
        assert EMAIL not in text


class TestBeforeSend:
    def test_headers_query_and_fields_are_scrubbed(self) -> None:
        event = {
            "request": {
                "url": "https://api.example.com/x?token=abc",
                "query_string": "token=abc&page=2",
                "headers": {
                    "Authorization": "Bearer eyJx.eyJy.z",
                    "X-API-Key": "tnt_k",
                    "Cookie": "a=b",
                    "Accept": "application/json",
                },
                "cookies": {"a": "b"},
                "data": {"password": "p"},
            },
            "user": {"email": "a@b.co", "ip_address": "1.2.3.4"},
            "extra": {"password": "p2", "note": "mail me at a@b.co"},
        }
        out = before_send(event)
        text = json.dumps(out)
        for secret in ("abc", "eyJx", "tnt_k", "a=b", '"p"', "p2", "a@b.co", "1.2.3.4"):
            assert secret not in text, secret
        assert out["request"]["headers"]["Accept"] == "application/json"
        assert "page=2" in out["request"]["query_string"]


def test_off_without_dsn(settings: Settings) -> None:
    assert init_sentry(settings.model_copy(update={"sentry_dsn": None}), component="api") is False
