"""Whatever intake acknowledges fits every later event and column: the largest order goes end to end."""

import pytest

from vuonminh.shared.events.types import MAX_GRAMS, MAX_ORDER_ITEMS, MAX_QUANTITY, MAX_VND
from vuonminh.shared.timeutil import utc_now, vietnam_day
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

# 200 lines of 10,000 sachets of 5 g: the order is at the money and the weight limits at once.
SACHET = {"sku": "CHE-GOI-5G", "seller_id": "co-ba-hong", "name": "Chè gói 5 g", "unit_weight_g": 5}
# Stock for exactly one largest order: catalog reserves it before logistics ships.
SACHET_STOCK = MAX_ORDER_ITEMS * MAX_QUANTITY


def largest_order(order_id: str) -> dict:
    unit_price = MAX_VND // (MAX_ORDER_ITEMS * MAX_QUANTITY)
    item = {"sku": SACHET["sku"], "quantity": MAX_QUANTITY, "unit_price_vnd": unit_price}
    return order_body(order_id, items=[item] * MAX_ORDER_ITEMS)


@pytest.fixture
async def client(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        yield client


@pytest.mark.parametrize(
    ("items", "loc", "fragment"),
    [
        # 2,001 bags at 5,000,001 VND each: the line is over 10^10 VND.
        (
            [{"sku": "KHOAI-SAM-5KG", "quantity": 2001, "unit_price_vnd": 5_000_001}],
            ["items", 0, "unit_price_vnd"],
            "line total",
        ),
        (
            [
                {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
                {"sku": "MIEN-DONG-500", "quantity": MAX_QUANTITY, "unit_price_vnd": MAX_VND},
            ],
            ["items", 1, "unit_price_vnd"],
            "exceeds 10,000,000,000 VND",
        ),
        ([{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": MAX_VND // 2 + 1}] * 2, ["items"], "order total"),
        ([{"sku": "CHE-200", "quantity": MAX_QUANTITY + 1, "unit_price_vnd": 1}], ["items", 0, "quantity"], "10000"),
        ([{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": MAX_VND + 1}], ["items", 0, "unit_price_vnd"], ""),
        ([{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 1}] * (MAX_ORDER_ITEMS + 1), ["items"], "200"),
    ],
)
async def test_amounts_over_the_limits_get_422_naming_the_field(client, items, loc, fragment):
    raw = encode(order_body("LIM-1", items=items))

    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))

    assert response.status_code == 422
    first = response.json()["detail"][0]
    assert first["loc"] == loc
    assert fragment in first["msg"]


async def test_the_largest_acceptable_order_is_stored_counted_and_flagged_for_a_person(client):
    assert (await client.post("/v1/products", json={**SACHET, "initial_stock": SACHET_STOCK})).status_code == 201
    # orders learns the product asynchronously; an order arriving first would wait for it anyway.
    raw = encode(largest_order("LIM-MAX"))

    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
    assert response.status_code == 202

    async def placed():
        found = (await client.get("/v1/orders", params={"shop_id": "shop-1", "order_id": "LIM-MAX"})).json()
        return found[0] if found and found[0]["status"] == "confirmed" else None

    order = await eventually(placed)
    assert order["total_vnd"] == MAX_VND
    assert order["total_weight_g"] == MAX_GRAMS
    assert len(order["lines"]) == MAX_ORDER_ITEMS

    async def shipment():
        found = (await client.get("/v1/shipments", params={"order_id": order["id"]})).json()
        return found[0] if found else None

    # Ten tonnes are no parcel: no carrier takes it, and a person is asked to, with the reasons.
    flagged = await eventually(shipment)
    assert flagged["weight_g"] == MAX_GRAMS and flagged["cod_amount_vnd"] == MAX_VND
    assert flagged["status"] == "needs_attention" and "no carrier can take it" in flagged["choice"]["why"]

    today = vietnam_day(utc_now()).isoformat()

    async def counted():
        kpis = (await client.get("/v1/kpis/communes/03390", params={"from": "2026-11-20", "to": today})).json()
        return kpis if kpis["orders"] == 1 else None

    kpis = await eventually(counted)
    assert (kpis["orders"], kpis["gmv_vnd"], kpis["kg_sold"]) == (1, MAX_VND, MAX_GRAMS / 1000)
    assert kpis["shipments"] == 0  # nothing was handed to a carrier


async def test_an_order_over_the_weight_limit_is_rejected_with_its_reason_not_dead_lettered(client):
    # 2,001 bags of 5 kg, well within the money limits: 202, then rejected, 10,005 kg being over 10 t.
    raw = encode(order_body("LIM-HEAVY", items=[{"sku": "KHOAI-SAM-5KG", "quantity": 2001, "unit_price_vnd": 175000}]))
    assert (await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))).status_code == 202

    async def rejected():
        found = (await client.get("/v1/orders", params={"order_id": "LIM-HEAVY"})).json()
        return found[0] if found and found[0]["status"] == "rejected" else None

    reason = (await eventually(rejected))["rejection_reasons"][0]
    assert (reason["code"], reason["sku"]) == ("over_limit", "KHOAI-SAM-5KG")
    assert "10,005,000 g" in reason["message"]
