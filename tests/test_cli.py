"""`tenantry migrate` finds its migrations when the package is installed, not checked out.

The image installs tenantry non-editable into a virtualenv (site-packages), so the
module no longer sits next to alembic.ini. These tests copy the package out of the
checkout, as a wheel install would lay it out, and run the CLI from that copy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tenantry import embedded
from tenantry.cli import ALEMBIC_INI_ENV, MigrationsNotFound, find_alembic_ini
from tests.fixtures import services as fixtures
from tests.fixtures.services import drop_database, migration_version

ROOT = Path(__file__).resolve().parents[1]
HEAD = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tenantry and workers as site-packages would hold them: no alembic.ini above."""
    site = tmp_path_factory.mktemp("site-packages")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "platform" / "tenantry", site / "tenantry", ignore=ignore)
    shutil.copytree(ROOT / "workers", site / "workers", ignore=ignore)
    return site


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The image's WORKDIR: alembic.ini and alembic/ copied, nothing else."""
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(
        ROOT / "alembic", tmp_path / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def _run_installed(
    site: Path, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != ALEMBIC_INI_ENV}
    environ.update(PYTHONPATH=str(site), **env)
    # -P: like the console script, the working directory is not on sys.path.
    code = "from tenantry.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-P", "-c", code, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestFindAlembicIni:
    def test_checkout_finds_its_own_from_anywhere(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(ALEMBIC_INI_ENV, raising=False)
        monkeypatch.chdir(tmp_path)
        assert find_alembic_ini() == ROOT / "alembic.ini"

    def test_env_var_wins(
        self, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(ALEMBIC_INI_ENV, str(app_dir / "alembic.ini"))
        assert find_alembic_ini() == app_dir / "alembic.ini"

    def test_env_var_naming_a_missing_file_is_an_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(ALEMBIC_INI_ENV, str(tmp_path / "nope.ini"))
        with pytest.raises(MigrationsNotFound, match=r"nope\.ini"):
            find_alembic_ini()


class TestInstalledMigrate:
    def test_without_alembic_ini_exits_2_and_says_where_it_looked(
        self, site: Path, tmp_path: Path
    ) -> None:
        result = _run_installed(site, tmp_path, "migrate")
        assert result.returncode == 2, result.stderr
        # The copy was imported (not the checkout): its own location is in the message.
        assert str(site.parent) in result.stderr
        assert ALEMBIC_INI_ENV in result.stderr

    def test_finds_the_working_directory_and_upgrades_to_head(
        self, site: Path, app_dir: Path, test_services: fixtures.TestServices
    ) -> None:
        # (The image's TENANTRY_ALEMBIC_INI path is replayed in tests/deploy/test_dockerfile.py.)
        admin = test_services.admin_dsn
        database = f"tenantry_cli_{uuid.uuid4().hex[:10]}"
        asyncio.run(embedded.ensure_roles_and_database(admin, database))
        try:
            result = _run_installed(
                site,
                app_dir,
                "migrate",
                DATABASE_URL=fixtures._url_for(admin, embedded.APP_ROLE, database),
                DATABASE_OWNER_URL=fixtures._url_for(admin, embedded.OWNER_ROLE, database),
            )
            assert result.returncode == 0, result.stderr
            assert "migrated to head" in result.stdout
            assert asyncio.run(migration_version(admin, database)) == HEAD
        finally:
            asyncio.run(drop_database(admin, database))
