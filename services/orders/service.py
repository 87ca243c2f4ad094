"""orders as the runtime sees it."""

from vuonminh.orders import fetcher, handlers, intake, shops, tokens
from vuonminh.orders.api import router
from vuonminh.orders.models import DirectOrderWebhook, OrdersTable
from vuonminh.shared.events import (
    ListingPublished,
    OrderReceived,
    OrderReceivedV2,
    ProductListed,
    SellerRegistered,
    SellerRegisteredV2,
    ShipmentStatusChanged,
    StockReservationFailed,
    StockReserved,
    Topic,
)
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="orders",
    metadata=OrdersTable.metadata,
    router=router,
    subscriptions={
        Topic.CATALOG_SELLERS: {
            SellerRegistered.TYPE: handlers.on_seller_registered,
            SellerRegisteredV2.TYPE: handlers.on_seller_registered,
        },
        Topic.CATALOG_PRODUCTS: {
            ProductListed.TYPE: handlers.on_product_listed,
            ListingPublished.TYPE: handlers.on_listing_published,
        },
        Topic.CATALOG_RESERVATIONS: {
            StockReserved.TYPE: handlers.ON_RESERVATION_RESULTS,
            StockReservationFailed.TYPE: handlers.ON_RESERVATION_RESULTS,
        },
        Topic.ORDERS_INTAKE: {
            OrderReceived.TYPE: handlers.ON_ORDERS_RECEIVED,
            OrderReceivedV2.TYPE: handlers.on_platform_order_received,
        },
        Topic.SHIPMENTS: {ShipmentStatusChanged.TYPE: handlers.on_shipment_status_changed},
    },
    raw_body_models=(DirectOrderWebhook,),
    # Webhook intake only appends to the log: it keeps taking orders while the database is down.
    api_needs=frozenset({"log"}),
    background=(
        handlers.sweep_orders_awaiting_catalog,
        fetcher.fetch_platform_orders,
        fetcher.retry_platform_orders,
        tokens.refresh_platform_tokens,
    ),
    api_background=(shops.refresh_shop_secrets, intake.hold_lookup_connections),
)
