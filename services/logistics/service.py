"""logistics as the runtime sees it."""

from vuonminh.logistics import handlers, partners
from vuonminh.logistics.api import router
from vuonminh.logistics.models import LogisticsTable
from vuonminh.shared.events import DISPATCH_REQUESTED, OrderCancelled, OrderConfirmed, OrderPlaced, OrderPlacedV2, Topic
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="logistics",
    metadata=LogisticsTable.metadata,
    router=router,
    # Ships only confirmed orders: the placed content waits for catalog's reservation (via orders).
    subscriptions={
        Topic.ORDERS: {
            OrderPlaced.TYPE: handlers.ON_ORDERS_PLACED,
            OrderPlacedV2.TYPE: handlers.ON_ORDERS_PLACED,
            OrderConfirmed.TYPE: handlers.on_order_confirmed,
            OrderCancelled.TYPE: handlers.on_order_cancelled,
        },
        # Its own dispatch requests, for the partners without Kafka (signed webhooks, partners.py).
        **{request.TOPIC: {request.TYPE: partners.on_dispatch_requested} for request in DISPATCH_REQUESTED.values()},
    },
    background=(partners.deliver_to_partners,),
)
