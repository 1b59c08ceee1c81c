"""Webhook delivery latency, from the commit of the change to the receiver's socket.

A scratch database, a real `tenantry worker` process and a threaded HTTP receiver on
loopback. Three runs:

1. one endpoint, events committed one by one (paced);
2. 100 endpoints subscribed to every event, the same events (each fans out to 100);
3. isolation: one endpoint that hangs past WEBHOOK_TIMEOUT_SECONDS on every request with
   200 deliveries pending, and a healthy endpoint receiving paced events meanwhile:
   how long the healthy one waited.

Usage:

    uv run python bench/webhooks_latency.py [--events 100] [--redis redis://127.0.0.1:6379/9]

Prints p50/p99/max per run. Numbers depend on the machine's load: say how loaded it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg

from tenantry import embedded
from tenantry.cli import run_migrations
from tenantry.config import get_settings
from tenantry.db import Database
from tenantry.jobs import send_jobs, take_jobs
from tenantry.models import Tenant, WebhookEndpoint
from tenantry.redis_client import create_redis
from tenantry.webhooks import events
from tenantry.webhooks.secrets import Sealer, new_secret

ADMIN = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HANG_SECONDS = 600.0


class Receiver:
    """Records (path, marker, arrival time); `/hang` holds every request open."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                marker = json.loads(body)["data"].get("marker", "")
                with receiver.lock:
                    receiver.arrivals.append((self.path, marker, at))
                if self.path == "/hang":
                    receiver.release.wait(HANG_SECONDS)
                try:
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, prefix: str) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self.lock:
            for path, marker, at in self.arrivals:
                if path.startswith(prefix):
                    found.setdefault(marker, []).append(at)
        return found

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


def summary(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        print(f"{name}: no samples")
        return
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms"
        f" p99={p99:.1f} ms max={ms[-1]:.1f} ms"
    )


async def add_endpoints(
    db: Database, tenant_id: uuid.UUID, urls: list[str], types: list[str]
) -> None:
    sealer = Sealer(get_settings())
    async with db.session_scope(tenant_id) as session:
        for url in urls:
            endpoint_id = uuid.uuid4()
            session.add(
                WebhookEndpoint(
                    id=endpoint_id,
                    tenant_id=tenant_id,
                    url=url,
                    events=types,
                    secret_sealed=sealer.seal(endpoint_id, new_secret()),
                )
            )


async def commit_event(
    db: Database, redis: Any, tenant_id: uuid.UUID, type: str, marker: str
) -> float:
    """One event in its own transaction; the time its commit returned."""
    async with db.session_scope(tenant_id) as session:
        await events.emit(session, tenant_id, type, {"id": marker, "marker": marker})
        jobs = take_jobs(session)
    committed = time.time()
    await send_jobs(redis, jobs)
    return committed


async def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return False


async def latency_run(
    db: Database,
    redis: Any,
    receiver: Receiver,
    tenant_id: uuid.UUID,
    prefix: str,
    type: str,
    count: int,
    endpoints: int,
    pace: float,
) -> list[float]:
    committed: dict[str, float] = {}
    for _ in range(count):
        marker = uuid.uuid4().hex
        committed[marker] = await commit_event(db, redis, tenant_id, type, marker)
        await asyncio.sleep(pace)
    expected = count * endpoints
    done = await wait_until(
        lambda: sum(len(v) for v in receiver.at(prefix).values()) >= expected, 300
    )
    if not done:
        print(f"  (only {sum(len(v) for v in receiver.at(prefix).values())}/{expected} arrived)")
    return [at - committed[m] for m, ats in receiver.at(prefix).items() for at in ats]


async def main(count: int, redis_url: str) -> None:
    database = f"tenantry_bench_{uuid.uuid4().hex[:8]}"
    await embedded.ensure_roles_and_database(ADMIN, database)
    base = ADMIN.rsplit("/", 1)[0].replace("postgresql://postgres@", "postgresql+asyncpg://{}@")
    queue = f"tenantry:bench:{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": base.format(embedded.APP_ROLE) + f"/{database}",
        "DATABASE_OWNER_URL": base.format(embedded.OWNER_ROLE) + f"/{database}",
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "test",
        "QUEUE_NAME": queue,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    get_settings.cache_clear()
    receiver = Receiver()
    worker: subprocess.Popen[bytes] | None = None
    db: Database | None = None
    redis = create_redis(get_settings())
    try:
        await asyncio.to_thread(run_migrations)
        db = Database.from_settings(get_settings())
        worker = subprocess.Popen(
            [sys.executable, "-m", "tenantry.cli", "worker"],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{receiver.port}"

        async def tenant() -> uuid.UUID:
            row = Tenant(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
            async with db.session_scope() as session:
                session.add(row)
            return row.id

        # Warm up: the worker process starts and connects.
        warm = await tenant()
        await add_endpoints(db, warm, [f"{url}/warm"], ["*"])
        await commit_event(db, redis, warm, "project.created", "warm")
        if not await wait_until(lambda: receiver.at("/warm"), 120):
            raise RuntimeError("the worker never delivered the warm-up event")

        one = await tenant()
        await add_endpoints(db, one, [f"{url}/one"], ["project.created"])
        summary(
            "1 endpoint, commit -> receiver",
            await latency_run(db, redis, receiver, one, "/one", "project.created", count, 1, 0.05),
        )

        many = await tenant()
        await add_endpoints(db, many, [f"{url}/many/{i}" for i in range(100)], ["*"])
        summary(
            "100 endpoints, commit -> receiver (each event fans out to 100)",
            await latency_run(
                db, redis, receiver, many, "/many/", "task.created", max(count // 5, 5), 100, 0.2
            ),
        )

        iso = await tenant()
        await add_endpoints(db, iso, [f"{url}/hang"], ["project.deleted"])
        await add_endpoints(db, iso, [f"{url}/healthy"], ["project.created"])
        async with db.session_scope(iso) as session:
            for _ in range(200):
                await events.emit(session, iso, "project.deleted", {"id": "x", "marker": "h"})
            jobs = take_jobs(session)
        await send_jobs(redis, jobs)
        await wait_until(lambda: len(receiver.at("/hang").get("h", [])) >= 4, 60)
        summary(
            "healthy endpoint while a hanging one has 200 pending",
            await latency_run(db, redis, receiver, iso, "/healthy", "project.created", 40, 1, 0.25),
        )
        arrivals = sorted(receiver.at("/hang").get("h", []))
        # The receiver holds each request for good; the worker gives up after 10 s, so the
        # most requests that arrived within any 9.5 s is how many were in flight at once.
        window = max(sum(1 for b in arrivals if a <= b < a + 9.5) for a in arrivals)
        print(
            f"  hanging endpoint: at most {window} request(s) in flight at once (cap 4),"
            f" {len(arrivals)} sent in all, the rest of its 200 pending"
        )
    finally:
        receiver.close()
        if worker is not None:
            worker.kill()
            worker.wait()
        if db is not None:
            await db.dispose()
        await redis.delete(queue)
        await redis.aclose()
        conn = await asyncpg.connect(ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.redis))
