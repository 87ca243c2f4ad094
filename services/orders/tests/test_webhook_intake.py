"""Intake through the API: the direct channel's Standard Webhooks (webhook-id dedupes) and the
platforms' bad input (the status each expects, nothing appended, counted by channel and reason)."""

import json
import time

import pytest
from prometheus_client import REGISTRY

from vuonminh.orders.channels import direct
from vuonminh.orders.settings import PlatformSettings
from vuonminh.shared.events import Topic
from vuonminh.wiring.marketplace_simulator import MarketplaceSimulator
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, register_shop, seed_catalog


def _rejected(channel: str, reason: str) -> float:
    return REGISTRY.get_sample_value("vuonminh_webhooks_rejected_total", {"channel": channel, "reason": reason}) or 0.0


async def _log_count(platform, topic: str) -> int:
    consumer = platform.transport.consumer(group_id=f"test-count-{time.monotonic_ns()}", topics=[topic])
    await consumer.start()
    try:
        records = await consumer.poll(max_records=10_000, timeout_s=0.5)
        return len(records)
    finally:
        await consumer.stop()


async def test_a_standard_webhooks_order_is_taken_once_per_webhook_id(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        secret = await register_shop(platform, "shop-sw")
        body = encode(order_body("SW-1", shop_id="shop-sw"))
        now = int(time.time())
        first = await client.post(
            "/v1/webhooks/direct", content=body, headers=direct.sign(body, secret=secret, msg_id="msg_A", timestamp=now)
        )
        # A retry: same webhook-id, a later timestamp, the body re-serialised by the sender.
        again_body = json.dumps(json.loads(body), indent=1).encode()
        again = await client.post(
            "/v1/webhooks/direct",
            content=again_body,
            headers=direct.sign(again_body, secret=secret, msg_id="msg_A", timestamp=now + 5),
        )
        assert first.status_code == again.status_code == 202
        assert first.json()["event_id"] == again.json()["event_id"]  # the webhook-id is the dedupe key
        wrong = await client.post(
            "/v1/webhooks/direct",
            content=body,
            headers=direct.sign(body, secret="whsec_" + "A" * 44, msg_id="m", timestamp=now),
        )
        assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
        before = _rejected("direct", "schema")
        garbage = b'{"shop_id": "shop-sw", "order_id": 5}'
        refused = await client.post(
            "/v1/webhooks/direct",
            content=garbage,
            headers=direct.sign(garbage, secret=secret, msg_id="m2", timestamp=now),
        )
        assert refused.status_code == 422 and _rejected("direct", "schema") == before + 1
        # Without a shop_id (not even JSON) there is no secret to check the signature with: 401.
        nothing = b"not json"
        unnamed = await client.post(
            "/v1/webhooks/direct",
            content=nothing,
            headers=direct.sign(nothing, secret=secret, msg_id="m3", timestamp=now),
        )
        assert unnamed.status_code == 401

        async def placed():
            found = (await client.get("/v1/orders", params={"order_id": "SW-1"})).json()
            return found if found and found[0]["status"] in ("placed", "confirmed") else None

        assert len(await eventually(placed)) == 1


@pytest.mark.parametrize(
    ("platform_name", "signature_status", "body_status"),
    [("tiktok_shop", 401, 401), ("shopee", 401, 400), ("lazada", 401, 400)],
)
async def test_bad_platform_webhooks_get_the_platforms_status_and_nothing_is_appended(
    tmp_path, platform_name, signature_status, body_status
):
    sim = MarketplaceSimulator(platform=platform_name)
    slug = platform_name.replace("_", "-")
    async with embedded_client(tmp_path) as (client, platform):
        platform.service("orders").state["platform_settings"] = PlatformSettings(
            tiktok_shop_app_key=sim.app_key,
            tiktok_shop_app_secret=sim.app_secret,
            shopee_partner_id=sim.partner_id,
            shopee_partner_key=sim.app_secret,
            shopee_callback_url=sim.callback_url,
            lazada_app_key=sim.app_key,
            lazada_app_secret=sim.app_secret,
        )
        order = sim.new_order([("CHE-200", "1729002", 120000, 1)], at=int(time.time()))
        body, headers = sim.webhook(order, "to_ship", at=int(time.time()))
        not_json = b"{oops"
        schema = json.dumps({"unexpected": True}).encode()
        before = {reason: _rejected(platform_name, reason) for reason in ("signature", "not_json", "schema")}

        unsigned = await client.post(f"/v1/webhooks/{slug}", content=body)
        tampered = await client.post(f"/v1/webhooks/{slug}", content=body.replace(b"1", b"3", 1), headers=headers)
        bad_json = await client.post(
            f"/v1/webhooks/{slug}", content=not_json, headers={"Authorization": sim._signature(not_json)}
        )
        bad_shape = await client.post(
            f"/v1/webhooks/{slug}", content=schema, headers={"Authorization": sim._signature(schema)}
        )
        oversized = await client.post(f"/v1/webhooks/{slug}", content=b"x" * (300 * 1024), headers=headers)

        assert [unsigned.status_code, tampered.status_code] == [signature_status, signature_status]
        assert [bad_json.status_code, bad_shape.status_code, oversized.status_code] == [body_status, body_status, 413]
        assert unsigned.content == tampered.content == bad_json.content == b""  # what the platforms expect
        assert _rejected(platform_name, "signature") == before["signature"] + 2
        assert _rejected(platform_name, "not_json") == before["not_json"] + 1
        assert _rejected(platform_name, "schema") == before["schema"] + 1
        assert await _log_count(platform, Topic.ORDER_NOTIFICATIONS) == 0

        good = await client.post(f"/v1/webhooks/{slug}", content=body, headers=headers)
        assert good.status_code == 200 and good.content == b""
        assert await _log_count(platform, Topic.ORDER_NOTIFICATIONS) == 1
