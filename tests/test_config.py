from __future__ import annotations

import pytest
from pydantic import ValidationError

from tenantry.config import DEV_SECRET, Environment, Settings

STRONG = "k" * 48


def prod(**overrides: object) -> Settings:
    values: dict[str, object] = {"environment": "production", "secret_key": STRONG}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


class TestProductionRefusals:
    def test_strong_settings_start(self) -> None:
        settings = prod(cors_origins="https://app.example.com")
        assert settings.cors_origins == ["https://app.example.com"]
        assert settings.show_docs is False

    @pytest.mark.parametrize("secret", ["short", DEV_SECRET, "changethis"])
    def test_weak_secret_is_refused(self, secret: str) -> None:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            prod(secret_key=secret)

    def test_wildcard_cors_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="CORS_ORIGINS"):
            prod(cors_origins="*")

    def test_docs_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="DOCS_ENABLED"):
            prod(docs_enabled=True)

    def test_default_secret_is_fine_in_development(self) -> None:
        assert Settings(_env_file=None, environment="development").show_docs is True  # type: ignore[call-arg]


class TestParsing:
    def test_csv_and_json_lists(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", '["https://a.example", "https://b.example"]')
        assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]  # type: ignore[call-arg]
        monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
        assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]  # type: ignore[call-arg]

    def test_app_role_comes_from_database_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DATABASE_OWNER_URL", raising=False)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url="postgresql+asyncpg://the_app:pw@db:5432/tenantry"
        )
        assert settings.app_role == "the_app"
        assert settings.owner_url == settings.database_url


class TestPlanLimitsByEnvironment:
    """Development is generous (a newcomer's curl session never meets 60 a minute);
    tests and production keep the contract's numbers; explicit values always win."""

    def test_development_defaults_are_generous(self) -> None:
        from tenantry.config import DEV_PLAN_LIMITS

        settings = Settings(environment=Environment.DEVELOPMENT)
        assert settings.rate_limit_free == DEV_PLAN_LIMITS["rate_limit_free"] >= 1000
        assert settings.rate_limit_pro > settings.rate_limit_free

    def test_production_and_tests_keep_the_contract(self) -> None:
        secret = "x" * 40
        for environment in (Environment.TEST, Environment.PRODUCTION):
            settings = Settings(environment=environment, secret_key=secret)
            assert (settings.rate_limit_free, settings.rate_limit_pro) == (60, 600)
            assert settings.rate_limit_enterprise == 6000

    def test_an_explicit_limit_wins_in_development(self) -> None:
        settings = Settings(environment=Environment.DEVELOPMENT, rate_limit_free=7)
        assert settings.rate_limit_free == 7
