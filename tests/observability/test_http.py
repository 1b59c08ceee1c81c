"""API metrics: route templates, exact statuses, sizes, in-progress, pool, readiness, token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.main import create_app
from tests.fixtures.app import probe_client

probe = APIRouter(prefix="/api/v1/probe-items", tags=["probe"])


@probe.get("/{item_id}")
async def get(item_id: int) -> dict[str, int]:
    """Echo an id."""
    return {"id": item_id}


@probe.post("/")
async def create(body: dict[str, str]) -> dict[str, str]:
    """Echo a body."""
    return body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with probe_client(app, probe) as client:
        yield client


class TestRequestMetrics:
    async def test_route_template_not_raw_path(self, api: httpx.AsyncClient) -> None:
        before = (await api.get("/metrics")).text
        for item in (101, 202, 303):
            assert (await api.get(f"/api/v1/probe-items/{item}")).status_code == 200
        text = (await api.get("/metrics")).text
        labels = {"method": "GET", "handler": "/api/v1/probe-items/{item_id}", "status": "200"}
        assert (
            value(text, "http_requests_total", **labels)
            - value(before, "http_requests_total", **labels)
            == 3
        )
        assert "probe-items/101" not in text and "probe-items/202" not in text

    async def test_unmatched_routes_are_grouped(self, api: httpx.AsyncClient) -> None:
        before = (await api.get("/metrics")).text
        await api.get("/api/v1/no-such-thing/123e4567")
        await api.get("/wp-login.php")
        text = (await api.get("/metrics")).text
        labels = {"method": "GET", "handler": "none", "status": "404"}
        assert (
            value(text, "http_requests_total", **labels)
            - value(before, "http_requests_total", **labels)
            == 2
        )
        assert "wp-login" not in text and "123e4567" not in text

    async def test_invented_method_is_bounded(self, api: httpx.AsyncClient) -> None:
        await api.request("BREW", "/health")
        text = (await api.get("/metrics")).text
        assert "BREW" not in text
        assert value(text, "http_requests_total", method="OTHER", handler="/health", status="405")

    async def test_exact_status_and_latency_histogram(self, api: httpx.AsyncClient) -> None:
        await api.post("/api/v1/probe-items/", json={"a": "b"})
        await api.post(
            "/api/v1/probe-items/", content=b"{bad", headers={"content-type": "application/json"}
        )
        text = (await api.get("/metrics")).text
        handler = "/api/v1/probe-items/"
        assert value(text, "http_requests_total", method="POST", handler=handler, status="422")
        assert (
            value(text, "http_request_duration_seconds_count", method="POST", handler=handler) >= 2
        )
        assert (
            value(
                text,
                "http_request_duration_seconds_bucket",
                method="POST",
                handler=handler,
                le="+Inf",
            )
            >= 2
        )
        assert value(text, "http_request_size_bytes_sum", handler=handler) >= len('{"a":"b"}')
        assert value(text, "http_response_size_bytes_sum", handler=handler) > 0
        assert (
            "http_requests_inprogress",
            frozenset({("method", "POST"), ("handler", handler)}),
        ) in samples(text)

    async def test_oversized_body_413_is_counted(self, api: httpx.AsyncClient) -> None:
        before = (await api.get("/metrics")).text
        labels = {"method": "POST", "handler": "/api/v1/probe-items/", "status": "413"}
        response = await api.post(
            "/api/v1/probe-items/",
            content=b"x" * (1024 * 1024 + 1),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        text = (await api.get("/metrics")).text
        assert (
            value(text, "http_requests_total", **labels)
            - value(before, "http_requests_total", **labels)
            == 1
        )

    async def test_metrics_scrapes_are_not_counted(self, api: httpx.AsyncClient) -> None:
        await api.get("/metrics")
        text = (await api.get("/metrics")).text
        assert 'handler="/metrics"' not in text


class TestDependencyMetrics:
    async def test_pool_and_readiness_at_scrape(
        self, api: httpx.AsyncClient, settings: Settings
    ) -> None:
        text = (await api.get("/metrics")).text
        assert value(text, "tenantry_ready") == 1
        assert value(text, "tenantry_dependency_up", dependency="postgres") == 1
        assert value(text, "tenantry_dependency_up", dependency="redis") == 1
        pools = settings.db_pool_size + settings.db_read_pool_size
        assert value(text, "tenantry_db_pool_size") == pools
        assert value(text, "tenantry_db_pool_max") == pools + settings.db_max_overflow
        assert value(text, "tenantry_db_pool_checked_out") >= 0
        assert ("tenantry_db_pool_waiting", frozenset()) in samples(text)

    async def test_redis_down_makes_ready_zero(
        self, app: FastAPI, api: httpx.AsyncClient, settings: Settings
    ) -> None:
        from tenantry.redis_client import create_redis

        await app.state.redis.aclose()
        app.state.redis = create_redis(settings, url="redis://127.0.0.1:1/0")
        text = (await api.get("/metrics")).text
        assert value(text, "tenantry_ready") == 0
        assert value(text, "tenantry_dependency_up", dependency="redis") == 0
        assert value(text, "tenantry_dependency_up", dependency="postgres") == 1


class TestMetricsToken:
    @pytest.fixture
    async def guarded(self, settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            settings.model_copy(update={"metrics_token": SecretStr("scrape-secret-0123")}), db=db
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client

    async def test_missing_token_is_401(self, guarded: httpx.AsyncClient) -> None:
        response = await guarded.get("/metrics")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"

    async def test_wrong_token_is_401(self, guarded: httpx.AsyncClient) -> None:
        response = await guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401

    async def test_right_token_is_200(self, guarded: httpx.AsyncClient) -> None:
        response = await guarded.get(
            "/metrics", headers={"Authorization": "Bearer scrape-secret-0123"}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "http_requests_total" in response.text

    async def test_open_without_setting(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/metrics")).status_code == 200

    async def test_not_in_openapi(self, client: httpx.AsyncClient) -> None:
        assert "/metrics" not in (await client.get("/api/openapi.json")).json()["paths"]
