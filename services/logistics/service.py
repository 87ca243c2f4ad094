"""logistics as the runtime sees it."""

from vuonminh.logistics import handlers
from vuonminh.logistics.api import router
from vuonminh.logistics.models import LogisticsTable
from vuonminh.shared.events import OrderPlaced, Topic
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(
    name="logistics",
    metadata=LogisticsTable.metadata,
    router=router,
    subscriptions={Topic.ORDERS: {OrderPlaced.TYPE: handlers.on_order_placed}},
)
