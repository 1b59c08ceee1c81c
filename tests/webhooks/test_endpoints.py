"""The endpoints API: who may call it, what it answers, what it stores."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tenantry.config import Settings
from tenantry.db import Database
from tenantry.models import AuditEvent, Role, WebhookEndpoint
from tenantry.webhooks.secrets import Sealer
from tests.fixtures.factories import Actor, make_actor, make_tenant
from tests.fixtures.tenancy import make_api_key

URL = "http://127.0.0.1:9/hook"


async def create(client: httpx.AsyncClient, actor: Actor, **body: object) -> httpx.Response:
    return await client.post(
        "/api/v1/webhooks",
        json={"url": URL, "events": ["project.created"], **body},
        headers=actor.headers,
    )


class TestCreate:
    async def test_secret_shown_once_and_sealed(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        response = await create(client, owner, description="CRM sync")
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/api/v1/webhooks/{body['id']}"
        assert response.headers["cache-control"] == "no-store"
        assert body["status"] == "enabled" and body["events"] == ["project.created"]
        assert body["description"] == "CRM sync" and body["url"] == URL
        secret = body["secret"]
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
        # Never again: not in a read, a list, nor in the row as such.
        got = await client.get(f"/api/v1/webhooks/{body['id']}", headers=owner.headers)
        listed = await client.get("/api/v1/webhooks", headers=owner.headers)
        assert "secret" not in got.json() and secret not in got.text
        assert secret not in listed.text and listed.json()["items"][0]["id"] == body["id"]
        async with db.session_scope(owner.tenant.id) as session:  # type: ignore[union-attr]
            row = (await session.execute(sa.select(WebhookEndpoint))).scalar_one()
        assert secret not in row.secret_sealed and secret[6:] not in row.secret_sealed
        assert Sealer(settings).open(row.id, row.secret_sealed) == secret

    async def test_star_and_duplicates_normalised(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        star = await create(client, owner, events=["task.created", "*"])
        dup = await create(client, owner, events=["task.created", "task.created"])
        assert star.json()["events"] == ["*"]
        assert dup.json()["events"] == ["task.created"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"events": []}, "body.events"),
            ({"events": ["project.exploded"]}, "body.events.0"),
            ({"url": "ftp://example.com/x"}, "body.url"),
            ({"url": "http://user:pw@127.0.0.1/x"}, "body.url"),
            ({"url": "not a url"}, "body.url"),
            ({"url": "http://" + "a" * 2050 + ".com/"}, "body.url"),
            ({"secret": "whsec_mine"}, "body.secret"),
        ],
    )
    async def test_bad_input_422(
        self, client: httpx.AsyncClient, owner: Actor, body: dict[str, object], field: str
    ) -> None:
        response = await create(client, owner, **body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}

    async def test_twenty_per_tenant(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        for _ in range(20):
            assert (await create(client, owner)).status_code == 201
        refused = await create(client, owner)
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith("application/problem+json")
        # Another tenant has its own twenty.
        other = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.ADMIN)
        assert (await create(client, other)).status_code == 201


class TestAccess:
    async def test_admins_and_owners_only(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        admin = await make_actor(db, settings, tenant=owner.tenant, role=Role.ADMIN)
        member = await make_actor(db, settings, tenant=owner.tenant, role=Role.MEMBER)
        assert (await create(client, admin)).status_code == 201
        assert (await create(client, member)).status_code == 403
        assert (await client.get("/api/v1/webhooks", headers=member.headers)).status_code == 403
        assert (await client.get("/api/v1/webhooks")).status_code == 401

    async def test_api_keys_get_403(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        assert owner.tenant is not None
        _, key = await make_api_key(db, settings, owner.tenant, scopes=("read", "write"))
        headers = {"Authorization": f"Bearer {key}"}
        assert (await client.get("/api/v1/webhooks", headers=headers)).status_code == 403
        response = await client.post(
            "/api/v1/webhooks", json={"url": URL, "events": ["*"]}, headers=headers
        )
        assert response.status_code == 403

    async def test_other_tenants_endpoint_is_404(
        self, client: httpx.AsyncClient, owner: Actor, db: Database, settings: Settings
    ) -> None:
        webhook_id = (await create(client, owner)).json()["id"]
        stranger = await make_actor(db, settings, tenant=await make_tenant(db), role=Role.OWNER)
        base = f"/api/v1/webhooks/{webhook_id}"
        h = stranger.headers
        missing = f"/api/v1/webhooks/{uuid.uuid4()}"
        for response in [
            await client.get(base, headers=h),
            await client.patch(base, json={"description": "x"}, headers=h),
            await client.delete(base, headers=h),
            await client.post(f"{base}/rotate-secret", headers=h),
            await client.post(f"{base}/ping", headers=h),
            await client.get(f"{base}/deliveries", headers=h),
            await client.get(f"{base}/deliveries/{uuid.uuid4()}", headers=h),
            await client.get(missing, headers=owner.headers),
        ]:
            assert response.status_code == 404, response.text
        assert (await client.get(base, headers=owner.headers)).status_code == 200


class TestChanges:
    async def test_patch_delete_rotate_with_audit(
        self, client: httpx.AsyncClient, owner: Actor, db: Database
    ) -> None:
        created = (await create(client, owner)).json()
        base = f"/api/v1/webhooks/{created['id']}"
        got = await client.get(base, headers=owner.headers)
        assert got.headers["etag"]
        cached = await client.get(
            base, headers={**owner.headers, "If-None-Match": got.headers["etag"]}
        )
        assert cached.status_code == 304
        patched = await client.patch(
            base,
            json={"events": ["task.updated"], "description": None, "status": "disabled"},
            headers=owner.headers,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["events"] == ["task.updated"]
        assert patched.json()["status"] == "disabled" and patched.json()["description"] is None
        assert patched.headers["etag"] != got.headers["etag"]
        assert (
            await client.patch(base, json={"url": None}, headers=owner.headers)
        ).status_code == 422
        rotated = await client.post(f"{base}/rotate-secret", headers=owner.headers)
        assert rotated.status_code == 200
        assert rotated.json()["secret"].startswith("whsec_")
        assert rotated.json()["secret"] != created["secret"]
        assert (await client.delete(base, headers=owner.headers)).status_code == 204
        assert (await client.get(base, headers=owner.headers)).status_code == 404
        async with db.session_scope(owner.tenant.id) as session:  # type: ignore[union-attr]
            actions = set(
                (
                    await session.execute(
                        sa.select(AuditEvent.action).where(AuditEvent.target_type == "webhook")
                    )
                ).scalars()
            )
        assert {
            "webhook.created",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.deleted",
        } <= actions

    async def test_ping_a_disabled_endpoint_is_409(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        created = (await create(client, owner)).json()
        base = f"/api/v1/webhooks/{created['id']}"
        await client.patch(base, json={"status": "disabled"}, headers=owner.headers)
        assert (await client.post(f"{base}/ping", headers=owner.headers)).status_code == 409

    async def test_ping_is_queued_and_listed(self, client: httpx.AsyncClient, owner: Actor) -> None:
        created = (await create(client, owner)).json()
        base = f"/api/v1/webhooks/{created['id']}"
        ping = await client.post(f"{base}/ping", headers=owner.headers)
        assert ping.status_code == 202, ping.text
        delivery_id = ping.json()["delivery_id"]
        listed = (await client.get(f"{base}/deliveries", headers=owner.headers)).json()
        assert [d["id"] for d in listed["items"]] == [delivery_id]
        item = listed["items"][0]
        assert item["event_type"] == "webhook.ping" and item["status"] == "pending"
        assert item["attempt_count"] == 0 and item["next_attempt_at"] is not None
        done = await client.get(
            f"{base}/deliveries", params={"status": "succeeded"}, headers=owner.headers
        )
        assert done.json()["items"] == []
        bad = await client.get(
            f"{base}/deliveries", params={"status": "lost"}, headers=owner.headers
        )
        assert bad.status_code == 422
        detail = await client.get(f"{base}/deliveries/{delivery_id}", headers=owner.headers)
        assert detail.status_code == 200 and detail.json()["attempts"] == []


class TestAddressRules:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "http://10.1.2.3/x",
            "http://172.16.0.1/x",
            "http://192.168.1.1/x",
            "http://[fd12::1]/x",
            "http://169.254.1.1/x",
            "http://[fe80::1]/x",
            "http://100.64.0.1/x",
            "http://224.0.0.1/x",
            "http://[ff02::1]/x",
            "http://240.0.0.1/x",
            "http://0.0.0.0/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://localhost/x",
        ],
    )
    async def test_refused_with_422(
        self, strict_client: httpx.AsyncClient, db: Database, strict_settings: Settings, url: str
    ) -> None:
        owner = await make_actor(db, strict_settings, tenant=await make_tenant(db))
        response = await strict_client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=owner.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "body.url"

    async def test_update_checked_too(
        self, strict_client: httpx.AsyncClient, db: Database, strict_settings: Settings
    ) -> None:
        owner = await make_actor(db, strict_settings, tenant=await make_tenant(db))
        created = await strict_client.post(
            "/api/v1/webhooks",
            json={"url": "https://93.184.215.14/hook", "events": ["*"]},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        response = await strict_client.patch(
            f"/api/v1/webhooks/{created.json()['id']}",
            json={"url": "https://10.0.0.5/hook"},
            headers=owner.headers,
        )
        assert response.status_code == 422


class TestIfMatch:
    async def test_stale_or_malformed_tag_is_412_and_changes_nothing(
        self, client: httpx.AsyncClient, owner: Actor
    ) -> None:
        created = (await create(client, owner)).json()
        base = f"/api/v1/webhooks/{created['id']}"
        etag = (await client.get(base, headers=owner.headers)).headers["etag"]
        changed = await client.patch(
            base, json={"description": "v2"}, headers={**owner.headers, "If-Match": etag}
        )
        assert changed.status_code == 200
        for tag in (etag, "not-quoted"):
            stale = await client.patch(
                base, json={"description": "v3"}, headers={**owner.headers, "If-Match": tag}
            )
            assert stale.status_code == 412, stale.text
            gone = await client.delete(base, headers={**owner.headers, "If-Match": tag})
            assert gone.status_code == 412
        assert (await client.get(base, headers=owner.headers)).json()["description"] == "v2"
        current = changed.headers["etag"]
        deleted = await client.delete(base, headers={**owner.headers, "If-Match": current})
        assert deleted.status_code == 204
