"""One signed order from webhook to stored order to shipment to KPI, on Kafka and PostgreSQL."""

import httpx
import pytest

from vuonminh.shared.timeutil import utc_now, vietnam_day
from vuonminh.wiring.testing import encode, eventually, operator_headers, order_body, signed_headers

pytestmark = pytest.mark.integration


async def test_an_order_flows_through_all_four_services(start_stack, seed_catalog_via, count_rows):
    stack = await start_stack()
    await seed_catalog_via(stack["catalog"])

    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["orders"].url) as orders:
        body = encode(
            order_body(
                "TT-FLOW-1",
                items=[
                    {"sku": "MIEN-DONG-500", "quantity": 4, "unit_price_vnd": 65000},
                    {"sku": "CHE-200", "quantity": 2, "unit_price_vnd": 180000},
                ],
            )
        )
        accepted = await orders.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))
        again = await orders.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))
        assert accepted.status_code == 202 and again.status_code == 202

        async def stored():
            found = (await orders.get("/v1/orders", params={"shop_id": "shop-1", "order_id": "TT-FLOW-1"})).json()
            return found or None

        order = (await eventually(stored, timeout_s=30))[0]
    assert order["status"] in ("placed", "confirmed")  # confirmed once catalog reserved the stock
    assert order["total_vnd"] == 4 * 65000 + 2 * 180000

    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["logistics"].url) as logistics:

        async def shipments():
            found = (await logistics.get("/v1/shipments", params={"order_id": order["id"]})).json()
            return found if len(found) == 2 else None

        by_seller = {s["seller_id"]: s for s in await eventually(shipments, timeout_s=30)}
    # One shipment per seller; Lai Châu and Thái Nguyên sellers ship to Hà Nội, so Viettel Post.
    assert by_seller["co-ba-hong"]["weight_g"] == 2000 and by_seller["co-ba-hong"]["cod_amount_vnd"] == 260000
    assert by_seller["htx-che"]["origin_ward_code"] == "05503"
    assert {s["carrier"] for s in by_seller.values()} == {"viettel_post"}

    # Sales count on the day the order was placed, shipments on the day they were dispatched.
    today = vietnam_day(utc_now()).isoformat()
    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["analytics"].url) as analytics:

        async def kpis():
            found = (await analytics.get("/v1/kpis/communes/03390", params={"from": "2026-11-20", "to": today})).json()
            return found if found["shipments"] == 1 else None

        binh_lu = await eventually(kpis, timeout_s=30)
    assert (binh_lu["orders"], binh_lu["gmv_vnd"], binh_lu["kg_sold"], binh_lu["active_sellers"]) == (1, 260000, 2.0, 1)
    assert binh_lu["ward_name"] == "Xã Bình Lư"
    # The duplicate delivery changed nothing anywhere.
    assert await count_rows("SELECT count(*) FROM orders.orders") == 1
    assert await count_rows("SELECT count(*) FROM logistics.shipments") == 2
    assert await count_rows("SELECT count(*) FROM analytics.seller_order_facts") == 2
