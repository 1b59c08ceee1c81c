"""A worker SIGKILLed mid-delivery loses nothing: the delivery goes out after a restart."""

from __future__ import annotations

import httpx
import pytest

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role
from tests.fixtures.factories import make_actor, make_tenant
from tests.webhooks.conftest import kill, start_worker, wait_for
from tests.webhooks.helpers import add_endpoint, attempts, deliveries, new_project
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.committed


async def test_killed_mid_delivery_is_delivered_after_restart(
    client: httpx.AsyncClient, db: Database, settings: Settings, receiver: Receiver
) -> None:
    tenant = await make_tenant(db)
    owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
    # The first request is held open until the worker is dead; the next one succeeds.
    receiver.script("/hook", Reply(200, delay=120), Reply(200, b"got it"))
    endpoint = await add_endpoint(client, owner, receiver.url("/hook"))
    await new_project(client, owner)

    first = start_worker()
    try:
        await wait_for(lambda: receiver.in_flight["/hook"] == 1)
    finally:
        kill(first)
    (delivery,) = await deliveries(db, tenant.id)
    assert delivery.status == "pending" and delivery.attempt_count == 1
    assert await attempts(db, tenant.id) == []  # the attempt never got recorded

    async def succeeded() -> bool:
        (row,) = await deliveries(db, tenant.id)
        return row.status == "succeeded"

    second = start_worker()
    try:
        # Its lease runs out (timeout + margin); then the relay wakes it again.
        await wait_for(succeeded)
    finally:
        kill(second)
        receiver.release.set()
    got = receiver.at("/hook")
    assert len(got) == 2  # the same delivery twice: the one duplicate the docs name
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == str(delivery.id)
    detail = await client.get(
        f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery.id}", headers=owner.headers
    )
    body = detail.json()
    assert body["attempt_count"] == 2
    assert [a["response_body"] for a in body["attempts"]] == ["got it"]
