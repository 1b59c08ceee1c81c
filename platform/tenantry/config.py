"""Settings from the environment (and `.env`), with the refusals production needs."""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

# Values that ship in examples and must never sign production tokens.
_KNOWN_WEAK_SECRETS = {"changethis", "secret", "change-me", "changeme", "dev-secret"}
DEV_SECRET = "dev-only-insecure-secret-key-0123456789abcdef"  # noqa: S105  (refused in production)


_TEST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
# Development plans: a person trying the API by hand (or a script of curl calls) should
# never meet the free plan's 60 a minute. Production and tests keep the contract's
# numbers; an explicit RATE_LIMIT_* still wins everywhere.
DEV_PLAN_LIMITS = {
    "rate_limit_free": 6_000,
    "rate_limit_pro": 60_000,
    "rate_limit_enterprise": 600_000,
}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of the platform; names match the documented configuration."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Environment = Environment.DEVELOPMENT
    project_name: str = "Tenantry"
    public_url: str = "http://localhost:8000"

    database_url: str = "postgresql+asyncpg://tenantry_app@127.0.0.1:5432/tenantry"
    database_owner_url: str | None = None
    # A fixed pool: SQLAlchemy closes an overflow connection as soon as it is returned, so
    # under steady load overflow meant a new connection (a PostgreSQL backend fork and a
    # TLS attempt) every few requests; 20 kept open cost nothing of the kind.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    db_pool_timeout: float = 5.0
    db_read_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout: float = 5.0
    db_statement_timeout_ms: int = 15_000
    db_lock_timeout_ms: int = 5_000
    # asyncpg's prepared-statement cache per connection. 0 behind PgBouncer in
    # transaction mode (1.18 and older keep no prepared statements across transactions;
    # from 1.21 set its max_prepared_statements instead): statements are then prepared
    # unnamed, or under a fresh name, never reused on another server connection.
    db_statement_cache_size: int = Field(default=100, ge=0)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_socket_timeout: float = 0.5
    # The ARQ queue (a Redis sorted set). Distinct names let deployments or test runs
    # share one Redis database without taking each other's jobs.
    queue_name: str = "tenantry:queue"

    secret_key: SecretStr = SecretStr(DEV_SECRET)
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "tenantry"
    jwt_audience: str = "tenantry-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    # The refresh token just rotated out is answered again, with the same new pair, for
    # this long (several tabs refreshing at once); later it counts as a replay.
    refresh_grace_seconds: float = Field(default=30.0, ge=0)
    password_reset_ttl_seconds: int = 30 * 60
    email_verify_ttl_seconds: int = 7 * 24 * 3600

    # Argon2id cost: RFC 9106's second recommendation (t=3, 64 MiB), one lane so each
    # hash is one thread and the limit below really bounds the CPU it takes (~0.2 s of
    # CPU a hash here). ENVIRONMENT=test drops whatever is not set explicitly to a
    # cheap cost.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1
    # Hashes run in threads, at most this many at once (default: cores − 1, at least 1),
    # so a login burst queues instead of starving the event loop or allocating 64 MiB
    # per request; past `password_hash_queue_limit` waiting callers the answer is 503.
    password_hash_concurrency: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1
    )
    password_hash_queue_limit: int = 256

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "Tenantry <no-reply@tenantry.local>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0

    # With no SMTP_HOST, development mail is written here as .eml files (never dropped).
    mail_sink_dir: str | None = None
    # Outbox delivery: tries before a row is dead, exponential backoff (with jitter)
    # between them, the lease a claimed row gets (must exceed a whole SMTP send, which
    # is bounded by 2 × SMTP_TIMEOUT), and how often the relay re-enqueues due rows.
    email_max_attempts: int = 8
    email_backoff_base_seconds: float = 30.0
    email_backoff_max_seconds: float = 3600.0
    email_claim_lease_seconds: float = 120.0
    email_relay_interval_seconds: int = 20

    # Outgoing webhooks (the contract's "Webhooks" rules). A 2xx within the timeout succeeds; each
    # failure waits the next delay of the schedule (seconds), then the delivery fails.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0, 10800.0, 21600.0, 43200.0]
    )
    webhook_disable_after: int = Field(default=20, ge=1)
    webhook_concurrency_per_endpoint: int = Field(default=4, ge=1, le=50)
    # Development and tests only: deliver to loopback and private addresses.
    webhook_allow_private_networks: bool = False
    webhook_max_endpoints: int = Field(default=20, ge=1)
    # How often the relay looks for deliveries whose job was lost.
    webhook_relay_interval_seconds: int = Field(default=10, ge=1, le=60)

    sentry_dsn: str | None = None
    release: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    # When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: SecretStr | None = None
    # The worker's own /metrics and /health; 0 picks a free port (tests).
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"  # noqa: S104  (a pod's probe port)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs_enabled: bool | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 1024 * 1024

    # Memory each API process may spend on recently read entries (cache.py, the local
    # tier in front of Redis); 0 turns the tier off.
    cache_local_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)

    # Reports queued or running at once per tenant; more answer 429.
    reports_max_in_flight: int = 5
    # ARQ retries a killed worker's job after the longest job timeout + 10 s, so keep it short.
    report_job_timeout: int = 60

    # Rate limits (the contract's "Limits"): per RATE_LIMIT_WINDOW_SECONDS, counted in Redis.
    rate_limit_enabled: bool = True
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    rate_limit_login: int = Field(default=10, ge=0)  # per client IP and username
    # Per client IP, any username: a ceiling against password spraying, ten times the
    # pair's, so one person's failures never lock out everyone behind the same NAT.
    rate_limit_login_ip: int = Field(default=100, ge=0)
    rate_limit_signup: int = Field(default=5, ge=0)  # per client IP
    rate_limit_password_reset: int = Field(default=5, ge=0)  # per client IP
    rate_limit_free: int = Field(default=60, ge=0)  # per tenant, by plan
    rate_limit_pro: int = Field(default=600, ge=0)
    rate_limit_enterprise: int = Field(default=6000, ge=0)
    # While Redis is down the tenant rule fails open; say so in the log at most this often.
    rate_limit_log_interval_seconds: float = 60.0
    # After a Redis *timeout* (slow, not refused), skip it for this long rather than make
    # every request wait REDIS_SOCKET_TIMEOUT.
    rate_limit_backoff_seconds: float = 1.0

    # `tenantry serve` refuses to start if the app role could bypass row-level security.
    check_db_role: bool = True

    log_level: str = "INFO"
    log_json: bool | None = None

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: Any) -> Any:
        # `WEBHOOK_RETRY_SCHEDULE=5,30,120`: seconds, comma-separated; empty means no retries.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _non_negative_delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE delays must be >= 0 seconds")
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        # Operators write `CORS_ORIGINS=https://a,https://b`; JSON lists work too.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _cheap_hashing_in_tests(self) -> Settings:
        # The suite hashes hundreds of passwords on a shared 2-core machine; production
        # cost there would only measure Argon2. Explicit values (env or kwargs) still win.
        if self.environment is Environment.TEST:
            for name, cheap in _TEST_ARGON2.items():
                if name not in self.model_fields_set:
                    setattr(self, name, cheap)
        return self

    @model_validator(mode="after")
    def _generous_plans_in_development(self) -> Settings:
        if self.environment is Environment.DEVELOPMENT:
            for name, generous in DEV_PLAN_LIMITS.items():
                if name not in self.model_fields_set:
                    setattr(self, name, generous)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        secret = self.secret_key.get_secret_value()
        if (
            len(secret.encode()) < 32
            or secret == DEV_SECRET
            or secret.lower() in _KNOWN_WEAK_SECRETS
        ):
            problems.append("SECRET_KEY must be a random value of at least 32 bytes")
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS must not contain '*'")
        if self.docs_enabled:
            problems.append("DOCS_ENABLED must be off")
        if self.webhook_allow_private_networks:
            problems.append("WEBHOOK_ALLOW_PRIVATE_NETWORKS must be off")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def show_docs(self) -> bool:
        if self.docs_enabled is None:
            return not self.is_production
        return self.docs_enabled

    @property
    def json_logs(self) -> bool:
        return self.is_production if self.log_json is None else self.log_json

    @property
    def owner_url(self) -> str:
        return self.database_owner_url or self.database_url

    @property
    def app_role(self) -> str:
        """The role named in DATABASE_URL: the one migrations grant to."""
        username = make_url(self.database_url).username
        if not username:
            raise ValueError("DATABASE_URL must name the app role")
        return username


@lru_cache
def get_settings() -> Settings:
    return Settings()
