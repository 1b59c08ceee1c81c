"""`tenantry worker` with one more job that takes a few seconds: what the SIGTERM test
stops in the middle of. Everything else (the runner's loop, signal handling,
job_completion_wait, hooks) is the real `tenantry worker`, with no cron jobs.

    python -m tests.deploy.slow_worker
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import func
from arq.typing import WorkerCoroutine
from arq.worker import Function

from workers.runner import run
from workers.settings import WorkerSettings

SLOW_JOB = "test.slow"


async def slow(ctx: dict[str, Any], key: str, seconds: float) -> str:
    """Marks its start, sleeps, counts its completion: a job that ran to its end once
    leaves `<key>:finished` at 1."""
    await ctx["redis"].set(f"{key}:started", ctx["job_try"])
    await asyncio.sleep(seconds)
    await ctx["redis"].incr(f"{key}:finished")
    return "finished"


def functions() -> list[Function | WorkerCoroutine]:
    return [*WorkerSettings.functions, func(slow, name=SLOW_JOB, timeout=30, max_tries=3)]


if __name__ == "__main__":
    # As `tenantry worker` does: the same logs, which the test reads.
    from tenantry.config import get_settings
    from tenantry.observability.logging import configure_logging

    configure_logging(get_settings(), component="worker")
    # Keyword overrides: ARQ reads a settings class's own __dict__, so a subclass would
    # lose everything it inherits. Only the job under test runs (no cron jobs).
    run(WorkerSettings, functions=functions(), cron_jobs=[])
