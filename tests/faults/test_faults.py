"""Faults under load: kill, freeze and restart Redis and PostgreSQL beneath a real API
and a real worker, and hold the service to what docs/operations/faults.md promises.

One scenario, phase after phase, on dependencies this module starts (never the
machine's shared servers): a few concurrent clients list and create (with an
Idempotency-Key, retried with the same key until acknowledged) throughout.

1. baseline;
2. Redis frozen (SIGSTOP): the API keeps serving, at no less than half its baseline
   throughput here (bench/faults.py measures the ≥ 80 % goal on a quiet machine;
   a shared 2-core CI box is too noisy to assert it), readiness says 503;
3. Redis thawed: readiness back;
4. Redis killed (SIGKILL) for FAULTS_REDIS_OUTAGE_SECONDS (30 by default): the API
   serves, login answers 503 with Retry-After, the worker stays alive and reports
   itself not ready; invitations and reports requested meanwhile are delivered once
   Redis is back (each email exactly once);
5. PostgreSQL crashed (immediate stop) and restarted: 503 with Retry-After, readiness
   follows, writes resume;
6. PostgreSQL frozen (SIGSTOP) briefly: requests wait, none fails with a 500.

Throughout: no 500, every 503 carries Retry-After, and every acknowledged create is
in the database exactly once.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.faults.cluster import Cluster
from tests.faults.stack import PASSWORD, Load, Stack

pytestmark = pytest.mark.faults

# The issue asks for a 30 s outage; the worker's loop does not depend on the length
# (it pings with back-off capped at 10 s), so a shorter one may be set for local runs.
OUTAGE_SECONDS = float(os.environ.get("FAULTS_REDIS_OUTAGE_SECONDS", "30"))
PHASE_SECONDS = float(os.environ.get("FAULTS_PHASE_SECONDS", "4"))
# The goal is 0.8 (bench/faults.py asserts it on a quiet machine); CI shares 2 cores.
MIN_HANG_RATIO = float(os.environ.get("FAULTS_MIN_HANG_RATIO", "0.5"))


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    own = Stack(tmp_path_factory.mktemp("stack"), cluster)
    try:
        own.start()
        yield own
    finally:
        own.stop()


async def _owner(api: str) -> dict[str, str]:
    """A user with a tenant of their own; returns bearer headers bound to it."""
    suffix = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=api, timeout=20) as client:
        signed = await client.post(
            "/api/v1/users/",
            json={
                "email": f"owner-{suffix}@example.com",
                "username": f"owner_{suffix}",
                "password": PASSWORD,
                "full_name": "Fault Owner",
            },
        )
        assert signed.status_code == 201, signed.text
        form = {"username": f"owner_{suffix}", "password": PASSWORD}
        token = (await client.post("/api/v1/auth/login", data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        made = await client.post(
            "/api/v1/tenants", json={"name": "Faults", "slug": f"f-{suffix}"}, headers=headers
        )
        assert made.status_code == 201, made.text
        bound = await client.post("/api/v1/auth/login", data=form)
        return {"Authorization": f"Bearer {bound.json()['access_token']}"}


class Readiness:
    """Polls a readiness URL and notes when it changed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.status = 0
        self.changed_at = time.monotonic()

    async def poll(self, until: float) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < until:
                try:
                    status = (await client.get(self.url)).status_code
                except httpx.HTTPError:
                    status = -1
                if status != self.status:
                    self.status, self.changed_at = status, time.monotonic()
                await asyncio.sleep(0.05)

    async def becomes(self, status: int, since: float, limit: float) -> float:
        """Seconds from `since` until readiness answered `status`."""
        deadline = time.monotonic() + limit
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    got = (await client.get(self.url)).status_code
                except httpx.HTTPError:
                    got = -1
                if got == status:
                    return time.monotonic() - since
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.url} did not answer {status} within {limit} s")


@pytest.fixture
async def owner(stack: Stack) -> dict[str, str]:
    return await _owner(stack.api)


async def _outbox(stack: Stack, tenant_emails: list[str]) -> dict[str, int]:
    return {address: len(stack.recorder.to(address)) for address in tenant_emails}


async def _db_names(stack: Stack) -> dict[str, int]:
    """Project names and how often each is stored (as the superuser: no RLS)."""
    conn = await asyncpg.connect(stack.cluster.admin_dsn.replace("/postgres?", "/tenantry?"))
    try:
        rows = await conn.fetch("SELECT name, count(*) AS n FROM projects GROUP BY name")
    finally:
        await conn.close()
    return {row["name"]: row["n"] for row in rows}


async def test_faults_under_load(stack: Stack, owner: dict[str, str]) -> None:
    table: dict[str, Any] = {}
    ready = Readiness(f"{stack.api}/health/ready")
    worker_ready = Readiness(stack.worker_health)
    load = Load(stack.api, owner, clients=4)
    load.start()
    try:
        await asyncio.sleep(1.0)

        # 1. Baseline.
        load.enter("baseline")
        await asyncio.sleep(PHASE_SECONDS)

        # 2. Redis frozen.
        load.enter("redis-frozen")
        frozen_at = time.monotonic()
        stack.valkey.freeze()
        try:
            table["ready_503_after_redis_freeze_s"] = await ready.becomes(503, frozen_at, 10)
            await asyncio.sleep(max(0.0, PHASE_SECONDS - (time.monotonic() - frozen_at)))
        finally:
            stack.valkey.thaw()
        thawed_at = time.monotonic()
        load.enter("redis-thawed")
        table["ready_200_after_redis_thaw_s"] = await ready.becomes(200, thawed_at, 10)
        await asyncio.sleep(1.0)

        # 4. Redis killed for the outage.
        load.enter("redis-killed")
        killed_at = time.monotonic()
        stack.valkey.kill()
        table["ready_503_after_redis_kill_s"] = await ready.becomes(503, killed_at, 10)
        table["worker_503_after_redis_kill_s"] = await worker_ready.becomes(503, killed_at, 15)
        invited = await _requests_during_outage(stack, owner)
        async with httpx.AsyncClient(base_url=stack.api, timeout=20) as client:
            login = await client.post(
                "/api/v1/auth/login", data={"username": "nobody", "password": "x"}
            )
        assert login.status_code == 503 and int(login.headers["retry-after"]) >= 1
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed_at)))
        assert stack.procs["worker"].poll() is None, "the worker died with Redis"
        assert stack.procs["api"].poll() is None
        stack.valkey.start()
        back_at = time.monotonic()
        load.enter("redis-back")
        table["redis_outage_s"] = round(back_at - killed_at, 1)
        table["ready_200_after_redis_back_s"] = await ready.becomes(200, back_at, 15)
        table["worker_200_after_redis_back_s"] = await worker_ready.becomes(200, back_at, 30)

        # 5. PostgreSQL crashed and restarted.
        load.enter("postgres-down")
        down_at = time.monotonic()
        await asyncio.to_thread(stack.cluster.stop, "immediate")
        table["ready_503_after_postgres_kill_s"] = await ready.becomes(503, down_at, 10)
        await asyncio.sleep(PHASE_SECONDS)
        await asyncio.to_thread(stack.cluster.start)
        up_at = time.monotonic()
        load.enter("postgres-back")
        table["ready_200_after_postgres_back_s"] = await ready.becomes(200, up_at, 20)
        await asyncio.sleep(1.0)

        # 6. PostgreSQL frozen.
        load.enter("postgres-frozen")
        stack.cluster.freeze()
        try:
            await asyncio.sleep(2.0)
        finally:
            stack.cluster.thaw()
        load.enter("postgres-thawed")
        await asyncio.sleep(2.0)

        # The work queued while Redis was away is finished, each piece once.
        drained_at = time.monotonic()
        await _until_delivered(stack, invited, limit=120)
        table["outage_work_done_after_s"] = round(time.monotonic() - drained_at, 1)
    finally:
        await load.stop()

    for phase, tally in load.tallies.items():
        table[f"{phase}"] = {
            "statuses": dict(tally.statuses),
            "ok_per_s": round(tally.rate, 1),
            "transport_errors": dict(tally.errors),
        }
    ratio = load.tallies["redis-frozen"].rate / load.tallies["baseline"].rate
    table["throughput_ratio_redis_frozen"] = round(ratio, 2)
    print("\nFAULT TABLE", table)  # the numbers docs/operations/faults.md quotes

    for phase, tally in load.tallies.items():
        assert 500 not in tally.statuses, (phase, tally.statuses)
        assert tally.missing_retry_after == 0, phase
        assert not tally.errors, (phase, tally.errors)
    # Redis trouble costs the API nothing it must refuse.
    for phase in ("redis-frozen", "redis-killed"):
        assert set(load.tallies[phase].statuses) <= {200, 201}, load.tallies[phase].statuses
    assert set(load.tallies["postgres-down"].statuses) <= {200, 201, 503}
    assert load.tallies["postgres-down"].statuses[503] > 0
    assert load.tallies["postgres-back"].ok > 0 and load.tallies["postgres-thawed"].ok > 0
    assert ratio >= MIN_HANG_RATIO, table
    # Every acknowledged create exactly once (creates retried with the same key); one
    # whose earlier attempt died with PostgreSQL is never lost, and is counted when the
    # lost commit acknowledgement made it twice (docs/operations/faults.md, Duplicates).
    names = await _db_names(stack)
    assert load.acknowledged
    assert all(names.get(name) == 1 for name in load.acknowledged), [
        (n, names.get(n)) for n in load.acknowledged if names.get(n) != 1
    ]
    assert all(names.get(name, 0) >= 1 for name in load.ambiguous), load.ambiguous
    print(
        "creates retried after a lost answer:",
        len(load.ambiguous),
        "twice:",
        sum(1 for name in load.ambiguous if names.get(name, 0) > 1),
    )
    assert stack.procs["worker"].poll() is None


async def _requests_during_outage(stack: Stack, owner: dict[str, str]) -> dict[str, Any]:
    """Invitations (emails) and reports asked for while Redis is gone: committed, their
    jobs not enqueued; the relays must pick them up once Redis is back."""
    emails = [f"invitee-{uuid.uuid4().hex[:8]}@example.com" for _ in range(3)]
    reports = []
    async with httpx.AsyncClient(base_url=stack.api, timeout=20, headers=owner) as client:
        for address in emails:
            made = await client.post("/api/v1/invitations", json={"email": address})
            assert made.status_code == 201, made.text
        for _ in range(2):
            made = await client.post("/api/v1/reports", json={"kind": "tasks"})
            assert made.status_code in (201, 202), made.text
            reports.append(made.json()["id"])
    return {"emails": emails, "reports": reports, "headers": owner}


async def _until_delivered(stack: Stack, invited: dict[str, Any], limit: float) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(base_url=stack.api, timeout=20, headers=invited["headers"]) as c:
        while True:
            counts = await _outbox(stack, invited["emails"])
            states = [
                (await c.get(f"/api/v1/reports/{rid}")).json().get("status")
                for rid in invited["reports"]
            ]
            ready = _report_emails(stack)
            if (
                all(n >= 1 for n in counts.values())
                and all(s == "succeeded" for s in states)
                and ready >= len(states)
            ):
                break
            assert time.monotonic() < deadline, (counts, states, stack.log("worker")[-4000:])
            await asyncio.sleep(0.5)
    # Give a duplicate the chance to show up, then: each email exactly once.
    await asyncio.sleep(3)
    assert set((await _outbox(stack, invited["emails"])).values()) == {1}
    assert _report_emails(stack) == len(invited["reports"])


def _report_emails(stack: Stack) -> int:
    with stack.recorder._guard:
        return sum(m.message["Subject"] == "Your report is ready" for m in stack.recorder.accepted)
