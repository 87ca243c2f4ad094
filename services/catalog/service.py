"""catalog as the runtime sees it."""

from vuonminh.catalog.api import router
from vuonminh.catalog.models import CatalogTable
from vuonminh.shared.service import ServiceSpec

SERVICE = ServiceSpec(name="catalog", metadata=CatalogTable.metadata, router=router)
