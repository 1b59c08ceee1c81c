"""Every metric a dashboard panel or an alert rule queries is really exported, by the
component the query selects.

The API's /metrics is read after traffic, the worker's from a running `tenantry worker`
after a job; a panel or rule naming a metric that the selected component does not
export fails here, and so does a component exporting another one's metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tenantry.config import Settings
from tenantry.jobs import Job
from tenantry.observability.metrics import OWNERS
from tenantry.redis_client import create_redis
from tests.fixtures.worker import worker_process
from tests.observability.test_worker import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "helm" / "tenantry" / "files" / "dashboards"
# The chart's rules as rendered for release "tenantry" (tests/deploy/test_alert_rules.py
# keeps this file equal to the render).
ALERTS = ROOT / "deploy" / "compose" / "prometheus" / "alerts.yaml"
# The job a selector names: the rules' release jobs, the dashboards' job variables.
JOBS = {
    "tenantry-api": "api",
    "tenantry-worker": "worker",
    "$api_job": "api",
    "$worker_job": "worker",
}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords,
    durations and Grafana variables are not metric names)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def exported(text: str) -> set[str]:
    """Sample names with at least one sample (`x_total`, `x_bucket`, `x_sum`, …)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def dashboard_queries(path: Path) -> Iterator[tuple[str, str]]:
    board = json.loads(path.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def alert_queries() -> Iterator[tuple[str, str]]:
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def owner_of(sample: str) -> str:
    """The component that exports a sample name (`x_total`, `x_bucket`, … of a family)."""
    for suffix in ("_total", "_bucket", "_count", "_sum", ""):
        family = sample.removesuffix(suffix) if suffix else sample
        if family in OWNERS:
            return OWNERS[family]
    raise AssertionError(f"{sample} has no owner in metrics.OWNERS")


def selected_metrics(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, component) for every selector that names a job; recorded series and
    Prometheus's own `up` are not exported by anyone."""
    for name, matchers in re.findall(r"([A-Za-z_][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
        job = re.search(r'job="([^"]+)"', matchers)
        if job and ":" not in name and name != "up":
            yield name, JOBS[job.group(1)]


def missing(queries: Iterator[tuple[str, str]], names: set[str]) -> dict[str, set[str]]:
    gaps: dict[str, set[str]] = {}
    for title, expr in queries:
        absent = metric_names(expr) - names
        if absent:
            gaps.setdefault(title, set()).update(absent)
    return gaps


class TestMetricNames:
    def test_extracts_selectors(self) -> None:
        expr = (
            "histogram_quantile(0.99, sum by (le, handler) (rate("
            'http_request_duration_seconds_bucket{handler!~"/metrics|none"}[$__rate_interval])))'
            " / on (instance) group_left tenantry_ready > 0.5 and tenantry_queue_depth offset 5m"
        )
        assert metric_names(expr) == {
            "http_request_duration_seconds_bucket",
            "tenantry_ready",
            "tenantry_queue_depth",
        }

    def test_labels_and_strings_are_not_names(self) -> None:
        assert metric_names('sum(rate(x_total{outcome="dead_total"}[5m])) > 1e3') == {"x_total"}

    def test_unknown_metric_is_reported(self) -> None:
        queries = iter([("Bogus panel", "sum(rate(tenantry_nonexistent_total[5m]))")])
        assert missing(queries, {"http_requests_total"}) == {
            "Bogus panel": {"tenantry_nonexistent_total"}
        }


@pytest.fixture(scope="module")
async def worker_metrics(settings: Settings) -> AsyncIterator[str]:
    """/metrics of a real `tenantry worker` after it has run a job."""
    redis = create_redis(settings)
    port = free_port()
    proc = worker_process(
        {
            "REDIS_URL": settings.redis_url,
            "WORKER_METRICS_PORT": str(port),
            "WORKER_METRICS_HOST": "127.0.0.1",
        }
    )
    try:
        job = await redis.enqueue_job(Job.PING.value)
        assert job is not None
        await job.result(timeout=60)
        async with httpx.AsyncClient() as client:
            yield (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        await redis.aclose()


@pytest.fixture
async def api_metrics(app: FastAPI, redis: ArqRedis) -> str:
    """/metrics of the API after a little traffic (success, 404, 422, 405)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/health")
        await client.get("/health/ready")
        await client.get("/api/v1/nothing")
        await client.delete("/health")
        return (await client.get("/metrics")).text


def _show(gaps: dict[str, set[str]]) -> str:
    return "; ".join(f"{title!r} queries {sorted(names)}" for title, names in gaps.items())


class TestDashboards:
    def test_every_panel_has_a_query(self) -> None:
        for path in DASHBOARDS.glob("*.json"):
            board = json.loads(path.read_text())
            assert board["uid"] and board["panels"]
            for panel in board["panels"]:
                assert panel.get("targets"), f"{path.name}: {panel['title']} has no query"
                assert all(t["expr"].strip() for t in panel["targets"])

    @pytest.mark.parametrize("board", ["api.json", "workers.json"])
    def test_every_selector_names_namespace_and_component(self, board: str) -> None:
        for title, expr in dashboard_queries(DASHBOARDS / board):
            selectors = re.findall(r"([A-Za-z_][A-Za-z0-9_:]*)\{([^}]*)\}", expr)
            assert selectors, title
            named = {name for name, _ in selectors}
            assert metric_names(expr) <= named, (title, "a metric without a selector")
            for name, matchers in selectors:
                assert 'namespace="$namespace"' in matchers, (title, name)
                job = re.search(r'job="([^"]+)"', matchers)
                assert job and job.group(1) in JOBS, (title, name)
                assert job.group(1) == f"${owner_of(name)}_job", (title, name)

    def test_dashboards_query_what_the_selected_component_exports(
        self, api_metrics: str, worker_metrics: str
    ) -> None:
        by_component = {"api": exported(api_metrics), "worker": exported(worker_metrics)}
        gaps = {
            (board.name, title, name)
            for board in sorted(DASHBOARDS.glob("*.json"))
            for title, expr in dashboard_queries(board)
            for name, component in selected_metrics(expr)
            if name not in by_component[component]
        }
        assert gaps == set()

    def test_job_variables_list_the_components_jobs(self) -> None:
        for board in DASHBOARDS.glob("*.json"):
            variables = {v["name"]: v for v in json.loads(board.read_text())["templating"]["list"]}
            for name in ("api_job", "worker_job"):
                if name in variables:
                    query = variables[name]["query"]["query"]
                    metric = re.match(r"label_values\((\w+)", query)
                    assert metric and f"{owner_of(metric.group(1))}_job" == name
            assert "namespace" in variables


class TestAlerts:
    def test_rules_are_well_formed(self) -> None:
        document: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
        alerts = {r["alert"]: r for g in document["groups"] for r in g["rules"] if "alert" in r}
        # The conditions operators asked to be woken for.
        assert {
            "TenantryApiDown",
            "TenantryWorkersDown",
            "TenantryErrorBudgetBurnFast",
            "TenantryLatencyBudgetBurnFast",
            "TenantryQueueBacklog",
            "TenantryQueueStalled",
            "TenantryEmailsDead",
            "TenantryNotReady",
        } <= alerts.keys()
        for rule in alerts.values():
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]

    def test_rules_query_what_the_selected_component_exports(
        self, api_metrics: str, worker_metrics: str
    ) -> None:
        by_component = {"api": exported(api_metrics), "worker": exported(worker_metrics)}
        gaps = {
            (title, name, component)
            for title, expr in alert_queries()
            for name, component in selected_metrics(expr)
            if name not in by_component[component]
        }
        assert gaps == set()
        # Every metric selector in the rules names its component.
        for title, expr in alert_queries():
            unselected = metric_names(expr) - {n for n, _ in selected_metrics(expr)}
            assert {n for n in unselected if ":" not in n and n != "up"} == set(), title


class TestOwnership:
    def test_every_family_of_ours_has_one_owner(self) -> None:
        from prometheus_client import REGISTRY

        ours = {
            family.name
            for family in REGISTRY.collect()
            if family.name.startswith(("tenantry_", "http_"))
        }
        assert ours - OWNERS.keys() == set()

    def test_the_worker_exports_none_of_the_apis_metrics(self, worker_metrics: str) -> None:
        families = {f.name for f in text_string_to_metric_families(worker_metrics)}
        assert {f for f in families if OWNERS.get(f) == "api"} == set()
        assert "tenantry_jobs" in families
        # What made a healthy worker page as a broken API.
        assert "tenantry_ready" not in families
        assert "tenantry_dependency_up" not in families

    def test_the_api_exports_none_of_the_workers_metrics(self, api_metrics: str) -> None:
        families = {f.name for f in text_string_to_metric_families(api_metrics)}
        assert {f for f in families if OWNERS.get(f) == "worker"} == set()
        # The queue is the API's to report, observed at the scrape.
        assert {"tenantry_ready", "tenantry_queue_oldest_age_seconds"} <= families
