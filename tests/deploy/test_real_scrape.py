"""The alert rules against what a real API and a real worker export.

A real API (`tenantry serve`, uvicorn) and a real worker (`tenantry worker`) run against
the test PostgreSQL and Redis; both /metrics are scraped twice around some traffic and a
job, and promtool's test format replays the scrapes as an hour of a steady, healthy
system: counters grow at the rate seen between the scrapes, gauges hold their value.
Every rule is evaluated on that, and nothing may fire; then the same hour with every
worker gone must fire TenantryWorkersDown within its `for`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families

from tenantry.jobs import Job
from tests.deploy import manifests as m
from tests.deploy import rules
from tests.fixtures.smtp import free_port

pytestmark = pytest.mark.skipif(
    rules.PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)
MONOTONIC = {"counter", "histogram", "summary"}
MINUTES = 60


@dataclass
class Target:
    job: str
    instance: str
    url: str


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tenantry.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until_up(client: httpx.AsyncClient, url: str, *, seconds: float = 120) -> None:
    for _ in range(int(seconds * 4)):
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"{url} never answered 200")


@pytest.fixture
async def targets(redis: ArqRedis) -> AsyncIterator[list[Target]]:
    api_port, worker_port = free_port(), free_port()
    env = {
        **os.environ,
        "WORKER_METRICS_PORT": str(worker_port),
        "WORKER_METRICS_HOST": "127.0.0.1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    procs = [
        _start(["serve", "--host", "127.0.0.1", "--port", str(api_port)], env),
        _start(["worker"], env),
    ]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await _until_up(client, f"http://127.0.0.1:{api_port}/health/ready")
            await _until_up(client, f"http://127.0.0.1:{worker_port}/health")
        yield [
            Target(rules.API_JOB, f"api:{api_port}", f"http://127.0.0.1:{api_port}/metrics"),
            Target(
                rules.WORKER_JOB,
                f"worker:{worker_port}",
                f"http://127.0.0.1:{worker_port}/metrics",
            ),
        ]
    finally:
        await asyncio.to_thread(_stop, procs)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, float]]:
    found = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(("tenantry_", "http_")):
            continue  # process_*, python_*: no rule reads them
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            found[key] = (family.type, float(sample.value))
    return found


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def input_series(
    target: Target, first: str, second: str, *, up: str = f"1x{MINUTES}"
) -> Iterator[dict[str, str]]:
    """A steady hour of the target: counters go on at the pace seen between two scrapes
    (counted per minute), gauges keep the second scrape's value."""
    own = {"job": target.job, "namespace": m.NAMESPACE, "instance": target.instance}
    yield {"series": _series("up", own), "values": up}
    before = _samples(first)
    for (name, labels), (kind, value) in _samples(second).items():
        series = _series(name, {**dict(labels), **own})
        if kind in MONOTONIC:
            start = before.get((name, labels), (kind, 0.0))[1]
            step = max(value - start, 0.0)
            values = f"{_number(start)}+{_number(step)}x{MINUTES}"
        else:
            values = f"{_number(value)}x{MINUTES}"
        yield {"series": series, "values": values}


async def _traffic(api: str, redis: ArqRedis) -> None:
    base = api.removesuffix("/metrics")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for _ in range(20):
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/api/v1/tenants")).status_code == 401
            assert (await client.get("/api/v1/no-such-route")).status_code == 404
    job = await redis.enqueue_job(Job.PING.value)
    assert job is not None
    await job.result(timeout=60)


def _run_promtool(tmp_path: Path, test: dict[str, Any]) -> str:
    (tmp_path / "rules.yaml").write_text(
        rules.dump_rule_file(rules.without_annotations(rules.render_groups()))
    )
    (tmp_path / "scrape.yaml").write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    result = rules.promtool("test", "rules", "scrape.yaml", cwd=tmp_path)
    return result.stdout + result.stderr if result.returncode else ""


async def test_a_healthy_api_and_worker_fire_nothing(
    targets: list[Target], redis: ArqRedis, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        first = [(await client.get(t.url)).text for t in targets]
        await _traffic(targets[0].url, redis)
        second = [(await client.get(t.url)).text for t in targets]
    # The worker no longer reports the API's gauges, and the API reports the queue.
    assert "tenantry_ready" not in second[1] and "tenantry_queue_depth" in second[0]
    series = [
        s for t, a, b in zip(targets, first, second, strict=True) for s in input_series(t, a, b)
    ]
    assert any("tenantry_jobs_total" in s["series"] for s in series)
    names = sorted(rules.alerts(rules.render_groups()))
    healthy = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "a healthy API and worker, as scraped",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{t}m", "alertname": name, "exp_alerts": []}
                    for name in names
                    for t in (10, MINUTES)
                ],
            }
        ],
    }
    failure = _run_promtool(tmp_path, healthy)
    assert failure == "", failure

    # The same hour with the worker fleet dead from minute 10: the fleet alert fires
    # once its `for` (5 minutes) has passed, and not before.
    dead = [
        s
        for t, a, b in zip(targets, first, second, strict=True)
        for s in input_series(t, a, b, up="1x9 0x50" if t.job == rules.WORKER_JOB else "1x60")
    ]
    labels = {"severity": "critical", "namespace": m.NAMESPACE, "job": rules.WORKER_JOB}
    fleet = {
        **healthy,
        "tests": [
            {
                "name": "every worker gone",
                "interval": "1m",
                "input_series": dead,
                "alert_rule_test": [
                    {"eval_time": "14m", "alertname": "TenantryWorkersDown", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "TenantryWorkersDown",
                        "exp_alerts": [{"exp_labels": labels}],
                    },
                ],
            }
        ],
    }
    failure = _run_promtool(tmp_path, fleet)
    assert failure == "", failure
