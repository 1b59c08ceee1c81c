"""Events end to end: API write → outbox rows → real ARQ worker → loopback receiver."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook, WebhookVerificationError

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import Role
from tenantry.webhooks import events as webhook_events
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.smtp import SmtpServer
from tests.webhooks.conftest import drain
from tests.webhooks.helpers import add_endpoint, attempts, deliveries, new_project
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.committed


@pytest.fixture
async def owner(db: Database, settings: Settings) -> Actor:
    tenant = await make_tenant(db, name="Acme Corp")
    return await make_actor(db, settings, tenant=tenant, role=Role.OWNER)


def tenant_of(actor: Actor) -> uuid.UUID:
    assert actor.tenant is not None
    return actor.tenant.id


class TestSigned:
    async def test_verified_by_standardwebhooks_and_data_is_the_api_object(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        endpoint = await add_endpoint(client, owner, receiver.url(), ["project.created"])
        project_id = await new_project(client, owner)
        await drain(settings)
        (got,) = receiver.at("/hook")
        assert got.headers["content-type"] == "application/json"
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "project.created"
        assert payload["tenant_id"] == str(tenant_of(owner))
        assert payload["timestamp"].endswith("Z")
        api_view = await client.get(f"/api/v1/projects/{project_id}", headers=owner.headers)
        assert payload["data"] == api_view.json()
        # Tampered body, or another secret: refused by the library.
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(got.body.replace(b"Apollo", b"Apolla"), got.headers)
        other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(got.body, got.headers)

    async def test_during_rotation_both_secrets_verify(
        self, client: httpx.AsyncClient, owner: Actor, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = await add_endpoint(client, owner, receiver.url(), ["project.created"])
        rotated = await client.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=owner.headers
        )
        new_secret = rotated.json()["secret"]
        await new_project(client, owner)
        await drain(settings)
        (got,) = receiver.at("/hook")
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        for secret in (endpoint["secret"], new_secret):
            assert Webhook(secret).verify(got.body, got.headers)["type"] == "project.created"


class TestRouting:
    async def test_only_subscribed_types_and_only_enabled(
        self, client: httpx.AsyncClient, owner: Actor, settings: Settings, receiver: Receiver
    ) -> None:
        await add_endpoint(client, owner, receiver.url("/tasks"), ["task.created"])
        await add_endpoint(client, owner, receiver.url("/all"), ["*"])
        off = await add_endpoint(client, owner, receiver.url("/off"), ["*"])
        await client.patch(
            f"/api/v1/webhooks/{off['id']}", json={"status": "disabled"}, headers=owner.headers
        )
        project_id = await new_project(client, owner)
        task = await client.post(
            f"/api/v1/projects/{project_id}/tasks", json={"title": "Launch"}, headers=owner.headers
        )
        await client.patch(
            f"/api/v1/tasks/{task.json()['id']}", json={"status": "done"}, headers=owner.headers
        )
        await client.delete(f"/api/v1/tasks/{task.json()['id']}", headers=owner.headers)
        await drain(settings)
        types = [json.loads(r.body)["type"] for r in receiver.at("/tasks")]
        assert types == ["task.created"]
        everything = sorted(json.loads(r.body)["type"] for r in receiver.at("/all"))
        assert everything == ["project.created", "task.created", "task.deleted", "task.updated"]
        deleted = next(json.loads(r.body) for r in receiver.at("/all") if b"task.deleted" in r.body)
        assert deleted["data"] == {"id": task.json()["id"]}
        assert receiver.at("/off") == []
        # Enabling again replays nothing that was missed.
        await client.patch(
            f"/api/v1/webhooks/{off['id']}", json={"status": "enabled"}, headers=owner.headers
        )
        await drain(settings)
        assert receiver.at("/off") == []

    async def test_tenants_never_cross(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        other = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        await add_endpoint(client, owner, receiver.url("/a"))
        await add_endpoint(client, other, receiver.url("/b"))
        await new_project(client, owner, "Mine")
        await drain(settings)
        assert [json.loads(r.body)["data"]["name"] for r in receiver.at("/a")] == ["Mine"]
        assert receiver.at("/b") == []
        assert await deliveries(db, tenant_of(other)) == []

    async def test_rolled_back_or_refused_write_sends_nothing(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        await add_endpoint(client, owner, receiver.url())
        refused = await client.post(
            "/api/v1/projects", json={"name": "x" * 300}, headers=owner.headers
        )
        assert refused.status_code == 422
        with pytest.raises(RuntimeError):
            async with db.session_scope(tenant_of(owner)) as session:
                ids = await webhook_events.emit(
                    session, tenant_of(owner), "project.deleted", {"id": str(uuid.uuid4())}
                )
                assert len(ids) == 1  # written inside the transaction...
                raise RuntimeError("the change fails after the event was recorded")
        await drain(settings)
        assert receiver.received == []
        assert await deliveries(db, tenant_of(owner)) == []  # ...and gone with it


class TestRetries:
    async def test_500_503_200_is_three_attempts_of_one_id(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        receiver.script("/hook", Reply(500, b"boom"), Reply(503, b"busy"), Reply(200, b"thanks"))
        endpoint = await add_endpoint(client, owner, receiver.url())
        await new_project(client, owner)
        await drain(settings)
        got = receiver.at("/hook")
        assert len(got) == 3
        assert len({r.headers["webhook-id"] for r in got}) == 1
        for r in got:
            Webhook(endpoint["secret"]).verify(r.body, r.headers)
        base = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
        (item,) = (await client.get(base, headers=owner.headers)).json()["items"]
        assert item["id"] == got[0].headers["webhook-id"]
        assert item["status"] == "succeeded" and item["attempt_count"] == 3
        assert item["last_status_code"] == 200 and item["delivered_at"] is not None
        detail = (await client.get(f"{base}/{item['id']}", headers=owner.headers)).json()
        assert [a["status_code"] for a in detail["attempts"]] == [500, 503, 200]
        assert [a["response_body"] for a in detail["attempts"]] == ["boom", "busy", "thanks"]

    async def test_redirect_retried_never_followed_then_failed(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        receiver.defaults["/moved"] = Reply(301, b"", headers={"Location": receiver.url("/new")})
        await add_endpoint(client, owner, receiver.url("/moved"))
        await new_project(client, owner)
        await drain(settings)
        assert len(receiver.at("/moved")) == 3  # the first try and the two of the schedule
        assert receiver.at("/new") == []
        (delivery,) = await deliveries(db, tenant_of(owner))
        assert delivery.status == "failed" and delivery.last_status_code == 301
        assert delivery.last_error and "redirect" in delivery.last_error

    async def test_response_body_kept_to_1_kib(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        receiver.script("/hook", Reply(200, b"x" * 100_000))
        await add_endpoint(client, owner, receiver.url())
        await new_project(client, owner)
        await drain(settings)
        (attempt,) = await attempts(db, tenant_of(owner))
        assert attempt.response_body == "x" * 1024

    async def test_redeliver_sends_the_same_id_again(
        self, client: httpx.AsyncClient, owner: Actor, settings: Settings, receiver: Receiver
    ) -> None:
        endpoint = await add_endpoint(client, owner, receiver.url())
        await new_project(client, owner)
        await drain(settings)
        (first,) = receiver.at("/hook")
        delivery_id = first.headers["webhook-id"]
        base = f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery_id}"
        response = await client.post(f"{base}/redeliver", headers=owner.headers)
        assert response.status_code == 202 and response.json() == {"delivery_id": delivery_id}
        await drain(settings)
        again = receiver.at("/hook")
        assert [r.headers["webhook-id"] for r in again] == [delivery_id, delivery_id]
        assert len((await client.get(base, headers=owner.headers)).json()["attempts"]) == 2


class TestDisabling:
    async def test_410_disables_at_once(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
        smtp: SmtpServer,
    ) -> None:
        worker_settings = settings.model_copy(update=smtp.settings_overrides())
        receiver.defaults["/hook"] = Reply(410, b"gone")
        endpoint = await add_endpoint(client, owner, receiver.url())
        await new_project(client, owner, "one")
        await drain(worker_settings)
        assert len(receiver.at("/hook")) == 1  # no retry
        got = (await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=owner.headers)).json()
        assert got["status"] == "disabled" and "410" in got["disabled_reason"]
        await new_project(client, owner, "two")
        await drain(worker_settings)
        assert len(receiver.at("/hook")) == 1  # a disabled endpoint receives nothing
        (mail,) = smtp.recorder.to(owner.user.email)
        assert mail.message["Subject"] == "A webhook endpoint of Acme Corp was disabled"
        assert receiver.url() in mail.text

    async def test_consecutive_failures_disable_and_email_owners_and_admins(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
        smtp: SmtpServer,
    ) -> None:
        worker_settings = settings.model_copy(update=smtp.settings_overrides())
        admin = await make_actor(db, settings, tenant=owner.tenant, role=Role.ADMIN)
        member = await make_actor(db, settings, tenant=owner.tenant, role=Role.MEMBER)
        receiver.defaults["/hook"] = Reply(500, b"down")
        endpoint = await add_endpoint(client, owner, receiver.url(), ["project.created"])
        for index in range(settings.webhook_disable_after):
            await new_project(client, owner, f"p{index}")
        await drain(worker_settings)
        tries = len(settings.webhook_retry_schedule) + 1
        assert len(receiver.at("/hook")) == settings.webhook_disable_after * tries
        got = (await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=owner.headers)).json()
        assert got["status"] == "disabled"
        assert got["disabled_reason"] == "3 deliveries in a row failed"
        for person in (owner, admin):
            (mail,) = smtp.recorder.to(person.user.email)
            assert mail.message["Subject"] == "A webhook endpoint of Acme Corp was disabled"
        assert smtp.recorder.to(member.user.email) == []
        await new_project(client, owner, "after")
        await drain(worker_settings)
        assert len(receiver.at("/hook")) == settings.webhook_disable_after * tries

    async def test_a_success_resets_the_count(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        tries = len(settings.webhook_retry_schedule) + 1
        fail_twice = [Reply(500)] * (2 * tries)
        receiver.script("/hook", *fail_twice, Reply(200), *([Reply(500)] * (2 * tries)))
        endpoint = await add_endpoint(client, owner, receiver.url(), ["project.created"])
        for index in range(5):
            await new_project(client, owner, f"p{index}")
            await drain(settings)
        got = (await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=owner.headers)).json()
        assert got["status"] == "enabled"


class TestComments:
    async def test_comment_created_and_deleted(
        self, client: httpx.AsyncClient, owner: Actor, settings: Settings, receiver: Receiver
    ) -> None:
        await add_endpoint(client, owner, receiver.url(), ["comment.created", "comment.deleted"])
        project_id = await new_project(client, owner)
        task = await client.post(
            f"/api/v1/projects/{project_id}/tasks", json={"title": "Talk"}, headers=owner.headers
        )
        created = await client.post(
            f"/api/v1/tasks/{task.json()['id']}/comments",
            json={"body": "Looks good"},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        deleted = await client.delete(
            f"/api/v1/comments/{created.json()['id']}", headers=owner.headers
        )
        assert deleted.status_code == 204
        await drain(settings)
        bodies = sorted((json.loads(r.body) for r in receiver.at("/hook")), key=lambda b: b["type"])
        assert [b["type"] for b in bodies] == ["comment.created", "comment.deleted"]
        assert bodies[0]["data"] == created.json()
        assert bodies[1]["data"] == {"id": created.json()["id"]}


class TestRotationEnds:
    async def test_after_24_hours_only_the_new_secret_signs(
        self,
        client: httpx.AsyncClient,
        owner: Actor,
        db: Database,
        settings: Settings,
        receiver: Receiver,
    ) -> None:
        endpoint = await add_endpoint(client, owner, receiver.url(), ["project.created"])
        rotated = await client.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=owner.headers
        )
        async with db.session_scope(tenant_of(owner)) as session:
            await session.execute(
                sa.text(
                    "UPDATE webhook_endpoints SET previous_secret_expires_at ="
                    " now() - interval '1 second' WHERE tenant_id = :t"
                ),
                {"t": tenant_of(owner)},
            )
        await new_project(client, owner)
        await drain(settings)
        (got,) = receiver.at("/hook")
        assert len(got.headers["webhook-signature"].split(" ")) == 1
        assert Webhook(rotated.json()["secret"]).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(got.body, got.headers)
