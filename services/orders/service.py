"""orders as the runtime sees it."""

from vuonminh.orders import handlers, intake, shops
from vuonminh.orders.api import router
from vuonminh.orders.models import DirectOrderWebhook, OrdersTable
from vuonminh.shared.events import OrderReceived, ProductListed, SellerRegistered, SellerRegisteredV2, Topic
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
        Topic.CATALOG_PRODUCTS: {ProductListed.TYPE: handlers.on_product_listed},
        Topic.ORDERS_INTAKE: {OrderReceived.TYPE: handlers.on_order_received},
    },
    raw_body_models=(DirectOrderWebhook,),
    # Webhook intake only appends to the log: it keeps taking orders while the database is down.
    api_needs=frozenset({"log"}),
    background=(handlers.sweep_orders_awaiting_catalog,),
    api_background=(shops.refresh_shop_secrets, intake.hold_lookup_connections),
)
