"""SSRF: every refused address class, IPv4 and IPv6, at create and at each connection,
including a DNS answer that changes to a private address after the endpoint passed."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import httpx
import pytest

from tenantry.config import Environment, Settings
from tenantry.db import Database
from tenantry.models import Role
from tenantry.webhooks import addresses
from tests.fixtures.factories import make_actor, make_tenant
from tests.webhooks.conftest import drain
from tests.webhooks.helpers import attempts, deliveries, new_project
from tests.webhooks.receiver import Receiver

REFUSED = {
    "loopback": ["127.0.0.1", "127.255.0.9", "::1"],
    "private": ["10.0.0.1", "172.16.5.4", "192.168.0.10", "fd12:3456::1", "fc00::1"],
    "link-local": ["169.254.10.10", "fe80::1"],
    "carrier-grade NAT": ["100.64.0.1", "100.127.255.254"],
    "multicast": ["224.0.0.251", "239.1.2.3", "ff02::fb", "ff0e::1"],
    "reserved": ["240.0.0.1", "255.255.255.255", "0.0.0.0", "192.0.2.1", "2001:db8::1", "::"],
    "metadata": ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"],
    "IPv4-mapped IPv6": ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"],
    "other IPv4 in IPv6": [
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    ],
}
PUBLIC = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.215.14"]


@dataclass
class ScriptedResolver:
    """DNS answers chosen by the test, one list per lookup (the last one repeats)."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        script = self.answers[host]
        return script.pop(0) if len(script) > 1 else script[0]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> ScriptedResolver:
    resolver = ScriptedResolver()
    monkeypatch.setattr(addresses.current, "resolver", resolver)
    return resolver


ALL_REFUSED = [(kind, a) for kind, group in REFUSED.items() for a in group]


@pytest.mark.parametrize(("kind", "address"), ALL_REFUSED)
def test_every_class_is_refused(kind: str, address: str) -> None:
    assert addresses.refusal(ipaddress.ip_address(address)) is not None, kind


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_passes(address: str) -> None:
    assert addresses.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("kind", "address"), ALL_REFUSED)
async def test_a_name_resolving_to_any_class_is_refused(
    strict_settings: Settings, dns: ScriptedResolver, kind: str, address: str
) -> None:
    dns.answers["hooks.example.test"] = [[address]]
    with pytest.raises(addresses.AddressRefused):
        await addresses.resolve_target(strict_settings, "https://hooks.example.test/x")


async def test_one_bad_answer_among_good_ones_is_refused(
    strict_settings: Settings, dns: ScriptedResolver
) -> None:
    dns.answers["mixed.example.test"] = [["93.184.215.14", "10.0.0.7"]]
    with pytest.raises(addresses.AddressRefused):
        await addresses.resolve_target(strict_settings, "https://mixed.example.test/x")


async def test_a_name_that_does_not_resolve_is_refused(
    strict_settings: Settings, dns: ScriptedResolver
) -> None:
    dns.answers["empty.example.test"] = [[]]
    with pytest.raises(addresses.AddressRefused, match="does not resolve"):
        await addresses.resolve_target(strict_settings, "https://empty.example.test/x")


async def test_allow_private_networks_lifts_only_the_address_rule(settings: Settings) -> None:
    target = await addresses.resolve_target(settings, "http://127.0.0.1:8080/x")
    assert target.address == "127.0.0.1"
    with pytest.raises(addresses.AddressRefused):
        await addresses.resolve_target(settings, "http://u:p@127.0.0.1/x")


async def test_production_wants_https(settings: Settings) -> None:
    prod = settings.model_copy(
        update={"environment": Environment.PRODUCTION, "webhook_allow_private_networks": False}
    )
    with pytest.raises(addresses.AddressRefused, match="https"):
        await addresses.resolve_target(prod, "http://93.184.215.14/x")
    assert (await addresses.resolve_target(prod, "https://93.184.215.14/x")).port == 443


def test_production_refuses_to_start_with_private_networks_allowed() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        Settings(
            environment=Environment.PRODUCTION,
            secret_key="x" * 40,  # type: ignore[arg-type]
            webhook_allow_private_networks=True,
        )


@pytest.mark.committed
class TestAtConnection:
    async def test_rebinding_to_a_private_address_fails_without_retry(
        self,
        strict_client: httpx.AsyncClient,
        strict_settings: Settings,
        db: Database,
        dns: ScriptedResolver,
        receiver: Receiver,
    ) -> None:
        host = "hooks.example.test"
        # Public when the endpoint is created; loopback (our receiver) from then on.
        dns.answers[host] = [["93.184.215.14"], ["127.0.0.1"]]
        tenant = await make_tenant(db)
        owner = await make_actor(db, strict_settings, tenant=tenant, role=Role.OWNER)
        created = await strict_client.post(
            "/api/v1/webhooks",
            json={"url": f"http://{host}:{receiver.port}/hook", "events": ["*"]},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        await new_project(strict_client, owner)
        await drain(strict_settings)
        assert receiver.received == []
        (delivery,) = await deliveries(db, tenant.id)
        assert delivery.status == "failed" and delivery.attempt_count == 1
        (attempt,) = await attempts(db, tenant.id)
        assert attempt.status_code is None
        assert attempt.error is not None and "loopback" in attempt.error

    async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        db: Database,
        dns: ScriptedResolver,
        receiver: Receiver,
    ) -> None:
        dns.answers["receiver.example.test"] = [["127.0.0.1"]]
        tenant = await make_tenant(db)
        owner = await make_actor(db, settings, tenant=tenant, role=Role.OWNER)
        url = f"http://receiver.example.test:{receiver.port}/named"
        created = await client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=owner.headers
        )
        assert created.status_code == 201
        await new_project(client, owner)
        await drain(settings)
        (got,) = receiver.at("/named")
        assert got.headers["host"] == f"receiver.example.test:{receiver.port}"
        assert "receiver.example.test" in dns.asked
