"""What a process loads to start: the worker no web framework, neither process what only
some request or job needs. Checked by module, never by time (bench/startup.py times it).

Each case imports its entry point in a fresh interpreter and lists `sys.modules`; a
module named here coming back means a top-level import brought it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def loaded_by(code: str, **env: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    environ = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
    environ.update(env)
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


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
