"""The marketplace simulator drives orders on Kafka and PostgreSQL: TikTok Shop webhooks with noise,
details fetched from the simulator's API, orders placed and cancelled, a replayed webhook changing nothing."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn

from vuonminh.wiring.marketplace_simulator import MarketplaceSimulator, Noise
from vuonminh.wiring.testing import eventually, free_port, operator_headers

pytestmark = pytest.mark.integration

SKUS = [("MIEN-DONG-500", "1729001", 65000), ("CHE-200", "1729002", 120000)]


async def test_a_noisy_tiktok_livestream_on_kafka_and_postgres(start_service, seed_catalog_via, count_rows):
    sim = MarketplaceSimulator(noise=Noise(repeat_rate=0.3, out_of_order_rate=0.2, cancel_rate=0.2), seed=21)
    api_port = free_port()
    server = uvicorn.Server(uvicorn.Config(sim.app(), host="127.0.0.1", port=api_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        platform_env = {
            "TIKTOK_SHOP_APP_KEY": sim.app_key,
            "TIKTOK_SHOP_APP_SECRET": sim.app_secret,
            "TIKTOK_SHOP_API_BASE": f"http://127.0.0.1:{api_port}",
            "VUONMINH_PLATFORM_API_BACKOFF_S": "0.05",
        }
        catalog = start_service("catalog")
        orders = start_service("orders", extra_env=platform_env)
        catalog, orders = await asyncio.gather(catalog, orders)
        await asyncio.gather(catalog.wait_ready(), orders.wait_ready())
        await seed_catalog_via(catalog)

        async with httpx.AsyncClient(headers=operator_headers(), base_url=orders.url) as client:
            connected = await client.post(
                "/v1/shops",
                json={
                    "channel": "tiktok_shop",
                    "shop_id": sim.shop_id,
                    "seller_id": "co-ba-hong",
                    "access_token": sim.access_token,
                    "refresh_token": "r",
                    "access_expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                    "shop_cipher": sim.shop_cipher,
                },
            )
            assert connected.status_code == 201, connected.text
            # A tampered webhook is refused and nothing of it is appended.
            order = sim.new_order([SKUS[0][:2] + (SKUS[0][2], 1)], at=int(time.time()))
            body, headers = sim.webhook(order, "to_ship", at=int(time.time()))
            tampered = await client.post(
                "/v1/webhooks/tiktok-shop", content=body.replace(b"1", b"2", 1), headers=headers
            )
            assert tampered.status_code == 401 and tampered.content == b""
            del sim.orders[order.order_id]

            start = int(time.time()) - 900
            script = sim.script(orders=25, minutes=10, skus=SKUS, start=start)
            await sim.play(client, "/v1/webhooks/tiktok-shop", script, start=start, speed=None)
            cancelled = {order_id for _o, order_id, status in script if status == "cancelled"}

            async def all_decided() -> bool:
                placed = await count_rows(
                    "SELECT count(*) FROM orders.orders WHERE channel = 'tiktok_shop' AND status = 'placed'"
                )
                gone = await count_rows(
                    "SELECT count(*) FROM orders.orders WHERE channel = 'tiktok_shop' AND status = 'cancelled'"
                )
                return placed == 25 - len(cancelled) and gone == len(cancelled)

            await eventually(all_decided, timeout_s=90)
            # Replaying every webhook again changes nothing (same identities, same bytes).
            await sim.play(client, "/v1/webhooks/tiktok-shop", script, start=start, speed=None)
            marker = sim.new_order([("CHE-200", "1729002", 120000, 1)], at=int(time.time()))
            body, headers = sim.webhook(marker, "to_ship", at=int(time.time()))
            assert (await client.post("/v1/webhooks/tiktok-shop", content=body, headers=headers)).status_code == 200

            async def marker_placed() -> bool:
                return (
                    await count_rows(
                        "SELECT count(*) FROM orders.orders WHERE external_order_id = $1 AND status = 'placed'",
                        marker.order_id,
                    )
                    == 1
                )

            await eventually(marker_placed, timeout_s=60)
        assert await count_rows("SELECT count(*) FROM orders.orders WHERE channel = 'tiktok_shop'") == 26
        placed_events = await count_rows(
            "SELECT count(*) FROM orders.outbox WHERE event_type = 'vuonminh.orders.order_placed.v2'"
        )
        # A cancelled order was placed first when its detail was fetched before the cancellation.
        assert 26 - len(cancelled) <= placed_events <= 26
        assert sim.api_calls < sim.webhooks_sent  # batched
    finally:
        server.should_exit = True
        await serving
