"""A marketplace order's life on the embedded platform, fed with the events other services send:
stale statuses kept in the history, the saga's stock step, logistics' shipments, cancellation, and
platform SKUs parked until catalog publishes their listing."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from vuonminh.shared.events import (
    BuyerAddressV2,
    BuyerV2,
    Envelope,
    ListingPublished,
    OrderReceivedV2,
    PlatformItem,
    ShipmentStatusChanged,
)
from vuonminh.wiring.testing import embedded_client, eventually, seed_catalog

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
BUYER = BuyerV2(
    name="Nguyễn Thu Hà",
    phone="(+84)91*****678",
    address=BuyerAddressV2(
        province_code="12", ward_code="03390", legacy_district="Huyện Tam Đường", line="Bản Bình Lư"
    ),
)


def _received(order_id: str, status: str, platform_status: str, at: datetime, items=None) -> OrderReceivedV2:
    return OrderReceivedV2(
        channel="tiktok_shop",
        shop_id="7495001",
        order_id=order_id,
        placed_at=T0,
        buyer=BUYER,
        items=items
        or (PlatformItem(sku="MIEN-DONG-500", platform_sku_id="1729001", quantity=2, unit_price_vnd=65000),),
        payment_method="cod",
        total_vnd=130000,
        status=status,
        platform_status=platform_status,
        status_at=at,
        received_at=at,
    )


async def _send(platform, *events: OrderReceivedV2) -> None:
    await platform.service("orders").producer.send([Envelope.new(e, source="/test").to_record() for e in events])


async def _order(client, order_id: str) -> dict | None:
    found = (await client.get("/v1/orders", params={"channel": "tiktok_shop", "order_id": order_id})).json()
    if not found:
        return None
    return (await client.get(f"/v1/orders/{found[0]['id']}")).json()


async def _published(platform, event_type: str) -> int:
    async with platform.service("orders").sessions() as session:
        query = text("SELECT count(*) FROM outbox WHERE event_type = :t")
        return (await session.execute(query, {"t": event_type})).scalar_one()


async def test_a_marketplace_orders_life(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)

        # Shipped, then a late "awaiting shipment" older than it: kept in the history, the order stays shipped.
        await _send(platform, _received("A", "to_ship", "AWAITING_SHIPMENT", T0))
        # catalog reserves the stock of a placed order at once; the order is confirmed before it ships.
        await eventually(lambda: _status(client, "A", "confirmed"))
        await _send(platform, _received("A", "shipped", "IN_TRANSIT", T0 + timedelta(hours=2)))
        await eventually(lambda: _status(client, "A", "shipped"))
        await _send(platform, _received("A", "to_ship", "AWAITING_SHIPMENT", T0 + timedelta(hours=1)))

        async def stale_kept():
            order = await _order(client, "A")
            return order if any(not e["applied"] for e in order["status_history"]) else None

        order = await eventually(stale_kept)
        assert order["status"] == "shipped" and order["platform_status"] == "IN_TRANSIT"
        assert [(e["status"], e["applied"]) for e in order["status_history"]] == [
            ("placed", True),
            ("confirmed", True),
            ("shipped", True),
            ("shipped", False),
        ]
        assert await _published(platform, "vuonminh.orders.order_status_changed.v1") == 1

        # The saga: catalog reserves, orders confirms; logistics delivers.
        await _send(platform, _received("B", "to_ship", "AWAITING_SHIPMENT", T0))
        b = await eventually(lambda: _status(client, "B", "confirmed"))
        assert [entry["source"] for entry in b["status_history"]][-1] == "catalog"
        async with platform.service("logistics").unit_of_work() as uow:
            uow.publish(
                ShipmentStatusChanged(
                    shipment_id="s-b",
                    order_id=b["id"],
                    seller_id="co-ba-hong",
                    carrier="ghtk",
                    status="delivered",
                    previous_status="out_for_delivery",
                    occurred_at=T0 + timedelta(days=2),
                    recorded_at=T0 + timedelta(days=2),
                )
            )
        await eventually(lambda: _status(client, "B", "delivered"))
        assert await _published(platform, "vuonminh.orders.order_confirmed.v1") == 2  # A and B, once each

        # Cancelled before dispatch: order_cancelled, for catalog and logistics.
        await _send(platform, _received("C", "to_ship", "AWAITING_SHIPMENT", T0))
        await eventually(lambda: _status(client, "C", "placed", "confirmed"))
        await _send(platform, _received("C", "cancelled", "CANCELLED", T0 + timedelta(minutes=5)))
        await eventually(lambda: _status(client, "C", "cancelled"))
        assert await _published(platform, "vuonminh.orders.order_cancelled.v1") == 1

        # A platform SKU catalog has not listed yet parks the order, naming it; its listing resumes it.
        unknown = (PlatformItem(sku="TTS-CHE-HOP", platform_sku_id="88001", quantity=1, unit_price_vnd=180000),)
        await _send(platform, _received("D", "to_ship", "AWAITING_SHIPMENT", T0, items=unknown))
        parked = await eventually(lambda: _status(client, "D", "awaiting_catalog"))
        assert parked["awaiting_catalog"]["skus"] == ["TTS-CHE-HOP"]
        async with platform.service("catalog").unit_of_work() as uow:
            uow.publish(
                ListingPublished(
                    sku="CHE-200",
                    seller_id="htx-che",
                    channel="tiktok_shop",
                    platform_product_id="P88",
                    platform_sku="88001",
                    seller_sku="TTS-CHE-HOP",
                    published_at=T0,
                )
            )
        placed = await eventually(lambda: _status(client, "D", "placed", "confirmed"))
        assert [(line["sku"], line["seller_id"]) for line in placed["lines"]] == [("CHE-200", "htx-che")]


async def _status(client, order_id: str, *statuses: str) -> dict | None:
    order = await _order(client, order_id)
    return order if order and order["status"] in statuses else None
