"""The README's five minutes, run as written against a real `tenantry dev`.

The commands are read out of README.md (between the walkthrough markers), so the README
and this test cannot drift apart. Only what a reader's machine supplies is supplied
here: the base URL the banner printed, the data dir, and `uv run X` meaning "run X in
the project's environment" (a shim, so the test never re-syncs the environment).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantry.devtools.supervisor import free_port
from tests.devtools.running import DevProcess
from tests.fixtures.database import _truncate_all

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(
    r"<!-- walkthrough:start.*?-->\s*```bash\n(?P<script>.*?)```\s*<!-- walkthrough:end -->",
    re.DOTALL,
)


def walkthrough() -> str:
    match = _BLOCK.search(README.read_text())
    assert match, "README.md lost its walk-through markers"
    return match.group("script")


def _uv_shim(directory: Path) -> Path:
    """`uv run tenantry …` → the `tenantry` of this environment."""
    shim = directory / "uv"
    shim.write_text('#!/bin/sh\n[ "$1" = run ] && shift\nexec "$@"\n')
    shim.chmod(0o755)
    return directory


def test_the_walkthrough_covers_what_the_issue_asked_for() -> None:
    script = walkthrough()
    for step in (
        "/auth/verify-email",
        "/invitations/accept",
        "tenantry create-superuser",
        "tenantry mail-token",
        "/api-keys",
        "/admin/tenants/",
    ):
        assert step in script


@pytest.fixture
async def empty_database(owner_engine: AsyncEngine) -> None:
    """The walk-through's accounts (ada, grace, ops) must not exist yet, whatever ran
    before in this process."""
    await _truncate_all(owner_engine)


@pytest.mark.committed
def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path, empty_database: None, db: object
) -> None:
    data_dir = tmp_path / "data"
    dev_env = {**os.environ, "ENVIRONMENT": "development"}
    # A port of its own: 8000 may come and go under tests running in parallel.
    dev = DevProcess.start(data_dir, "--port", str(free_port()), env=dev_env)
    try:
        api, _ = dev.wait_up()
        # A reader's second terminal: no server URL set, only the dev's data dir.
        hidden = ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "MAIL_SINK_DIR")
        env = {k: v for k, v in os.environ.items() if k not in hidden}
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            API=f"{api}/api/v1",
            TENANTRY_DATA_DIR=str(data_dir),
            PATH=os.pathsep.join([str(_uv_shim(tmp_path)), bin_dir, env.get("PATH", "")]),
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", walkthrough()],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\ndev:\n{dev.output()[-3000:]}"
        assert result.returncode == 0, report
        out = result.stdout
        assert '["Write the announcement",null]' in out, report
        assert '{"email":"grace@example.com","role":"member"}' in out, report
        assert '["Launch"]' in out, report
        assert "created superuser ops" in out, report
        assert out.rstrip().endswith("}") and '"plan":"pro"' in out, report
        # The emails were announced by dev as they arrived.
        assert "mail: Welcome to Tenantry — verify your email → ada@example.com" in dev.output()
    finally:
        status = dev.stop()
    assert status == 0
