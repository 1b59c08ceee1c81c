"""compose.yaml, the local full stack: consistent with the CLI, Settings and the chart."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tenantry import embedded
from tenantry.config import Settings
from tests.deploy import manifests as m
from tests.deploy import rules

COMPOSE = yaml.safe_load((m.ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("migrate", "api", "worker")
INIT_SQL = (m.ROOT / "deploy" / "compose" / "postgres" / "init.sql").read_text()
PROMETHEUS = yaml.safe_load((m.ROOT / "deploy/compose/prometheus/prometheus.yml").read_text())
KNOWN_OUTSIDE_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR", "TENANTRY_ALEMBIC_INI"}


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def _mounts(service: str) -> dict[str, Path]:
    """Container path → host path of each bind mount."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = m.ROOT / source
    return mounts


def _resolve(value: str) -> str:
    """`${VAR:-default}` as compose expands it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


class TestServices:
    def test_the_whole_stack_is_there(self) -> None:
        expected = {"postgres", "redis", "migrate", "api", "worker", "mailpit"}
        assert expected | {"prometheus", "grafana"} <= set(SERVICES)

    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_app_services_run_the_image_like_kubernetes(self, service: str) -> None:
        spec = SERVICES[service]
        assert spec["build"] == "."
        assert spec["read_only"] is True
        tmpfs = {entry.split(":")[0] for entry in spec["tmpfs"]}
        assert {"/tmp", "/run/prometheus"} <= tmpfs
        assert "user" not in spec  # the image's non-root user

    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_commands_are_real_cli_commands(self, service: str) -> None:
        m.parse_cli(SERVICES[service]["command"])

    def test_roles_of_each_command(self) -> None:
        assert SERVICES["migrate"]["command"] == ["migrate"]
        assert SERVICES["worker"]["command"] == ["worker"]
        serve = m.parse_cli(SERVICES["api"]["command"])
        assert f"{serve['port']}:{serve['port']}" in SERVICES["api"]["ports"]

    def test_worker_healthcheck_is_the_worker_probe(self) -> None:
        test = SERVICES["worker"]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "tenantry"
        assert m.parse_cli(test[2:]) == {"check": True}

    def test_api_healthcheck_asks_readiness(self) -> None:
        assert "/health/ready" in " ".join(SERVICES["api"]["healthcheck"]["test"])

    def test_postgres_is_healthy_only_over_tcp(self) -> None:
        # The image's first start runs init scripts on a socket-only server: a socket
        # check passes while the roles and database are still being created.
        test = SERVICES["postgres"]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "pg_isready"]
        assert test[test.index("-h") + 1] == "127.0.0.1"

    def test_migrate_retries_a_bounded_number_of_times(self, tmp_path: Path) -> None:
        entrypoint = [arg.replace("$$", "$") for arg in SERVICES["migrate"]["entrypoint"]]
        assert entrypoint[:2] == ["/bin/sh", "-c"]
        # A `tenantry` that fails twice (PostgreSQL still starting), then migrates.
        fake = tmp_path / "tenantry"
        fake.write_text(
            '#!/bin/sh\nn=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n + 1)) > "$0.count"\n'
            '[ "$1" = migrate ] && [ "$n" -ge 2 ]\n'
        )
        fake.chmod(0o755)
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        argv = [*entrypoint, *SERVICES["migrate"]["command"]]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "tenantry.count").read_text().strip() == "3"
        assert "try 2 failed" in result.stderr
        assert re.search(r"seq (\d+)", entrypoint[2]) and "exit 1" in entrypoint[2]

    def test_third_party_images_are_pinned_to_exact_versions(self) -> None:
        # A full release number (PostgreSQL's have two parts: 17.6), or a digest.
        parts = {"postgres": 2}
        for name, service in SERVICES.items():
            if "build" in service:
                continue
            image = service["image"]
            if re.search(r"@sha256:[0-9a-f]{64}$", image):
                continue
            tag = image.rsplit(":", 1)[1]
            version = re.fullmatch(r"v?(\d+(?:\.\d+)*)(-[a-z0-9]+)?", tag)
            assert version, (name, image)
            assert len(version.group(1).split(".")) >= parts.get(name, 3), (name, image)

    @pytest.mark.parametrize("service", ["api", "worker"])
    def test_app_waits_for_migrations(self, service: str) -> None:
        depends = SERVICES[service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


class TestSettings:
    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_every_variable_is_a_setting(self, service: str) -> None:
        known = {name.upper() for name in Settings.model_fields}
        unknown = set(_env(service)) - known - KNOWN_OUTSIDE_SETTINGS
        assert unknown == set()

    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_settings_load(self, service: str) -> None:
        env = {k.lower(): _resolve(v) for k, v in _env(service).items()}
        env = {
            k: v for k, v in env.items() if k.upper() in {f.upper() for f in Settings.model_fields}
        }
        settings = Settings(**env)  # type: ignore[arg-type]
        assert settings.app_role == embedded.APP_ROLE

    def test_only_migrate_gets_the_owner_role(self) -> None:
        assert make_url(_env("migrate")["DATABASE_OWNER_URL"]).username == embedded.OWNER_ROLE
        for service in ("api", "worker"):
            assert "DATABASE_OWNER_URL" not in _env(service)

    def test_mail_goes_to_the_catcher(self) -> None:
        assert _env("api")["SMTP_HOST"] in SERVICES

    def test_urls_name_compose_services(self) -> None:
        for service in APP_SERVICES:
            env = _env(service)
            assert make_url(env["DATABASE_URL"]).host in SERVICES
            assert re.match(r"redis://([^:/]+)", env["REDIS_URL"]).group(1) in SERVICES  # type: ignore[union-attr]


class TestPostgresInit:
    def test_init_script_is_mounted(self) -> None:
        mounts = _mounts("postgres")
        assert any(t.startswith("/docker-entrypoint-initdb.d/") for t in mounts)
        assert all(path.exists() for path in mounts.values())

    def test_creates_the_roles_and_database_the_urls_use(self) -> None:
        app = make_url(_env("api")["DATABASE_URL"])
        owner = make_url(_env("migrate")["DATABASE_OWNER_URL"])
        assert re.search(rf"CREATE ROLE {app.username} LOGIN PASSWORD '{app.password}'", INIT_SQL)
        assert re.search(
            rf"CREATE ROLE {owner.username} LOGIN PASSWORD '{owner.password}'", INIT_SQL
        )
        assert f"CREATE DATABASE {app.database} OWNER {owner.username}" in INIT_SQL
        assert app.database == owner.database

    def test_app_role_cannot_bypass_rls(self) -> None:
        line = next(ln for ln in INIT_SQL.splitlines() if f"ROLE {embedded.APP_ROLE}" in ln)
        assert "NOSUPERUSER" in line and "NOBYPASSRLS" in line


class TestMonitoring:
    def test_prometheus_scrapes_api_and_worker(self) -> None:
        targets = {
            job["job_name"]: (job["metrics_path"], job["static_configs"][0]["targets"][0])
            for job in PROMETHEUS["scrape_configs"]
        }
        serve = m.parse_cli(SERVICES["api"]["command"])
        assert targets["tenantry-api"] == ("/metrics", f"api:{serve['port']}")
        worker_port = _env("worker")["WORKER_METRICS_PORT"]
        assert targets["tenantry-worker"] == ("/metrics", f"worker:{worker_port}")

    def test_prometheus_loads_the_charts_alert_rules(self) -> None:
        mounts = _mounts("prometheus")
        for rule_file in PROMETHEUS["rule_files"]:
            assert mounts[rule_file] == rules.COMPOSE_RULES
        # The render for release "tenantry" in namespace "tenantry" (test_alert_rules keeps
        # the file equal to it): the targets carry exactly those labels.
        for job in PROMETHEUS["scrape_configs"]:
            assert job["job_name"] in {rules.API_JOB, rules.WORKER_JOB}
            assert job["static_configs"][0]["labels"]["namespace"] == m.NAMESPACE
        config = mounts["/etc/prometheus/prometheus.yml"]
        assert config.exists()

    def test_grafana_provisions_the_charts_dashboards(self) -> None:
        mounts = _mounts("grafana")
        provisioning = mounts["/etc/grafana/provisioning"]
        providers = yaml.safe_load((provisioning / "dashboards" / "tenantry.yaml").read_text())
        (provider,) = providers["providers"]
        dashboards = mounts[provider["options"]["path"]]
        assert dashboards == m.CHART / "files" / "dashboards"
        assert sorted(p.name for p in dashboards.glob("*.json")) == ["api.json", "workers.json"]
        sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
        assert sources["datasources"][0]["url"] == "http://prometheus:9090"

    def test_every_bind_mount_exists(self) -> None:
        for service in SERVICES:
            for path in _mounts(service).values():
                assert path.exists(), f"{service}: {path}"
