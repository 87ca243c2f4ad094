"""An order that arrives before its product or seller waits for the catalog, on the embedded platform."""

from datetime import timedelta

import httpx

from vuonminh.orders.handlers import sweep_once
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import (
    embedded_client,
    encode,
    eventually,
    metric_value,
    order_body,
    seed_catalog,
    signed_headers,
)

NEW_PRODUCT = {
    "sku": "MAT-ONG-1L",
    "seller_id": "co-ba-hong",
    "name": "Mật ong bạc hà 1 l",
    "unit_weight_g": 1400,
    "initial_stock": 10,
}
NEW_SELLER = {
    "seller_id": "htx-sin-ho",
    "name": "HTX Sìn Hồ",
    "kind": "cooperative",
    "province_code": "12",
    "ward_code": "03478",
}
# The sweep's own pass never comes during these tests; they call sweep_once themselves.
QUIET_SWEEP = {"catalog_sweep_s": 3600.0, "catalog_wait_s": 600.0}


async def _post(client: httpx.AsyncClient, body: dict) -> None:
    raw = encode(body)
    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
    assert response.status_code == 202, response.text


async def _order(client: httpx.AsyncClient, order_id: str, status: str) -> dict | None:
    # "placed" also matches "confirmed": catalog reserves the stock of a placed order at once.
    wanted = ("placed", "confirmed") if status == "placed" else (status,)
    found = (await client.get("/v1/orders", params={"shop_id": "shop-1", "order_id": order_id})).json()
    return found[0] if found and found[0]["status"] in wanted else None


async def _shipments(client: httpx.AsyncClient, order_id: str) -> list:
    return (await client.get("/v1/shipments", params={"order_id": order_id})).json()


async def test_an_order_first_and_its_product_second_is_placed_and_shipped(tmp_path):
    async with embedded_client(tmp_path, **QUIET_SWEEP) as (client, platform):
        await seed_catalog(client, platform)
        await _post(
            client,
            order_body(
                "RACE-1",
                items=[
                    {"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000},
                    {"sku": "MAT-ONG-1L", "quantity": 1, "unit_price_vnd": 250000},
                ],
            ),
        )
        parked = await eventually(lambda: _order(client, "RACE-1", "awaiting_catalog"))
        assert parked["awaiting_catalog"]["skus"] == ["MAT-ONG-1L"]
        assert await _shipments(client, parked["id"]) == []

        assert (await client.post("/v1/products", json=NEW_PRODUCT)).status_code == 201

        placed = await eventually(lambda: _order(client, "RACE-1", "placed"))
        assert placed["id"] == parked["id"]
        assert placed["awaiting_catalog"] is None
        assert placed["total_vnd"] == 2 * 65000 + 250000 and placed["total_weight_g"] == 2 * 500 + 1400
        # Its OrderPlaced went through the outbox: catalog reserved, orders confirmed, logistics shipped.
        shipments = await eventually(lambda: _shipments(client, placed["id"]))
        assert [s["weight_g"] for s in shipments] == [2400]


async def test_an_order_waits_for_an_unknown_seller_then_for_nothing(tmp_path):
    async with embedded_client(tmp_path, **QUIET_SWEEP) as (client, platform):
        await seed_catalog(client, platform)
        orders = platform.service("orders")
        # catalog refuses a product of an unknown seller, so the product's event reaches orders
        # first only through a race; play it by handing orders the two events in that order.
        from vuonminh.orders.handlers import on_product_listed, on_seller_registered
        from vuonminh.shared.events import Envelope, ProductListed, SellerRegistered

        await _post(client, order_body("RACE-2", items=[{"sku": "GAO-5KG", "quantity": 1, "unit_price_vnd": 1}]))
        await eventually(lambda: _order(client, "RACE-2", "awaiting_catalog"))
        product = ProductListed(sku="GAO-5KG", seller_id="htx-sin-ho", name="Gạo Séng Cù 5 kg", unit_weight_g=5000)
        async with orders.unit_of_work() as uow:
            await on_product_listed(uow, Envelope.new(product, source="/test"))
        waiting = await _order(client, "RACE-2", "awaiting_catalog")
        assert waiting["awaiting_catalog"] == {
            "since": waiting["awaiting_catalog"]["since"],
            "skus": [],
            "seller_ids": ["htx-sin-ho"],
        }

        seller = SellerRegistered(**NEW_SELLER)
        async with orders.unit_of_work() as uow:
            await on_seller_registered(uow, Envelope.new(seller, source="/test"))

        placed = await _order(client, "RACE-2", "placed")
        assert placed["lines"][0]["seller_ward_code"] == "03478"


async def test_a_parked_order_is_rejected_with_reasons_once_the_wait_is_over(tmp_path):
    async with embedded_client(tmp_path, **QUIET_SWEEP) as (client, platform):
        await seed_catalog(client, platform)
        await _post(client, order_body("RACE-3", items=[{"sku": "NEVER-LISTED", "quantity": 1, "unit_price_vnd": 1}]))
        parked = await eventually(lambda: _order(client, "RACE-3", "awaiting_catalog"))
        orders = platform.service("orders")

        assert await sweep_once(orders) == {"placed": 0, "rejected": 0, "waiting": 1}  # not yet
        later = utc_now() + timedelta(seconds=601)
        assert await sweep_once(orders, now=later) == {"placed": 0, "rejected": 1, "waiting": 0}

        rejected = await _order(client, "RACE-3", "rejected")
        assert rejected["id"] == parked["id"] and rejected["awaiting_catalog"] is None
        reason = rejected["rejection_reasons"][0]
        assert (reason["code"], reason["sku"]) == ("unknown_sku", "NEVER-LISTED")
        assert "after waiting 601 s for the catalog" in reason["message"]


async def test_the_background_sweep_rejects_after_the_configured_wait(tmp_path):
    async with embedded_client(tmp_path, catalog_wait_s=0.3, catalog_sweep_s=0.1) as (client, platform):
        await seed_catalog(client, platform)
        await _post(client, order_body("RACE-4", items=[{"sku": "NEVER-LISTED", "quantity": 1, "unit_price_vnd": 1}]))

        rejected = await eventually(lambda: _order(client, "RACE-4", "rejected"))

        assert rejected["rejection_reasons"][0]["code"] == "unknown_sku"

        async def none_waiting() -> bool:  # the gauge is set at the end of the sweep's pass
            text = (await client.get("/metrics")).text
            return "vuonminh_orders_awaiting_catalog " in text and not metric_value(
                text, "vuonminh_orders_awaiting_catalog"
            )

        await eventually(none_waiting)


async def test_a_rejected_order_is_replaced_by_the_shops_corrected_webhook(tmp_path):
    async with embedded_client(tmp_path, **QUIET_SWEEP) as (client, platform):
        await seed_catalog(client, platform)
        await _post(client, order_body("RACE-5", items=[{"sku": "MIEN-DONG-50", "quantity": 3, "unit_price_vnd": 1}]))
        await eventually(lambda: _order(client, "RACE-5", "awaiting_catalog"))
        await sweep_once(platform.service("orders"), now=utc_now() + timedelta(seconds=601))
        rejected = await _order(client, "RACE-5", "rejected")

        # The shop fixes its typo and sends the order again.
        await _post(
            client, order_body("RACE-5", items=[{"sku": "MIEN-DONG-500", "quantity": 3, "unit_price_vnd": 65000}])
        )

        placed = await eventually(lambda: _order(client, "RACE-5", "placed"))
        assert placed["id"] == rejected["id"]
        assert placed["rejection_reasons"] == [] and placed["total_vnd"] == 3 * 65000
        assert len(await eventually(lambda: _shipments(client, placed["id"]))) == 1


async def test_a_parked_order_is_replaced_by_a_corrected_version(tmp_path):
    async with embedded_client(tmp_path, **QUIET_SWEEP) as (client, platform):
        await seed_catalog(client, platform)
        await _post(client, order_body("RACE-6", items=[{"sku": "CHE-20", "quantity": 1, "unit_price_vnd": 1}]))
        await eventually(lambda: _order(client, "RACE-6", "awaiting_catalog"))

        await _post(client, order_body("RACE-6", items=[{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000}]))

        placed = await eventually(lambda: _order(client, "RACE-6", "placed"))
        assert [line["sku"] for line in placed["lines"]] == ["CHE-200"]
