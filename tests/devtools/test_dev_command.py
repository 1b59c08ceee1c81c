"""`tenantry dev` cannot fail silently: taken default ports do not stop it, the banner
comes only once the API and the worker answer, and a dying child stops the tree with
a reason and a non-zero exit. Other commands find its servers from the data dir.

The dev process runs against the suite's own PostgreSQL and Redis (DATABASE_URL and
REDIS_URL are set by the fixtures), so no embedded server is started here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.devtools.running import DevProcess

pytestmark = pytest.mark.committed


@contextlib.contextmanager
def holding(port: int) -> Iterator[bool]:
    """Hold a port as another program would; False if someone else holds it already
    (another suite on this machine may be running this very test)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("0.0.0.0", port))
            sock.listen()
            held = True
        except OSError:
            held = False
        yield held
    finally:
        sock.close()


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (a local URL)
        return int(response.status)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenantry.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _without_urls() -> dict[str, str]:
    """The environment of a newcomer's second terminal: no URL of any server set."""
    names = ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "MAIL_SINK_DIR")
    return {k: v for k, v in os.environ.items() if k not in names}


def test_comes_up_with_the_default_ports_taken_and_serves_other_commands(
    tmp_path: Path, db: object
) -> None:
    with holding(8000) as api_port_held, holding(9100) as worker_port_held:
        dev = DevProcess.start(tmp_path / "data", "--seed")
        try:
            api, worker_health = dev.wait_up()
            if api_port_held:
                assert not api.endswith(":8000")
            if worker_port_held:
                assert ":9100/" not in worker_health
            assert _get(f"{api}/health/ready") == 200
            assert _get(worker_health) == 200
            banner = dev.output()
            for what in ("/api/docs", "mail ", "data ", "accounts", "Ctrl-C", "limits"):
                assert what in banner

            # The seeded owner logs in to the seeded tenant and sees its projects.
            login = httpx.post(
                f"{api}/api/v1/auth/login",
                data={"username": "owner", "password": "Demo-password-1", "tenant": "acme-demo"},
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            projects = httpx.get(
                f"{api}/api/v1/projects", headers={"Authorization": f"Bearer {token}"}
            )
            assert projects.status_code == 200
            assert len(projects.json()["items"]) == 2
            members = httpx.get(
                f"{api}/api/v1/members", headers={"Authorization": f"Bearer {token}"}
            )
            assert {m["role"] for m in members.json()["items"]} == {"owner", "admin", "member"}

            # A second terminal with no URL set: the commands find dev's servers.
            env = {**_without_urls(), "TENANTRY_DATA_DIR": str(tmp_path / "data")}
            made = _cli(
                "create-superuser",
                "--email=ops@example.com",
                "--username=ops",
                "--password=Ops-password-1",
                env=env,
            )
            assert made.returncode == 0, made.stderr
            assert "created superuser ops" in made.stdout
            migrated = _cli("migrate", env=env)
            assert migrated.returncode == 0, migrated.stderr
            # New mail is listed as it arrives, and its token can be read back.
            invited = httpx.post(
                f"{api}/api/v1/invitations",
                json={"email": "carol@example.com", "role": "viewer"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert invited.status_code == 201, invited.text
            line = dev.wait_for("mail: You are invited to join Acme Demo", timeout=60)
            assert "carol@example.com" in line
            token_of_carol = _cli("mail-token", "carol@example.com", "--subject=invited", env=env)
            assert token_of_carol.returncode == 0, token_of_carol.stderr
            assert len(token_of_carol.stdout.strip()) > 20
        finally:
            status = dev.stop()
    assert status == 0, dev.output()
    assert not (tmp_path / "data" / "dev.json").exists()


def test_a_killed_worker_stops_everything_with_a_non_zero_exit(tmp_path: Path, db: object) -> None:
    dev = DevProcess.start(tmp_path / "data")
    try:
        api, _ = dev.wait_up()
        children = dev.children()
        os.kill(children["worker"], signal.SIGKILL)
        status = dev.proc.wait(timeout=60)
    finally:
        dev.stop()
    assert status == 1
    last = dev.output().strip().splitlines()[-1]
    assert last.startswith("tenantry dev: the worker was killed by SIGKILL")
    # The API went down with it: nothing answers with no worker behind it.
    with pytest.raises(urllib.error.URLError):
        _get(f"{api}/health/ready")
    with pytest.raises(ProcessLookupError):
        os.kill(children["api"], 0)


def test_a_worker_that_cannot_start_is_a_reasoned_failure(tmp_path: Path, db: object) -> None:
    """The issue's first hour: the worker died on a taken port and dev exited 0."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tenantry.cli",
                "dev",
                "--data-dir",
                str(tmp_path),
                "--worker-metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert f"port {port} is taken" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["create-superuser", "--email=a@example.com", "--username=abc", "--password=Ops-pass-1"],
        ["migrate"],
        ["worker"],
        ["seed"],
    ],
    ids=lambda c: c[0],
)
def test_commands_say_what_to_set_without_a_url_or_a_dev(
    command: list[str], tmp_path: Path
) -> None:
    env = {**_without_urls(), "TENANTRY_DATA_DIR": str(tmp_path)}
    result = _cli(*command, env=env)
    assert result.returncode == 2
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "uv run tenantry dev"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_the_ports_and_the_data_dir() -> None:
    result = _cli("dev", "--help", env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    for option in ("--port", "--worker-metrics-port", "--data-dir", "--seed"):
        assert option in result.stdout


def test_a_stale_state_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(
        json.dumps({"pid": 2**22 + 7, "api_url": "x", "mail_dir": "y", "environment": {}})
    )
    from tenantry.devtools import state

    assert state.read(tmp_path) is None


def test_the_state_file_is_for_its_owner_only(tmp_path: Path) -> None:
    from tenantry.devtools import state

    record = state.DevState(
        pid=os.getpid(),
        api_url="http://127.0.0.1:1",
        mail_dir=str(tmp_path / "mail"),
        environment={"DATABASE_URL": "postgresql+asyncpg://app:secret@db/tenantry"},
    )
    record.write(tmp_path)
    assert (tmp_path / "dev.json").stat().st_mode & 0o777 == 0o600
    found = state.read(tmp_path)
    assert found is not None
    assert found.environment["DATABASE_URL"].endswith("@db/tenantry")
    state.remove(tmp_path, os.getpid() + 1)  # not ours: kept
    assert (tmp_path / "dev.json").exists()
    state.remove(tmp_path, os.getpid())
    assert not (tmp_path / "dev.json").exists()
