"""analytics as the runtime sees it."""

from fastapi import APIRouter

from vuonminh.analytics import handlers
from vuonminh.analytics.api import router as api_router
from vuonminh.analytics.models import AnalyticsTable
from vuonminh.analytics.pages import router as pages_router
from vuonminh.shared.events import Topic, payload_class_for
from vuonminh.shared.service import ServiceSpec

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)

TOPICS = (Topic.ORDERS, Topic.LIVESTREAMS, Topic.SHIPMENTS, Topic.CATALOG_SELLERS, Topic.CATALOG_PRODUCTS)
# One batch handler for every type analytics reads (handlers.PHASES says in which order a batch's
# kinds of events are applied).
SUBSCRIPTIONS = {
    topic: {t: handlers.APPLY for t in handlers.EVENT_TYPES if topic == payload_class_for(t).TOPIC} for topic in TOPICS
}

SERVICE = ServiceSpec(name="analytics", metadata=AnalyticsTable.metadata, router=router, subscriptions=SUBSCRIPTIONS)
