"""Partners without Kafka get each dispatch request as a signed webhook: retried after failures with
growing delays, every attempt in the delivery log, and still sent after a restart."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlmodel import select
from standardwebhooks.webhooks import Webhook

from vuonminh.logistics import partners
from vuonminh.logistics.models import PartnerDelivery
from vuonminh.shared.auth import Role
from vuonminh.shared.events import Envelope, OrderConfirmed
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import auth_headers, embedded_client, eventually, order_line, placed_order


class Partner:
    """A partner's endpoint: answers 500 `failures` times, then 200; checks every signature."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict, dict]] = []
        self.secret: str | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        Webhook(self.secret).verify(body, dict(request.headers))  # raises when the signature is wrong
        self.received.append((dict(request.headers), json.loads(body)))
        if self.failures > 0:
            self.failures -= 1
            return httpx.Response(500, text="try later")
        return httpx.Response(200)


async def _ship(platform, order_id: str) -> None:
    order = placed_order(
        [order_line("co-ba-hong", "03390", 1, 65000, 500, sku="MIEN-DONG-500")], province_code="12", ward_code="03478"
    )
    order = order.model_copy(update={"order_id": order_id})
    confirmed = OrderConfirmed(order_id=order_id, confirmed_at=utc_now())
    await platform.transport.log.append(
        [Envelope.new(order, source="/test").to_record(), Envelope.new(confirmed, source="/test").to_record()]
    )


async def _deliveries(platform) -> list[PartnerDelivery]:
    async with platform.service("logistics").sessions() as session:
        return list((await session.exec(select(PartnerDelivery))).all())


async def test_a_partner_gets_its_dispatch_requests_signed_and_retried(tmp_path):
    partner = Partner(failures=2)
    async with embedded_client(tmp_path) as (client, platform):
        logistics = platform.service("logistics")
        logistics.state["partner_http_transport"] = httpx.MockTransport(partner.handler)
        endpoint = {"id": "ghtk-partner", "carrier": "ghtk", "url": "https://partner.example/ghtk/orders"}
        made = await client.post("/v1/partners/endpoints", json=endpoint)
        assert made.status_code == 201 and made.json()["signing_secret"].startswith("whsec_")
        partner.secret = made.json()["signing_secret"]
        assert (await client.post("/v1/partners/endpoints", json=endpoint)).status_code == 409
        listed = (await client.get("/v1/partners/endpoints")).json()
        assert listed[0]["signing_secret"] is None  # shown once
        bad = {**endpoint, "id": "x", "url": "ftp://nope"}
        assert (await client.post("/v1/partners/endpoints", json=bad)).status_code == 422

        await _ship(platform, "o-partner")  # Lai Châu to Lai Châu: GHTK
        (delivery,) = await eventually(lambda: _deliveries(platform))

        async def sent_once() -> bool:
            return len(partner.received) >= 1

        await eventually(sent_once)  # the background loop sent it once
        # The partner failed: the next try waits. Bring the clock forward instead of waiting.
        for _ in range(2):
            assert await partners.send_due(logistics, now=utc_now() + timedelta(hours=12)) == 1
        (delivery,) = await _deliveries(platform)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
        headers, event = partner.received[-1]
        assert {h["webhook-id"] for h, _ in partner.received} == {event["id"]}  # one id: the partner dedupes
        assert event["type"] == "vuonminh.logistics.ghtk_dispatch_requested.v1"
        assert event["data"]["create_order"]["order"]["id"] == event["data"]["shipment_id"]
        assert await partners.send_due(logistics, now=utc_now() + timedelta(days=2)) == 0  # delivered: done

        log = (await client.get("/v1/partners/deliveries")).json()
        assert [(d["status"], d["attempts"]) for d in log] == [("delivered", 3)]
        ghn = auth_headers(Role.carrier, carrier="ghn")
        assert (await client.get("/v1/partners/deliveries", headers=ghn)).json() == []


async def test_a_staged_delivery_is_sent_after_a_restart_and_given_up_after_its_attempts(tmp_path):
    partner = Partner(failures=1000)
    async with embedded_client(tmp_path) as (client, platform):
        platform.service("logistics").state["partner_http_transport"] = httpx.MockTransport(
            lambda r: httpx.Response(503)
        )
        made = await client.post(
            "/v1/partners/endpoints", json={"id": "p", "carrier": "ghtk", "url": "http://partner.example/in"}
        )
        partner.secret = made.json()["signing_secret"]
        await _ship(platform, "o-restart")
        await eventually(lambda: _deliveries(platform))
    # The process stopped with the delivery still pending; the next one sends it.
    async with embedded_client(tmp_path) as (client, platform):
        logistics = platform.service("logistics")
        logistics.state["partner_http_transport"] = httpx.MockTransport(partner.handler)
        later = utc_now()
        for _ in range(partners.MAX_ATTEMPTS + 2):
            later += timedelta(days=1)
            await partners.send_due(logistics, now=later)
        (delivery,) = await _deliveries(platform)
        assert partner.received  # sent after the restart, signed with the stored secret
        assert (delivery.status, delivery.attempts) == ("failed", partners.MAX_ATTEMPTS)
        assert delivery.last_status_code == 500 and "try later" in delivery.last_error
