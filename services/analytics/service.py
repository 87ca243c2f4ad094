"""analytics as the runtime sees it."""

from vuonminh.analytics import handlers
from vuonminh.analytics.api import router
from vuonminh.analytics.models import AnalyticsTable
from vuonminh.shared.events import OrderPlaced, ShipmentDispatched, Topic
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="analytics",
    metadata=AnalyticsTable.metadata,
    router=router,
    subscriptions={
        Topic.ORDERS: {OrderPlaced.TYPE: handlers.on_order_placed},
        Topic.SHIPMENTS: {ShipmentDispatched.TYPE: handlers.on_shipment_dispatched},
    },
)
