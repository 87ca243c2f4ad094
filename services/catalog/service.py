"""catalog as the runtime sees it."""

from vuonminh.catalog import handlers
from vuonminh.catalog.api import router
from vuonminh.catalog.models import CatalogTable
from vuonminh.shared.events import OrderCancelled, OrderPlaced, ShipmentStatusChanged, Topic
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="catalog",
    metadata=CatalogTable.metadata,
    router=router,
    # The stock step of the order saga: reserve, release, and take out of stock once picked up.
    subscriptions={
        Topic.ORDERS: {
            OrderPlaced.TYPE: handlers.on_order_placed,
            OrderCancelled.TYPE: handlers.on_order_cancelled,
        },
        Topic.SHIPMENTS: {ShipmentStatusChanged.TYPE: handlers.on_shipment_status_changed},
    },
)
