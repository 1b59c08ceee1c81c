"""Structured logs: one line per request with its context, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from tenantry.auth.dependencies import Authorize
from tenantry.auth.principal import Principal, Scope
from tenantry.config import Settings
from tenantry.context import job_id_var, user_id_var
from tenantry.db import Database
from tenantry.observability.logging import (
    REDACTED,
    JsonLinesHandler,
    _sole_json_handler,
    access_logger,
    configure_logging,
    log_request,
    redact,
)
from tests.fixtures.app import probe_client
from tests.fixtures.factories import make_actor, make_tenant

careless = logging.getLogger("tenantry.careless")
probe = APIRouter(prefix="/api/v1/probe-log", tags=["probe"])
Reader = Annotated[Principal, Depends(Authorize(Scope.READ))]


@probe.get("/items/{item_id}")
async def read_item(item_id: int, principal: Reader) -> dict[str, int]:
    """An authenticated read."""
    return {"id": item_id}


@probe.post("/echo")
async def echo(request: Request) -> dict[str, str]:
    """Logs everything it gets, as a careless handler would."""
    body = (await request.body()).decode()
    careless.info("body=%s headers=%s query=%s", body, dict(request.headers), request.url.query)
    careless.info("raw url %s", request.url)
    careless.debug("structured", extra={"password": "in-extra", "payload": json.loads(body)})
    return {"ok": "yes"}


@probe.get("/boom")
async def boom(request: Request) -> None:
    """Crashes with the caller's credential in the message."""
    raise RuntimeError(f"cannot use {request.headers.get('authorization')} for {request.url}")


@pytest.fixture
def captured(settings: Settings) -> Iterator[io.StringIO]:
    """Everything logged anywhere, at DEBUG, through the production JSON configuration."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(settings.model_copy(update={"log_level": "DEBUG"}), json=True, stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with probe_client(app, probe) as client:
        yield client


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def access(stream: io.StringIO) -> list[dict[str, Any]]:
    return [entry for entry in lines(stream) if entry["logger"] == "tenantry.access"]


class TestAccessLog:
    async def test_one_line_with_context(
        self, api: httpx.AsyncClient, captured: io.StringIO, db: Database, settings: Settings
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant)
        response = await api.get(
            "/api/v1/probe-log/items/42?verbose=1",
            headers={**actor.headers, "X-Request-ID": "req-abc-123"},
        )
        assert response.status_code == 200
        [entry] = [e for e in access(captured) if e.get("request_id") == "req-abc-123"]
        assert entry["method"] == "GET"
        assert entry["route"] == "/api/v1/probe-log/items/{item_id}"
        assert entry["path"] == "/api/v1/probe-log/items/42"
        assert entry["status"] == 200
        assert entry["latency_ms"] > 0
        assert entry["tenant_id"] == str(tenant.id)
        assert entry["user_id"] == str(actor.user.id)
        assert entry["level"] == "info"
        assert entry["ts"].endswith("+00:00")

    async def test_every_request_logged_once(
        self, api: httpx.AsyncClient, captured: io.StringIO
    ) -> None:
        for i in range(3):
            await api.get("/api/v1/nothing-here", headers={"X-Request-ID": f"r-{i}"})
        ids = [e["request_id"] for e in access(captured)]
        assert sorted(ids) == ["r-0", "r-1", "r-2"]
        assert {e["route"] for e in access(captured)} == {"none"}

    async def test_crash_is_logged_with_request_id(
        self, api: httpx.AsyncClient, captured: io.StringIO
    ) -> None:
        await api.get("/api/v1/probe-log/boom", headers={"X-Request-ID": "crash-1"})
        errors = [e for e in lines(captured) if e["level"] == "error"]
        assert errors and errors[0]["request_id"] == "crash-1"
        assert "RuntimeError" in errors[0]["exception"]
        [entry] = [e for e in access(captured) if e["request_id"] == "crash-1"]
        assert entry["status"] == 500

    def test_dev_format_is_readable(self, settings: Settings) -> None:
        root = logging.getLogger()
        saved = (root.handlers[:], root.level)
        stream = io.StringIO()
        try:
            configure_logging(settings, json=False, stream=stream)
            logging.getLogger("tenantry.test").info("hello %s", "world")
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
        line = stream.getvalue().strip()
        assert "INFO" in line and "tenantry.test" in line and line.endswith("hello world")
        assert not line.startswith("{")


class TestNoSecretsInLogs:
    async def test_credentials_never_reach_the_log(
        self,
        api: httpx.AsyncClient,
        captured: io.StringIO,
        db: Database,
        settings: Settings,
    ) -> None:
        tenant = await make_tenant(db)
        actor = await make_actor(db, settings, tenant=tenant)
        jwt = actor.token
        api_key = "tnt_QmFzZTY0U2VjcmV0S2V5VmFsdWUxMjM0NTY3ODkw"
        query_token = "qs-reset-token-5f2a9c71e0"
        password = "Sup3r$ecret!pw"
        new_password = "An0ther#Secret99"

        await api.get("/api/v1/probe-log/items/7", headers=actor.headers)
        await api.get("/api/v1/probe-log/items/7", headers={"X-API-Key": api_key})
        await api.post(
            f"/api/v1/probe-log/echo?token={query_token}&page=2",
            json={"email": "a@example.com", "password": password, "new_password": new_password},
            headers={"Authorization": f"Bearer {jwt}", "X-API-Key": api_key},
        )
        await api.post(
            "/api/v1/probe-log/echo",
            content=f'{{"password":"{password}"}}'.encode(),
            headers={"content-type": "application/json", "Cookie": f"session={query_token}"},
        )
        await api.get(
            f"/api/v1/probe-log/boom?token={query_token}",
            headers={"Authorization": f"Bearer {jwt}"},
        )

        output = captured.getvalue()
        # The careless handler, the crash and the access lines all logged something.
        assert output.count("tenantry.careless") >= 4
        assert "RuntimeError" in output
        assert len(access(captured)) == 5
        assert REDACTED in output
        for secret in (jwt, api_key, query_token, password, new_password):
            assert secret not in output, f"{secret[:12]}… leaked into the logs"
        # Masked in place, so the line is still useful.
        assert "page=2" in output


class TestRedact:
    @pytest.mark.parametrize(
        ("raw", "secret"),
        [
            ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
            ('{"password": "hunter2"}', "hunter2"),
            ("{'refresh_token': 'r-123'}", "r-123"),
            ("/reset?token=t0k3n&x=1", "t0k3n"),
            ("username=bob&password=pw%21", "pw%21"),
            ("key tnt_abcDEF123 used", "abcDEF123"),
            ("postgresql://app:s3cret@db:5432/x", "s3cret"),
            ("x-api-key=tnt_zzz", "tnt_zzz"),
        ],
    )
    def test_masks(self, raw: str, secret: str) -> None:
        assert secret not in redact(raw)

    def test_leaves_ordinary_text(self) -> None:
        text = "GET /api/v1/projects/{id} 200 3.1ms"
        assert redact(text) == text


class TestDirectAccessLine:
    """The access line written straight from its fields is the line `logging` writes."""

    @pytest.mark.parametrize("job", [None, "job-7"])
    def test_same_object_both_ways(self, settings: Settings, job: str | None) -> None:
        root = logging.getLogger()
        saved = (root.handlers[:], root.level)
        stream = io.StringIO()
        configure_logging(settings, json=True, stream=stream)
        fields: dict[str, Any] = {
            "method": "GET",
            "route": "/api/v1/tasks/{id}",
            "path": "/api/v1/tasks/1?token=abc",
            "status": 503,
            "latency_ms": 12.3456,
            "request_id": "client:chosen-id",
            "tenant_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "user_id": None,
        }
        job_token = job_id_var.set(job)
        user_token = user_id_var.set("16fd2706-8baf-433b-82eb-8c7fada847da")

        def keep(record: logging.LogRecord) -> bool:
            return True

        try:
            handler = _sole_json_handler(logging.WARNING)
            assert isinstance(handler, JsonLinesHandler)  # the direct path is taken
            log_request(**fields)
            access_logger.addFilter(keep)  # a filter on the way: the ordinary path
            assert _sole_json_handler(logging.WARNING) is None
            log_request(**fields)
        finally:
            access_logger.removeFilter(keep)
            job_id_var.reset(job_token)
            user_id_var.reset(user_token)
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
        direct, ordinary = lines(stream)
        assert abs(_ts(direct.pop("ts")) - _ts(ordinary.pop("ts"))) < 5
        assert list(direct.items()) == list(ordinary.items())
        assert direct["path"] == f"/api/v1/tasks/1?token={REDACTED}"
        assert direct["level"] == "warning"
        assert direct["user_id"] == "16fd2706-8baf-433b-82eb-8c7fada847da"  # from the context
        assert direct.get("job_id") == job


class TestHeldAccessLines:
    """Access lines are held back briefly and written together (one write, not one a
    request), yet reach the stream on their own, in order, and before the process ends."""

    @pytest.fixture(autouse=True)
    def restore_logging(self) -> Iterator[None]:
        root = logging.getLogger()
        saved = (root.handlers[:], root.level)
        yield
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    @staticmethod
    def ours_alone(settings: Settings) -> io.StringIO:
        """Called in the test's body: pytest adds its capture handler to the root logger
        when the body starts, and lines are held only where ours is the one handler."""
        stream = io.StringIO()
        configure_logging(settings, json=True, stream=stream)
        assert _sole_json_handler(logging.INFO) is not None
        return stream

    @staticmethod
    def access(route: str) -> None:
        log_request(
            method="GET",
            route=route,
            path=route,
            status=200,
            latency_ms=1.0,
            request_id="r",
            tenant_id=None,
            user_id=None,
        )

    async def test_they_are_written_together_soon_after(self, settings: Settings) -> None:
        stream = self.ours_alone(settings)
        for n in range(3):
            self.access(f"/held/{n}")
        assert stream.getvalue() == ""  # held, not yet written
        await asyncio.sleep(0.2)
        assert [line["route"] for line in lines(stream)] == ["/held/0", "/held/1", "/held/2"]

    async def test_another_record_writes_them_first(self, settings: Settings) -> None:
        stream = self.ours_alone(settings)
        self.access("/before")
        careless.warning("after the access line")
        assert [line.get("route", line["message"]) for line in lines(stream)] == [
            "/before",
            "after the access line",
        ]

    async def test_a_closing_handler_writes_them(self, settings: Settings) -> None:
        stream = self.ours_alone(settings)
        self.access("/last")
        logging.getLogger().handlers[0].close()
        assert [line["route"] for line in lines(stream)] == ["/last"]

    def test_without_an_event_loop_they_are_written_at_once(self, settings: Settings) -> None:
        stream = self.ours_alone(settings)
        self.access("/sync")
        assert [line["route"] for line in lines(stream)] == ["/sync"]


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_a_handler_on_a_parent_logger_keeps_the_ordinary_path(settings: Settings) -> None:
    """A handler on `tenantry` (between the access logger and root) must get the line."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(settings, json=True, stream=io.StringIO())
    parent_stream = io.StringIO()
    parent = logging.StreamHandler(parent_stream)
    logging.getLogger("tenantry").addHandler(parent)
    try:
        assert _sole_json_handler(logging.INFO) is None
        log_request(
            method="GET",
            route="/health",
            path="/health",
            status=500,
            latency_ms=1.0,
            request_id=None,
            tenant_id=None,
            user_id=None,
        )
        assert "GET /health 500" in parent_stream.getvalue()
    finally:
        logging.getLogger("tenantry").removeHandler(parent)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
