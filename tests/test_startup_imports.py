"""What a process loads to start: the worker no web framework, neither process what only
some request or job needs. Checked by module, never by time (bench/startup.py times it).

Each case imports its entry point in a fresh interpreter and lists `sys.modules`; a
module named here coming back means a top-level import brought it back. The last cases
check that the entry points load with the garbage collector paused and leave what they
loaded frozen (`tenantry.kit.startup`), again by state, not time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Loaded only where used: the CLI and dev tools, migrations, Sentry's SDK without a DSN,
# and httpx (the first webhook send imports it; it brings click, rich and pygments).
NEVER_AT_START = (
    "alembic",
    "click",
    "httpx",
    "rich",
    "sentry_sdk",
    "typer",
    "tenantry.devtools.dev",
    "tenantry.webhooks.transport",
)
# The worker calls services and serves its own /health and /metrics: no web framework.
WORKER_NEVER = (
    *NEVER_AT_START,
    "fastapi",
    "prometheus_fastapi_instrumentator",
    "uvicorn",
    "tenantry.error_handlers",
    "tenantry.health",
    "tenantry.main",
    "tenantry.middleware",
    "tenantry.devtools.pages",
)


def run_fresh(code: str, report: str, **env: str) -> Any:
    """Run `code` in a fresh interpreter; the JSON value of the expression `report`."""
    environ = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
    environ.update(env)
    script = f"{code}\nimport json, sys\nprint(json.dumps({report}))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def loaded_by(code: str, **env: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    return set(run_fresh(code, "sorted(sys.modules)", **env))


def offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in loaded if any(n == f or n.startswith(f + ".") for f in forbidden))


def test_the_worker_loads_no_web_framework() -> None:
    assert offenders(loaded_by("import workers.settings"), WORKER_NEVER) == []


@pytest.mark.parametrize(
    "code",
    ["import tenantry.main", "from tenantry.main import create_app; create_app()"],
    ids=["import", "create_app"],
)
def test_the_api_loads_only_what_serving_needs(code: str) -> None:
    loaded = loaded_by(code)
    assert "fastapi" in loaded  # the check sees what the process holds
    assert offenders(loaded, NEVER_AT_START) == []


def test_a_dsn_loads_sentry() -> None:
    """The other side of `sentry_sdk` above: with a DSN the SDK is there."""
    code = (
        "from tenantry.config import Settings\n"
        "from tenantry.observability.sentry import init_sentry\n"
        "init_sentry(Settings(sentry_dsn='https://key@o0.ingest.sentry.io/0'), component='api')"
    )
    assert "sentry_sdk" in loaded_by(code)


GC_STATE = "[__import__('gc').isenabled(), __import__('gc').get_freeze_count()]"


@pytest.mark.parametrize("module", ["tenantry.main", "workers.settings"])
def test_an_entry_point_leaves_what_it_loaded_to_no_collection(module: str) -> None:
    """kit.startup: the modules load with the collector paused and end frozen; the
    collector is on again for everything after."""
    enabled, frozen = run_fresh(f"import {module}", GC_STATE)
    assert enabled is True
    assert frozen > 50_000  # the libraries' and our modules' objects, not a handful


def test_a_process_without_the_collector_keeps_it_off() -> None:
    enabled, frozen = run_fresh("import gc\ngc.disable()\nimport tenantry.main", GC_STATE)
    assert (enabled, frozen) == (False, 0)


def test_a_serving_api_collects_its_young_generation_less_often() -> None:
    """kit.startup.serving, from a production app's lifespan: a young collection every
    YOUNG_THRESHOLD net allocations, not Python's 700 (bench/collector.py)."""
    code = (
        "import asyncio, gc\n"
        "from tenantry.config import Environment, Settings\n"
        "from tenantry.kit.startup import YOUNG_THRESHOLD\n"
        "from tenantry.main import create_app\n"
        "app = create_app(Settings(environment=Environment.PRODUCTION, check_db_role=False,\n"
        "    secret_key='s' * 48, database_url='postgresql+asyncpg://x@127.0.0.1:9/none'))\n"
        "before = gc.get_threshold()[0]\n"
        "async def serve():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        return gc.get_threshold()[0]\n"
        "during = asyncio.run(serve())\n"
    )
    before, during, expected = run_fresh(code, "[before, during, YOUNG_THRESHOLD]")
    assert before == 700 and during == expected == 10_000
