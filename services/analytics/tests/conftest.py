"""A constructed event history of two provinces' communes, and analytics running alone on it.

The history is fed as records on the local log, so the real consumer (inbox, batches, handlers)
applies it. Its figures are counted by hand in the tests that read them (see test_projections.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from vuonminh.analytics.service import SERVICE
from vuonminh.shared import db
from vuonminh.shared.app import create_app
from vuonminh.shared.events import (
    Envelope,
    EventPayload,
    ListingPublished,
    LivestreamScheduled,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderRejectedV2,
    ProductListed,
    SellerRegistered,
    ShipmentDispatched,
    ShipmentStatusChanged,
)
from vuonminh.shared.runtime import Platform, ServiceRuntime
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.wiring.testing import TEST_SETTINGS, eventually, operator_headers

BUYER = {
    "name": "Nguyễn Thu Hà",
    "phone": "0912345678",
    "address": {"province_code": "01", "ward_code": "00004", "line": "12 Phan Đình Phùng"},
}
BINH_LU, SIN_HO, TAN_CUONG = "03390", "03478", "05503"
SELLERS = {
    "s-hong": ("Miến dong Cô Ba Hồng", "aggregator", "12", BINH_LU),
    "s-mai": ("Hộ Lò Thị Mai", "household", "12", BINH_LU),
    "s-chu": ("Hộ Tẩn A Chu", "household", "12", BINH_LU),
    "s-say": ("Hộ Vàng Thị Sáy", "household", "12", SIN_HO),
    "s-che": ("HTX Chè Tân Cương", "cooperative", "19", TAN_CUONG),
}
# sku: (seller, name, unit grams, stars, certificate expires on)
PRODUCTS = {
    "MIEN-500": ("s-hong", "Miến dong 500 g", 500, 3, date(2028, 1, 1)),
    "KHOAI-5KG": ("s-say", "Khoai sâm đất 5 kg", 5000, None, None),
    "DAO-CAY": ("s-mai", "Cây hoa đào", 3000, 4, date(2026, 6, 30)),  # expired
    "MAT-ONG": ("s-chu", "Mật ong bạc hà 1 kg", 1000, 3, None),
    "CHE-200": ("s-che", "Chè Tân Cương 200 g", 250, 4, date(2027, 5, 1)),
}
PRICES = {"MIEN-500": 65000, "KHOAI-5KG": 175000, "DAO-CAY": 150000, "MAT-ONG": 100000, "CHE-200": 180000}
LIVE_STARTS = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)  # 13:00 in Vietnam


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2026 given in Vietnam time, as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=7)


class History:
    """Envelopes with stable ids, in the order a test publishes them."""

    def __init__(self, prefix: str = "e") -> None:
        self.envelopes: list[Envelope] = []
        self._prefix = prefix
        self._ids = itertools.count(1)

    def add(self, payload: EventPayload, *, event_id: str | None = None) -> Envelope:
        envelope = Envelope.new(payload, source="/test", event_id=event_id or f"{self._prefix}-{next(self._ids)}")
        self.envelopes.append(envelope)
        return envelope

    def order(self, order_id: str, placed_at: datetime, items: dict[str, int], **fields) -> OrderPlaced:
        lines = []
        for sku, quantity in items.items():
            seller, name, grams, _stars, _expires = PRODUCTS[sku]
            _n, _k, province, ward = SELLERS[seller]
            lines.append(
                OrderLine(
                    sku=sku,
                    product_name=name,
                    seller_id=seller,
                    seller_province_code=province,
                    seller_ward_code=ward,
                    quantity=quantity,
                    unit_price_vnd=PRICES[sku],
                    unit_weight_g=grams,
                    line_total_vnd=quantity * PRICES[sku],
                    line_weight_g=quantity * grams,
                )
            )
        order = OrderPlaced(
            order_id=order_id,
            channel="direct",
            shop_id=fields.get("shop_id", "shop-other"),
            external_order_id=order_id,
            placed_at=placed_at,
            livestream_id=fields.get("livestream_id"),
            payment_method="cod",
            buyer=BUYER,
            lines=tuple(lines),
            total_vnd=sum(line.line_total_vnd for line in lines),
            total_weight_g=sum(line.line_weight_g for line in lines),
        )
        self.add(order)
        return order

    def dispatch(self, shipment_id: str, order: OrderPlaced, seller: str, at: datetime) -> None:
        lines = [line for line in order.lines if line.seller_id == seller]
        self.add(
            ShipmentDispatched(
                shipment_id=shipment_id,
                order_id=order.order_id,
                seller_id=seller,
                carrier="viettel_post",
                origin_province_code=lines[0].seller_province_code,
                origin_ward_code=lines[0].seller_ward_code,
                recipient=BUYER,
                items=[{"sku": line.sku, "quantity": line.quantity} for line in lines],
                weight_g=sum(line.line_weight_g for line in lines),
                cod_amount_vnd=sum(line.line_total_vnd for line in lines),
                dispatched_at=at,
            )
        )

    def status(self, shipment_id: str, order: OrderPlaced, status: str, at: datetime, **money: int) -> None:
        self.add(
            ShipmentStatusChanged(
                shipment_id=shipment_id,
                order_id=order.order_id,
                seller_id="s-hong",
                carrier="viettel_post",
                status=status,
                previous_status="created",
                occurred_at=at,
                recorded_at=at,
                **money,
            )
        )


def build_history() -> History:
    h = History()
    for seller, (name, kind, province, ward) in SELLERS.items():
        h.add(SellerRegistered(seller_id=seller, name=name, kind=kind, province_code=province, ward_code=ward))
    for sku, (seller, name, grams, stars, expires) in PRODUCTS.items():
        h.add(
            ProductListed(
                sku=sku,
                seller_id=seller,
                name=name,
                unit_weight_g=grams,
                ocop_stars=stars,
                ocop_certificate_expires_on=expires,
            )
        )

    def listing(sku: str, channel: str, active: bool, at: datetime) -> None:
        seller = PRODUCTS[sku][0]
        h.add(
            ListingPublished(
                sku=sku,
                seller_id=seller,
                channel=channel,
                platform_product_id=f"p-{sku}",
                platform_sku=f"ps-{sku}",
                active=active,
                published_at=at,
            )
        )

    listing("MIEN-500", "tiktok_shop", True, vn(1, 9))
    listing("DAO-CAY", "tiktok_shop", True, vn(1, 9))  # listed, but its certificate has expired
    listing("MAT-ONG", "shopee", False, vn(10, 9))  # withdrawn ...
    listing("MAT-ONG", "shopee", True, vn(2, 9))  # ... and this older publication arrives late
    h.add(
        LivestreamScheduled(
            livestream_id="live-1",
            seller_id="s-hong",
            channel="direct",
            shop_id="shop-hong",
            title="Tết ta ba miền – chở xuân về nhà",
            starts_at=LIVE_STARTS,
            ends_at=LIVE_STARTS + timedelta(hours=4),
        )
    )
    # s-hong: 20 orders a day on the 16th..19th; s-mai: 20 a day on the 17th..20th.
    for day in (16, 17, 18, 19):
        for i in range(20):
            h.order(f"hong-{day}-{i}", vn(day, 8, i), {"MIEN-500": 2})
    for day in (17, 18, 19, 20):
        for i in range(20):
            h.order(f"mai-{day}-{i}", vn(day, 9, i), {"DAO-CAY": 1})
    h.order("chu-15", vn(15, 10), {"MAT-ONG": 3})
    # The livestream on the 20th: 22 orders on its shop, three in its first minute.
    live = []
    for i in range(22):
        at = LIVE_STARTS + timedelta(minutes=max(0, i - 2) * 5)
        live.append(h.order(f"live-{i}", at, {"MIEN-500": 2}, shop_id="shop-hong"))
    for order in live[:5]:
        h.add(OrderConfirmed(order_id=order.order_id, confirmed_at=order.placed_at + timedelta(minutes=1)))
    h.add(
        OrderCancelled(order_id="live-10", cancelled_at=vn(20, 15), cancelled_by="buyer", reason_code="buyer_request")
    )
    rejected = h.order("chu-20", vn(20, 10), {"MAT-ONG": 3})
    h.add(
        OrderRejectedV2(
            order_id=rejected.order_id,
            channel="direct",
            shop_id="shop-other",
            external_order_id=rejected.order_id,
            placed_at=rejected.placed_at,
            reasons=[{"code": "out_of_stock", "message": "Hết hàng", "sku": "MAT-ONG"}],
        )
    )
    # One order of two sellers in two communes, tagged with the livestream by the platform.
    both = h.order("both-1", vn(20, 20), {"MIEN-500": 2, "KHOAI-5KG": 1}, livestream_id="live-1")
    # Duplicates: the same event twice, and the same order published again under a new event id.
    h.envelopes.append(h.envelopes[-1])
    h.order("live-1", live[1].placed_at, {"MIEN-500": 2}, shop_id="shop-hong")
    # Shipments of five livestream orders.
    placed = {order.order_id: order for order in live}
    for n in (3, 4, 5, 6, 11):
        order = placed[f"live-{n}"]
        h.dispatch(f"sh-{n}", order, "s-hong", order.placed_at + timedelta(hours=1))
    fee = {"shipping_fee_vnd": 30000}

    def at(n: int, hours: int) -> datetime:
        return placed[f"live-{n}"].placed_at + timedelta(hours=hours)

    h.status("sh-3", placed["live-3"], "picked_up", at(3, 2))
    h.status("sh-3", placed["live-3"], "delivered", at(3, 26), cod_collected_vnd=130000, **fee)
    h.status("sh-4", placed["live-4"], "picked_up", at(4, 4))
    h.status("sh-4", placed["live-4"], "delivered", at(4, 50), **fee)
    h.status("sh-4", placed["live-4"], "in_transit", at(4, 20))  # a late callback: moves nothing
    h.status("sh-5", placed["live-5"], "picked_up", at(5, 6))
    h.status("sh-11", placed["live-11"], "picked_up", at(11, 3))
    h.status("sh-11", placed["live-11"], "returned", at(11, 72), **fee)  # its kg go back
    # A late event: placed at 00:30 on the 20th (Vietnam), published last.
    h.order("hong-late", vn(20, 0, 30), {"MIEN-500": 2})
    assert both.order_id == "both-1"
    return h


@pytest.fixture
def history() -> History:
    return build_history()


async def publish(platform: Platform, envelopes: list[Envelope]) -> None:
    await platform.transport.log.append([envelope.to_record() for envelope in envelopes])


async def all_consumed(transport: LocalTransport, group: str = SERVICE.consumer_group) -> bool:
    for topic, (_first, last) in (await transport.log.topics()).items():
        if topic in SERVICE.subscriptions and await transport.log.committed(group, topic) <= last:
            return False
    return True


@asynccontextmanager
async def analytics_alone(
    data_dir: Path, *, serve_port: int | None = None, **settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """analytics on its own SQLite file and a local log, with an HTTP client on its app (and the
    app served on 127.0.0.1:`serve_port` for a browser, when given)."""
    transport = LocalTransport(data_dir / "log.sqlite3")
    runtime = ServiceRuntime(
        SERVICE,
        engine=db.sqlite_engine(data_dir / "analytics.sqlite3"),
        transport=transport,
        settings=Settings(**{**TEST_SETTINGS, **settings}),
    )
    platform = Platform([runtime], transport, mode="embedded")
    app = create_app(platform)
    async with app.router.lifespan_context(app):
        await platform.wait_connected()
        server = None
        if serve_port is not None:
            config = uvicorn.Config(app, host="127.0.0.1", port=serve_port, lifespan="off", log_config=None)
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            await eventually(lambda: asyncio.sleep(0, result=server.started), timeout_s=30)
        try:
            asgi = httpx.ASGITransport(app=app)
            headers = operator_headers()  # a request's own headers replace these
            async with httpx.AsyncClient(transport=asgi, base_url="http://analytics.test", headers=headers) as client:
                yield client, platform
        finally:
            if server is not None:
                server.should_exit = True
                await serving
