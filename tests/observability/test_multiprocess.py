"""`tenantry serve --workers 2`: /metrics adds up every worker process, and uvicorn's
access log is replaced by one JSON line per request without query strings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tenantry.config import Settings
from tests.observability.test_worker import free_port


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "tenantry serve exited"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("tenantry serve did not start")


def test_two_workers_share_metrics_and_log_json(settings: Settings, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_424242.db").write_bytes(b"stale garbage from the last run")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_JSON": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantry.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(base, proc)
        deadline = time.monotonic() + 180
        while len(list(metrics_dir.glob("counter_*.db"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)  # the second worker process is still starting
        before = _count(httpx.get(f"{base}/metrics", timeout=30).text)
        # A new connection each time, so both worker processes serve some of them.
        for _ in range(30):
            assert (
                httpx.get(f"{base}/api/v1/nowhere?token=query-secret-123", timeout=30).status_code
                == 404
            )
        after = _count(httpx.get(f"{base}/metrics", timeout=30).text)
        files = sorted(metrics_dir.glob("counter_*.db"))
        per_process = [
            _count_metrics(MultiProcessCollector.merge([str(f)], accumulate=True)) for f in files
        ]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert after - before == 30
    assert "counter_424242.db" not in {f.name for f in files}  # cleared at start
    assert len(files) == 2  # both worker processes write their values there
    assert sum(per_process) == after  # /metrics is the sum over the processes
    records = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "tenantry.access" and r["route"] == "none"]
    assert len(access) == 30
    assert all(r["path"] == "/api/v1/nowhere" and r["status"] == 404 for r in access)
    assert "query-secret-123" not in stderr.decode()
    assert not any(r["logger"] == "uvicorn.access" for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)  # startup lines are kept


def _count(text: str) -> float:
    return _count_metrics(text_string_to_metric_families(text))


def _count_metrics(families: Iterable[Metric]) -> float:
    for family in families:
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == {
                "method": "GET",
                "handler": "none",
                "status": "404",
            }:
                return sample.value
    return 0.0
