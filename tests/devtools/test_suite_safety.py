"""The suite cannot destroy data it did not create: it skips a Redis index holding
someone else's keys, flushes only its own, and refuses remote servers and application
databases unless TEST_ALLOW_ANY_SERVER=1 is set."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis

from tenantry import embedded
from tests.fixtures import services as fx


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the test's own: filling its indexes harms nobody."""
    server = embedded.start_valkey(tmp_path_factory.mktemp("valkey"), persist=False)
    try:
        yield str(server.connection_url).rstrip("/")
    finally:
        server.stop()


@pytest.fixture
def clean(own_redis: str) -> Iterator[str]:
    yield own_redis
    redis.Redis.from_url(f"{own_redis}/0").flushall()


@pytest.fixture(autouse=True)
def first_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("TEST_REDIS_DB_BASE", "10")
    monkeypatch.delenv(fx.ALLOW_ENV, raising=False)


def _db(server: str, index: int) -> redis.Redis:
    return redis.Redis.from_url(f"{server}/{index}")


def test_an_index_with_someone_elses_keys_is_never_taken_or_flushed(clean: str) -> None:
    _db(clean, 10).set("usage:acme:2026-12", "41")  # another app's data, as in the issue
    index = fx._claim_redis_db(clean, "run-a")
    assert index == 11
    assert _db(clean, 11).exists(fx.MARKER_KEY) == 1
    assert _db(clean, 0).get(f"{fx.CLAIM_PREFIX}10") is None  # the skipped claim is released
    _db(clean, 11).set("t:x:cache", "ours")
    fx._release_redis_db(clean, index, "run-a")
    assert _db(clean, 11).dbsize() == 0
    assert _db(clean, 0).get(f"{fx.CLAIM_PREFIX}11") is None
    assert _db(clean, 10).get("usage:acme:2026-12") == b"41"


def test_a_crashed_runs_marked_leftovers_are_taken(clean: str) -> None:
    fx.mark_redis_index(_db(clean, 10))
    _db(clean, 10).set("t:x:cache", "left behind")
    assert fx._claim_redis_db(clean, "run-b") == 10


def test_no_index_to_take_is_an_error_that_says_why(clean: str) -> None:
    for index in range(1, 16):
        _db(clean, index).set("theirs", "1")
    with pytest.raises(fx.NoFreeRedisIndex, match="holds keys that are not this suite"):
        fx._claim_redis_db(clean, "run-c")
    assert all(_db(clean, index).get("theirs") == b"1" for index in range(1, 16))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@db.internal.example.com:5432/postgres",
        "redis://cache.example.com:6379",
    ],
)
def test_another_machine_is_refused_unless_allowed(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(fx.UnsafeTarget, match=fx.ALLOW_ENV):
        fx.check_local(url, "TEST_X_URL")
    monkeypatch.setenv(fx.ALLOW_ENV, "1")
    fx.check_local(url, "TEST_X_URL")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://postgres@localhost/postgres",
        "postgresql://postgres@/postgres?host=/tmp/pg-sock",
        "redis://127.0.0.1:6379",
    ],
)
def test_this_machine_is_fine(url: str) -> None:
    fx.check_local(url, "TEST_X_URL")


def test_an_application_database_as_admin_target_is_refused(
    test_services: fx.TestServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's own database has tables: exactly what an app database looks like.
    from sqlalchemy.engine import make_url

    dsn = (
        make_url(test_services.admin_dsn)
        .set(database=test_services.database)
        .render_as_string(hide_password=False)
    )
    with pytest.raises(fx.UnsafeTarget, match="table"):
        fx.check_admin_database(dsn)
    monkeypatch.setenv(fx.ALLOW_ENV, "1")
    fx.check_admin_database(dsn)


def test_an_empty_maintenance_database_is_fine(test_services: fx.TestServices) -> None:
    database = f"tenantry_empty_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(test_services.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create())
    from sqlalchemy.engine import make_url

    dsn = make_url(test_services.admin_dsn).set(database=database).render_as_string(False)
    try:
        fx.check_admin_database(dsn)
    finally:
        asyncio.run(fx.drop_database(test_services.admin_dsn, database))
