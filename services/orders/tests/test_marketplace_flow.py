"""TikTok Shop end to end on the embedded platform: the simulator posts signed webhooks with noise,
orders fetches the details from the simulator's API, places, cancels and confirms."""

import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from vuonminh.orders import shops
from vuonminh.orders.settings import PlatformSettings
from vuonminh.shared.app import create_app
from vuonminh.shared.runtime import embedded_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.marketplace_simulator import MarketplaceSimulator, Noise
from vuonminh.wiring.testing import TEST_SECRETS_KEY, TEST_SETTINGS, eventually, operator_headers, seed_catalog

SKUS = [("MIEN-DONG-500", "1729001", 65000), ("CHE-200", "1729002", 120000)]


@asynccontextmanager
async def platform_with_simulator(
    tmp_path, sim: MarketplaceSimulator, *, expires_in: timedelta = timedelta(days=7), **fetcher_settings
):
    platform = embedded_platform(Settings(**TEST_SETTINGS), tmp_path)
    orders = platform.service("orders")
    orders.state["platform_settings"] = PlatformSettings(
        tiktok_shop_app_key=sim.app_key,
        tiktok_shop_app_secret=sim.app_secret,
        tiktok_shop_api_base="http://platform.sim",
        tiktok_shop_auth_base="http://platform.sim",
        lazada_auth_base="http://platform.sim/rest",
        token_check_s=0.2,
        shopee_partner_id=sim.partner_id,
        shopee_partner_key=sim.app_secret,
        shopee_callback_url=sim.callback_url,
        shopee_api_base="http://platform.sim",
        lazada_app_key=sim.app_key,
        lazada_app_secret=sim.app_secret,
        lazada_api_base="http://platform.sim/rest",
        api_backoff_initial_s=0.01,
        api_backoff_max_s=0.05,
        retry_delay_s=0.2,
        **fetcher_settings,
    )
    orders.state["platform_http_transport"] = httpx.ASGITransport(app=sim.app())
    app = create_app(platform)
    async with app.router.lifespan_context(app):
        await platform.wait_connected()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://vuonminh.test", headers=operator_headers()
        ) as client:
            await seed_catalog(client, platform)
            async with orders.unit_of_work() as uow:
                await shops.connect_platform_shop(
                    uow.session,
                    shops.SecretBox(TEST_SECRETS_KEY),
                    channel=sim.platform,
                    shop_id=sim.shop_id,
                    seller_id="co-ba-hong",
                    access_token=sim.access_token,
                    refresh_token=sim.refresh_token,
                    access_expires_at=datetime.now(UTC) + expires_in,
                    shop_cipher=sim.shop_cipher,
                )
            yield client, platform


async def _statuses(platform, channel: str = "tiktok_shop") -> dict[str, str]:
    async with platform.service("orders").sessions() as session:
        query = text("SELECT external_order_id, status FROM orders WHERE channel = :channel")
        rows = (await session.execute(query, {"channel": channel})).all()
    return dict(rows)


@pytest.mark.parametrize("platform_name", ["shopee", "lazada"])
async def test_shopee_and_lazada_orders_flow_through_their_own_formats(tmp_path, platform_name):
    sim = MarketplaceSimulator(platform=platform_name, noise=Noise(repeat_rate=0.3, cancel_rate=0.25), seed=11)
    async with platform_with_simulator(tmp_path, sim) as (client, platform):
        start = int(time.time()) - 600
        script = sim.script(orders=8, minutes=5, skus=SKUS, start=start)
        await sim.play(client, f"/v1/webhooks/{platform_name}", script, start=start, speed=None)
        cancelled = {order_id for _o, order_id, status in script if status == "cancelled"}

        async def all_stored():
            statuses = await _statuses(platform, platform_name)
            return (
                statuses if len(statuses) == 8 and not {"awaiting_payment", "placed"} & set(statuses.values()) else None
            )

        statuses = await eventually(all_stored, timeout_s=60)
        assert {o for o, s in statuses.items() if s == "cancelled"} == cancelled
        assert all(s == "confirmed" for o, s in statuses.items() if o not in cancelled)
        placed = next(o for o in statuses if o not in cancelled)
        listed = (await client.get("/v1/orders", params={"shop_id": sim.shop_id, "order_id": placed})).json()
        assert listed[0]["total_vnd"] == sim.orders[placed].total
        assert listed[0]["buyer"]["address"]["ward_code"] and listed[0]["buyer_legacy_district"]


async def test_a_noisy_livestream_becomes_placed_and_cancelled_orders_fetched_in_batches(tmp_path):
    sim = MarketplaceSimulator(noise=Noise(repeat_rate=0.3, out_of_order_rate=0.2, cancel_rate=0.2), seed=3)
    async with platform_with_simulator(tmp_path, sim) as (client, platform):
        start = int(time.time()) - 600
        script = sim.script(orders=30, minutes=5, skus=SKUS, start=start)
        await sim.play(client, "/v1/webhooks/tiktok-shop", script, start=start, speed=None)

        cancelled = {order_id for _o, order_id, status in script if status == "cancelled"}
        assert cancelled and any(status == "unpaid" for *_x, status in script)  # the noise is there

        async def all_stored():
            statuses = await _statuses(platform)
            return (
                statuses
                if len(statuses) == 30 and not {"awaiting_payment", "placed"} & set(statuses.values())
                else None
            )

        statuses = await eventually(all_stored, timeout_s=60)
        assert {o for o, s in statuses.items() if s == "cancelled"} == cancelled
        assert all(s == "confirmed" for o, s in statuses.items() if o not in cancelled)
        # Batched: far fewer detail requests than notifications.
        assert sim.api_calls < sim.webhooks_sent
        async with platform.service("orders").sessions() as session:
            one = (
                await session.execute(
                    text(
                        "SELECT id, total_vnd, buyer_ward_code, buyer_legacy_district FROM orders "
                        "WHERE channel = 'tiktok_shop' AND status = 'confirmed' LIMIT 1"
                    )
                )
            ).one()
            published = dict(
                (await session.execute(text("SELECT event_type, count(*) FROM outbox GROUP BY event_type"))).all()
            )
        assert one.total_vnd > 0 and len(one.buyer_ward_code) == 5 and one.buyer_legacy_district
        assert published["vuonminh.orders.order_placed.v2"] == 30 - len(cancelled) or (
            published["vuonminh.orders.order_placed.v2"] >= 30 - len(cancelled)
        )

        # The saga's stock step: catalog reserved the stock, and its answer confirmed the order.
        response = await eventually(lambda: _confirmed(client, one.id), timeout_s=30)
        assert [entry["source"] for entry in response["status_history"]][-1] == "catalog"
        # A two-seller order is one fulfilment per seller.
        mixed = next(
            order_id
            for order_id, order in sim.orders.items()
            if len({sku for sku, *_ in order.skus}) == 2 and statuses[order_id] == "confirmed"
        )
        listed = (await client.get("/v1/orders", params={"channel": "tiktok_shop", "order_id": mixed})).json()[0]
        assert {f["seller_id"]: f["skus"] for f in listed["fulfilments"]} == {
            "co-ba-hong": ["MIEN-DONG-500"],
            "htx-che": ["CHE-200"],
        }
        assert sum(f["total_vnd"] for f in listed["fulfilments"]) == listed["total_vnd"]


async def _confirmed(client, order_id):
    response = await client.get(f"/v1/orders/{order_id}")
    body = response.json()
    return body if body["status"] == "confirmed" else None


async def test_a_throttling_and_failing_platform_is_retried_and_nothing_is_lost(tmp_path):
    # Two attempts per request: the first batch fails twice (429, then 503) and goes to the retry topic;
    # the third call is throttled again; every later call passes.
    sim = MarketplaceSimulator(noise=Noise(repeat_rate=0, out_of_order_rate=0, cancel_rate=0, fail_first=3), seed=5)
    async with platform_with_simulator(tmp_path, sim, api_attempts=2, breaker_failures=50) as (client, platform):
        start = int(time.time()) - 60
        script = sim.script(orders=12, minutes=1, skus=SKUS, start=start)
        await sim.play(client, "/v1/webhooks/tiktok-shop", script, start=start, speed=None)

        async def all_placed():
            statuses = await _statuses(platform)
            return len(statuses) == 12 and set(statuses.values()) == {"confirmed"}

        await eventually(all_placed, timeout_s=90)
        assert sim.api_refused == 3 and sim.api_calls >= 4
        main, retry = platform.service("orders").state["fetchers"]
        assert retry.fetched > 0  # the first batch went through the retry topic
        assert main.fetched + retry.fetched == 12


async def test_shops_livestreams_and_the_order_filters(tmp_path):
    sim = MarketplaceSimulator(noise=Noise(repeat_rate=0, out_of_order_rate=0, cancel_rate=0), seed=9)
    async with platform_with_simulator(tmp_path, sim) as (client, platform):
        # A marketplace shop needs its tokens; a direct shop gets a secret, once.
        refused = await client.post("/v1/shops", json={"channel": "shopee", "shop_id": "88"})
        assert refused.status_code == 422 and "access_token" in refused.json()["detail"]
        direct = await client.post(
            "/v1/shops", json={"channel": "direct", "shop_id": "shop-web", "seller_id": "htx-che"}
        )
        assert direct.status_code == 201 and direct.json()["webhook_secret"].startswith("whsec_")
        anonymous = await client.post(
            "/v1/shops", json={"channel": "direct", "shop_id": "x"}, headers={"authorization": ""}
        )
        assert anonymous.status_code == 401

        start = int(time.time()) - 3600
        live = {
            "livestream_id": "binh-lu-tet",
            "seller_id": "co-ba-hong",
            "channel": "tiktok_shop",
            "shop_id": sim.shop_id,
            "title": "Miến dong Bình Lư đón Tết",
            "starts_at": datetime.fromtimestamp(start, UTC).isoformat(),
            "ends_at": datetime.fromtimestamp(start + 1800, UTC).isoformat(),
            "featured_skus": ["MIEN-DONG-500"],
        }
        assert (await client.post("/v1/livestreams", json=live)).status_code == 201
        backwards = {**live, "ends_at": live["starts_at"]}
        assert (await client.post("/v1/livestreams", json=backwards)).status_code == 422

        # 10 orders over an hour: the first half inside the session's window.
        script = sim.script(orders=10, minutes=60, skus=SKUS, start=start)
        await sim.play(client, "/v1/webhooks/tiktok-shop", script, start=start, speed=None)
        await eventually(lambda: _count(client, {"channel": "tiktok_shop", "status": "confirmed"}, 10), timeout_s=60)

        in_live = await _all(client, {"livestream_id": "binh-lu-tet"})
        assert len(in_live) == 5
        # Cursor pagination walks every order once.
        seen = await _all(client, {"channel": "tiktok_shop"}, limit=3)
        assert len(seen) == 10 and len({o["id"] for o in seen}) == 10
        assert len(await _all(client, {"seller_id": "htx-che", "channel": "tiktok_shop"})) == sum(
            any(sku == "CHE-200" for sku, *_ in order.skus) for order in sim.orders.values()
        )
        one = next(iter(sim.orders))
        found = await _all(client, {"channel": "tiktok_shop", "order_id": one})
        assert [o["order_id"] for o in found] == [one]
        assert (await client.get("/v1/orders", params={"cursor": "nonsense"})).status_code == 422


async def _all(client, params: dict, limit: int = 100) -> list[dict]:
    found, cursor = [], None
    while True:
        response = await client.get(
            "/v1/orders", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        found += response.json()
        cursor = response.headers.get("x-next-cursor")
        if not cursor:
            return found


async def _count(client, params: dict, wanted: int) -> bool:
    return len(await _all(client, params)) == wanted


@pytest.mark.parametrize("platform_name", ["tiktok_shop", "shopee", "lazada"])
async def test_a_token_about_to_expire_is_refreshed_and_used(tmp_path, platform_name):
    sim = MarketplaceSimulator(platform=platform_name, noise=Noise(repeat_rate=0, cancel_rate=0, out_of_order_rate=0))
    async with platform_with_simulator(tmp_path, sim, expires_in=timedelta(minutes=5)) as (client, platform):
        orders = platform.service("orders")

        async def refreshed():
            async with orders.sessions() as session:
                row = (
                    await session.execute(
                        text("SELECT access_token_encrypted, access_expires_at FROM shops WHERE channel = :c"),
                        {"c": platform_name},
                    )
                ).one()
            token = shops.SecretBox(TEST_SECRETS_KEY).decrypt(row.access_token_encrypted)
            return token if token == "sim-access-token-1" else None

        await eventually(refreshed, timeout_s=30)
        assert sim.token_refreshes == 1  # once: the new expiry is beyond the margin
        sim.valid_tokens = {sim.access_token}  # the old token is now refused: orders must use the new one
        start = int(time.time()) - 60
        script = sim.script(orders=3, minutes=1, skus=SKUS, start=start)
        await sim.play(client, f"/v1/webhooks/{platform_name.replace('_', '-')}", script, start=start, speed=None)

        async def placed():
            return (
                set((await _statuses(platform, platform_name)).values()) == {"confirmed"}
                and len(await _statuses(platform, platform_name)) == 3
            )

        await eventually(placed, timeout_s=60)


async def test_lazada_items_come_for_a_whole_batch_in_one_call(tmp_path):
    sim = MarketplaceSimulator(
        platform="lazada", noise=Noise(repeat_rate=0, out_of_order_rate=0, cancel_rate=0), seed=4
    )
    async with platform_with_simulator(tmp_path, sim) as (client, platform):
        start = int(time.time()) - 60
        script = sim.script(orders=12, minutes=1, skus=SKUS, start=start)
        await sim.play(client, "/v1/webhooks/lazada", script, start=start, speed=None)

        async def all_confirmed():
            statuses = await _statuses(platform, "lazada")
            return len(statuses) == 12 and set(statuses.values()) == {"confirmed"}

        await eventually(all_confirmed, timeout_s=60)
        main, retry = platform.service("orders").state["fetchers"]
        assert main.fetched + retry.fetched == 12
        # /order/get once per order, /orders/items/get once per batch: fewer than two calls an order.
        assert 12 < sim.api_calls < 2 * 12
        listed = (
            await client.get("/v1/orders", params={"channel": "lazada", "order_id": next(iter(sim.orders))})
        ).json()
        assert listed[0]["lines"] and all(line["quantity"] >= 1 for line in listed[0]["lines"])
