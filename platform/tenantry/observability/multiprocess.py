"""Prometheus across several uvicorn worker processes.

Each process keeps its own counters, and a scrape reaches one of them. With
`PROMETHEUS_MULTIPROC_DIR` set *before prometheus_client is imported*, every process
writes its values to files there and `/metrics` merges them all. `tenantry serve` turns
this on when it runs more than one worker (or when the operator set the variable, e.g.
under gunicorn), and empties the directory first so a restart never replays the last
run's counters. One process keeps the ordinary in-memory registry, with process metrics.

This module imports nothing from prometheus_client at import time, so the CLI may use
it before deciding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> str | None:
    """Choose, create and empty the directory; returns it, or None for one process."""
    configured = os.environ.get(ENV)
    if not configured and workers <= 1:
        return None
    directory = Path(configured or tempfile.mkdtemp(prefix="tenantry-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(directory)
    return str(directory)


def mark_process_dead() -> None:
    """Drop this process's live gauges (in-progress, pool) when it stops cleanly."""
    if not os.environ.get(ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
