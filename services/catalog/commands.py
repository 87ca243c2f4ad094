"""catalog's write use-cases: each runs in one unit of work and publishes through the outbox."""

from __future__ import annotations

from vuonminh.catalog import domain
from vuonminh.catalog.models import Product, ProductIn, Seller, SellerIn
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


async def register_seller(uow: UnitOfWork, request: SellerIn) -> tuple[Seller, bool]:
    """Registers a seller; returns it and whether it was created (False: identical retry)."""
    fields = request.model_dump()
    existing = await uow.session.get(Seller, request.seller_id)
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"seller {request.seller_id!r}"):
        return existing, False
    event = domain.register_seller(**fields)
    seller = Seller(**fields, created_at=utc_now())
    uow.session.add(seller)
    uow.publish(event)
    return seller, True


async def list_product(uow: UnitOfWork, request: ProductIn) -> tuple[Product, bool]:
    """Lists a product for sale; returns it and whether it was created (False: identical retry)."""
    fields = request.model_dump()
    existing = await uow.session.get(Product, request.sku)
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"product {request.sku!r}"):
        return existing, False
    seller = await uow.session.get(Seller, request.seller_id)
    event = domain.list_product(**fields, seller_exists=seller is not None)
    product = Product(**fields, created_at=utc_now())
    uow.session.add(product)
    uow.publish(event)
    return product, True
