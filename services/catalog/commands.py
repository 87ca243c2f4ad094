"""catalog's write use-cases: each runs in one unit of work and publishes through the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from vuonminh.catalog import domain
from vuonminh.catalog.models import (
    Listing,
    ListingIn,
    Lot,
    LotIn,
    Product,
    ProductIn,
    ProductPatch,
    ProvincialShop,
    ProvincialShopIn,
    Seller,
    SellerIn,
    StockAdjustmentIn,
    StockLevel,
    StockMovement,
)
from vuonminh.shared.addresses import find_province
from vuonminh.shared.events import ListingPublished, StockAdjusted
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


async def register_provincial_shop(uow: UnitOfWork, request: ProvincialShopIn) -> tuple[ProvincialShop, bool]:
    fields = request.model_dump()
    existing = await uow.session.get(ProvincialShop, request.shop_id)
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"shop {request.shop_id!r}"):
        return existing, False
    if find_province(request.province_code) is None:
        raise domain.CatalogError(f"province_code: unknown 2025 province code {request.province_code!r}", status=422)
    shop = ProvincialShop(**fields, created_at=utc_now())
    uow.session.add(shop)
    return shop, True


async def register_seller(uow: UnitOfWork, request: SellerIn) -> tuple[Seller, bool]:
    """Registers a seller; returns it and whether it was created (False: identical retry)."""
    fields = request.model_dump()
    fields["kind"], fields["aggregates_others"] = domain.seller_kind(request.kind, request.aggregates_others)
    existing = await uow.session.get(Seller, request.seller_id)
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"seller {request.seller_id!r}"):
        return existing, False
    shop_exists = bool(request.provincial_shop_id) and (
        await uow.session.get(ProvincialShop, request.provincial_shop_id) is not None
    )
    event = domain.register_seller(
        **{k: fields[k] for k in ("seller_id", "name", "kind", "aggregates_others", "province_code", "ward_code")},
        provincial_shop_id=request.provincial_shop_id,
        shop_exists=shop_exists,
    )
    seller = Seller(**fields, created_at=utc_now())
    uow.session.add(seller)
    uow.publish(event)
    return seller, True


def _product_fields(request: ProductIn) -> dict[str, Any]:
    fields = request.model_dump(exclude={"initial_stock"})
    fields["photo_urls"] = [str(url) for url in request.photo_urls]
    return fields


async def list_product(uow: UnitOfWork, request: ProductIn) -> tuple[Product, bool]:
    """Lists a product for sale; returns it and whether it was created (False: identical retry)."""
    fields = _product_fields(request)
    existing = await uow.session.get(Product, request.sku)
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"product {request.sku!r}"):
        return existing, False
    seller = await uow.session.get(Seller, request.seller_id)
    domain.check_product(
        season_starts_on=request.season_starts_on,
        season_ends_on=request.season_ends_on,
        seller_exists=seller is not None,
        seller_id=request.seller_id,
    )
    await _check_gtin_free(uow, request.gtin, sku=request.sku)
    now = utc_now()
    product = Product(**fields, created_at=now, version=1)
    uow.session.add(product)
    uow.session.add(StockLevel(sku=request.sku, available=request.initial_stock, reserved=0, updated_at=now))
    await uow.session.flush()
    if request.initial_stock:
        uow.session.add(
            StockMovement(
                sku=request.sku,
                kind="adjustment",
                available_change=request.initial_stock,
                reserved_change=0,
                available_after=request.initial_stock,
                reserved_after=0,
                reason="Tồn kho ban đầu",
                at=now,
            )
        )
    uow.publish(domain.product_listed(product, domain.vietnam_day(now)))
    return product, True


async def _check_gtin_free(uow: UnitOfWork, gtin: str | None, *, sku: str) -> None:
    if gtin is None:
        return
    other = await uow.session.scalar(select(Product.sku).where(Product.gtin == gtin, Product.sku != sku))
    if other is not None:
        raise domain.CatalogError(f"gtin: {gtin} already identifies product {other!r}", status=409)


async def edit_product(uow: UnitOfWork, sku: str, patch: ProductPatch) -> Product:
    """Applies an edit made on `patch.version`; a stale version is refused (409), never silently overwritten."""
    product = await uow.session.get(Product, sku, with_for_update=True)
    if product is None:
        raise domain.CatalogError(f"product {sku!r} not found", status=404)
    domain.check_version(current=product.version, expected=patch.version, sku=sku)
    changes = patch.model_dump(exclude_unset=True, exclude={"version"})
    if "photo_urls" in changes:
        changes["photo_urls"] = [str(url) for url in patch.photo_urls or []]
    for name in ("name", "category", "unit", "unit_weight_g", "active"):  # not nullable
        if name in changes and changes[name] is None:
            raise domain.CatalogError(f"{name}: cannot be null", status=422)
    merged = {**product.model_dump(), **changes}
    domain.check_product(
        season_starts_on=merged["season_starts_on"],
        season_ends_on=merged["season_ends_on"],
        seller_exists=True,
        seller_id=product.seller_id,
    )
    await _check_gtin_free(uow, changes.get("gtin"), sku=sku)
    now = utc_now()
    # The version moves only if the row still holds the version read (a second guard beside the row lock).
    moved = await uow.session.execute(
        update(Product)
        .where(Product.sku == sku, Product.version == patch.version)
        .values(**changes, version=patch.version + 1, updated_at=now)
    )
    if moved.rowcount != 1:
        domain.check_version(current=patch.version + 1, expected=patch.version, sku=sku)
    await uow.session.refresh(product)
    uow.publish(domain.product_listed(product, domain.vietnam_day(now)))
    return product


async def adjust_stock(uow: UnitOfWork, sku: str, request: StockAdjustmentIn) -> StockLevel:
    """A seller's change of stock, with its reason: the ledger keeps it and a stock_adjusted event tells it."""
    product = await uow.session.get(Product, sku)
    if product is None:
        raise domain.CatalogError(f"product {sku!r} not found", status=404)
    if request.change == 0:
        raise domain.CatalogError("change: a change of 0 units changes nothing", status=422)
    level = await uow.session.get(StockLevel, sku, with_for_update=True)
    now = utc_now()
    if level is None:
        level = StockLevel(sku=sku, available=0, reserved=0, updated_at=now)
        uow.session.add(level)
    level.available = domain.adjusted_available(available=level.available, change=request.change, unit=product.unit)
    level.updated_at = now
    uow.session.add(
        StockMovement(
            sku=sku,
            kind="adjustment",
            available_change=request.change,
            reserved_change=0,
            available_after=level.available,
            reserved_after=level.reserved,
            reason=request.reason,
            at=now,
        )
    )
    uow.publish(
        StockAdjusted(
            sku=sku,
            seller_id=product.seller_id,
            change=request.change,
            available=level.available,
            reserved=level.reserved,
            reason=request.reason,
            adjusted_at=now,
        )
    )
    return level


async def publish_listing(uow: UnitOfWork, sku: str, request: ListingIn) -> tuple[Listing, bool]:
    """Records a product's ids on a marketplace (or withdraws them); returns it and whether it changed."""
    product = await uow.session.get(Product, sku)
    if product is None:
        raise domain.CatalogError(f"product {sku!r} not found", status=404)
    listing = await uow.session.get(Listing, (request.channel, request.platform_sku))
    if listing is not None and listing.sku != sku:
        raise domain.CatalogError(
            f"platform_sku: {request.channel} SKU {request.platform_sku!r} is listed for product {listing.sku!r}",
            status=409,
        )
    fields = request.model_dump()
    if listing is not None and all(getattr(listing, k) == v for k, v in fields.items()):
        return listing, False
    now = utc_now()
    if listing is None:
        listing = Listing(**fields, sku=sku, published_at=now)
        uow.session.add(listing)
    else:
        for name, value in fields.items():
            setattr(listing, name, value)
        listing.published_at = now
    uow.publish(ListingPublished(**fields, sku=sku, seller_id=product.seller_id, published_at=now))
    return listing, True


async def record_lot(uow: UnitOfWork, sku: str, request: LotIn) -> tuple[Lot, bool]:
    product = await uow.session.get(Product, sku)
    if product is None:
        raise domain.CatalogError(f"product {sku!r} not found", status=404)
    if product.gtin is None:
        raise domain.CatalogError(
            f"gtin: product {sku!r} has no GTIN; a traceable lot needs one for its GS1 Digital Link", status=422
        )
    for index, source in enumerate(request.sources):
        if (source.seller_id is None) == (source.household_name is None):
            raise domain.CatalogError(
                f"sources[{index}]: name either a registered seller_id or a household_name", status=422
            )
        if source.seller_id is not None and await uow.session.get(Seller, source.seller_id) is None:
            raise domain.CatalogError(f"sources[{index}].seller_id: {source.seller_id!r} is not registered", status=422)
        if source.ward_code is not None and domain.check_ward(source.ward_code):
            raise domain.CatalogError(f"sources[{index}].ward_code: {domain.check_ward(source.ward_code)}", status=422)
    sources = [source.model_dump(exclude_none=True) for source in request.sources]
    fields = {**request.model_dump(exclude={"sources"}), "sources": sources}
    existing = await uow.session.scalar(select(Lot).where(Lot.gtin == product.gtin, Lot.lot_code == request.lot_code))
    if domain.is_identical_retry(existing and existing.model_dump(), fields, what=f"lot {request.lot_code!r}"):
        return existing, False
    lot = Lot(**fields, sku=sku, gtin=product.gtin, created_at=utc_now())
    uow.session.add(lot)
    try:
        await uow.session.flush()
    except IntegrityError as error:  # the same lot recorded at the same moment by another request
        raise domain.CatalogError(f"lot {request.lot_code!r} exists with other details", status=409) from error
    return lot, True
