"""`tenantry create-superuser`, run as a script would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.fixtures.accounts import bearer, tokens_for

# The CLI commits for real; the `db` fixture of committed tests truncates afterwards, so
# the accounts made here do not leak into later tests of this process.
pytestmark = [pytest.mark.committed, pytest.mark.usefixtures("db")]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenantry.cli", "create-superuser", *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestCreateSuperuser:
    async def test_flags_create_an_operator_who_can_log_in(self, client: httpx.AsyncClient) -> None:
        result = _run(
            "--email",
            "root@example.com",
            "--username",
            "root",
            "--password",
            "R00t!Password",
            "--full-name",
            "Root",
        )
        assert result.returncode == 0, result.stderr
        pair = await tokens_for(client, "root", password="R00t!Password")
        me = (await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))).json()
        assert me["is_superuser"] is True
        assert me["email_verified"] is True

    async def test_env_vars_work_and_existing_user_is_a_clear_error(self) -> None:
        env = {
            "TENANTRY_SUPERUSER_EMAIL": "ops@example.com",
            "TENANTRY_SUPERUSER_USERNAME": "ops",
            "TENANTRY_SUPERUSER_PASSWORD": "0ps!Password",
        }
        assert _run(env=env).returncode == 0
        again = _run(env=env)
        assert again.returncode == 1
        assert "already exists" in again.stderr

    def test_missing_value_without_a_terminal_fails_fast(self) -> None:
        result = _run("--email", "x@example.com", "--username", "x-user")
        assert result.returncode == 2
        assert "--password is required" in result.stderr

    def test_weak_password_names_the_rule(self) -> None:
        result = _run("--email", "w@example.com", "--username", "weak", "--password", "weak")
        assert result.returncode == 2
        assert "password" in result.stderr and "at least 8" in result.stderr
