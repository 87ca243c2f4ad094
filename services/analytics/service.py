"""analytics as the runtime sees it."""

from fastapi import APIRouter

from vuonminh.analytics import handlers
from vuonminh.analytics.api import router as api_router
from vuonminh.analytics.models import AnalyticsTable
from vuonminh.analytics.pages import router as pages_router
from vuonminh.shared.events import (
    ListingPublished,
    LivestreamScheduled,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    OrderRejectedV2,
    ProductListed,
    SellerRegistered,
    ShipmentDispatched,
    ShipmentStatusChanged,
    Topic,
)
from vuonminh.shared.service import ServiceSpec

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)

SUBSCRIPTIONS = {
    Topic.ORDERS: {
        OrderPlaced.TYPE: handlers.on_order_placed,
        OrderConfirmed.TYPE: handlers.on_order_confirmed,
        OrderCancelled.TYPE: handlers.on_order_cancelled,
        OrderRejected.TYPE: handlers.on_order_rejected,
        OrderRejectedV2.TYPE: handlers.on_order_rejected,
    },
    Topic.LIVESTREAMS: {LivestreamScheduled.TYPE: handlers.on_livestream_scheduled},
    Topic.SHIPMENTS: {
        ShipmentDispatched.TYPE: handlers.on_shipment_dispatched,
        ShipmentStatusChanged.TYPE: handlers.on_shipment_status_changed,
    },
    Topic.CATALOG_SELLERS: {SellerRegistered.TYPE: handlers.on_seller_registered},
    Topic.CATALOG_PRODUCTS: {
        ProductListed.TYPE: handlers.on_product_listed,
        ListingPublished.TYPE: handlers.on_listing_published,
    },
}

SERVICE = ServiceSpec(name="analytics", metadata=AnalyticsTable.metadata, router=router, subscriptions=SUBSCRIPTIONS)
