"""catalog's reads: what the API and the trace page show."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.catalog import domain
from vuonminh.catalog.models import (
    Listing,
    ListingOut,
    Lot,
    LotOut,
    OcopOut,
    Product,
    ProductOut,
    ProvincialShop,
    ProvincialShopOut,
    Seller,
    SellerOut,
    StockLevel,
    StockMovement,
    StockMovementOut,
    StockOut,
)
from vuonminh.shared.addresses import find_province, find_ward
from vuonminh.shared.timeutil import utc_now


def today() -> date:
    return domain.vietnam_day(utc_now())


def seller_out(seller: Seller) -> SellerOut:
    ward, province = find_ward(seller.ward_code), find_province(seller.province_code)
    return SellerOut(
        **seller.model_dump(),
        ward_name=ward.name if ward else "",
        province_name=province.name if province else "",
    )


async def sellers(
    session: AsyncSession,
    *,
    ward_code: str | None,
    province_code: str | None,
    scope: ColumnElement[bool] | None,
    limit: int,
    offset: int,
) -> list[SellerOut]:
    """Sellers in the caller's `scope` (a condition on Seller; None: all), filtered in the query."""
    query = select(Seller).order_by(col(Seller.seller_id)).limit(limit).offset(offset)
    if scope is not None:
        query = query.where(scope)
    if ward_code:
        query = query.where(Seller.ward_code == ward_code)
    if province_code:
        query = query.where(Seller.province_code == province_code)
    return [seller_out(s) for s in (await session.scalars(query)).all()]


async def provincial_shop(session: AsyncSession, shop_id: str) -> ProvincialShopOut | None:
    shop = await session.get(ProvincialShop, shop_id)
    if shop is None:
        return None
    members = await session.scalars(
        select(Seller.seller_id).where(Seller.provincial_shop_id == shop_id).order_by(Seller.seller_id)
    )
    return ProvincialShopOut(**shop.model_dump(), seller_ids=list(members.all()))


def product_out(product: Product, level: StockLevel | None, on_day: date) -> ProductOut:
    ocop = None
    if product.ocop_stars is not None:
        ocop = OcopOut(
            stars=product.ocop_stars,
            score=product.ocop_score,
            certificate_no=product.ocop_certificate_no,
            certificate_expires_on=product.ocop_certificate_expires_on,
            valid=domain.ocop_is_valid(product, on_day),
        )
    fields = product.model_dump(exclude={"ocop_stars"})
    return ProductOut(
        **fields,
        ocop_stars=domain.shown_ocop_stars(product, on_day),
        ocop=ocop,
        in_season=domain.in_season(product, on_day),
        orderable=domain.not_orderable_reason(product, on_day) is None,
        available=level.available if level else 0,
        reserved=level.reserved if level else 0,
    )


async def products(
    session: AsyncSession,
    *,
    seller_id: str | None,
    ward_code: str | None,
    scope: ColumnElement[bool] | None,
    limit: int,
    offset: int,
) -> list[ProductOut]:
    query = (
        select(Product, StockLevel)
        .outerjoin(StockLevel, StockLevel.sku == Product.sku)
        .order_by(col(Product.sku))
        .limit(limit)
        .offset(offset)
    )
    if scope is not None:
        query = query.where(scope)
    if seller_id:
        query = query.where(Product.seller_id == seller_id)
    if ward_code:
        query = query.join(Seller, Seller.seller_id == Product.seller_id).where(Seller.ward_code == ward_code)
    on_day = today()
    return [product_out(p, level, on_day) for p, level in (await session.execute(query)).tuples().all()]


async def product(session: AsyncSession, sku: str) -> ProductOut | None:
    found = await session.get(Product, sku)
    if found is None:
        return None
    return product_out(found, await session.get(StockLevel, sku), today())


async def stock(session: AsyncSession, sku: str, *, after_id: int, limit: int) -> StockOut | None:
    found = await session.get(Product, sku)
    if found is None:
        return None
    level = await session.get(StockLevel, sku)
    rows = (
        await session.scalars(
            select(StockMovement)
            .where(StockMovement.sku == sku, col(StockMovement.id) > after_id)
            .order_by(col(StockMovement.id))
            .limit(limit)
        )
    ).all()
    available, reserved = (level.available, level.reserved) if level else (0, 0)
    return StockOut(
        sku=sku,
        unit=found.unit,
        available=available,
        reserved=reserved,
        on_hand=available + reserved,
        movements=[StockMovementOut(**m.model_dump()) for m in rows],
        next_after_id=rows[-1].id if rows and len(rows) == limit else None,
    )


async def listings(session: AsyncSession, sku: str) -> list[ListingOut]:
    rows = await session.scalars(select(Listing).where(Listing.sku == sku).order_by(Listing.channel))
    return [ListingOut(**listing.model_dump()) for listing in rows.all()]


def lot_out(lot: Lot, trace_domain: str) -> LotOut:
    return LotOut(**lot.model_dump(), digital_link=domain.digital_link(trace_domain, lot.gtin, lot.lot_code))


async def lots(session: AsyncSession, sku: str, trace_domain: str) -> list[LotOut]:
    rows = await session.scalars(select(Lot).where(Lot.sku == sku).order_by(col(Lot.produced_on).desc()))
    return [lot_out(lot, trace_domain) for lot in rows.all()]


async def lot(session: AsyncSession, sku: str, lot_code: str) -> Lot | None:
    return await session.scalar(select(Lot).where(Lot.sku == sku, Lot.lot_code == lot_code))


async def trace(session: AsyncSession, gtin: str, lot_code: str, trace_domain: str) -> dict[str, Any] | None:
    """What the public trace page shows of a lot: no person's name or contact, only registered producers
    (businesses and households that sell under their own name) and a count for the others."""
    found = await session.scalar(select(Lot).where(Lot.gtin == gtin, Lot.lot_code == lot_code))
    if found is None:
        return None
    product = await session.get(Product, found.sku)
    seller = await session.get(Seller, product.seller_id)
    on_day = today()
    ward, province = find_ward(seller.ward_code), find_province(seller.province_code)
    registered_ids = [s["seller_id"] for s in found.sources if s.get("seller_id")]
    registered = {
        s.seller_id: s
        for s in (await session.scalars(select(Seller).where(col(Seller.seller_id).in_(registered_ids)))).all()
    }
    producers, others_g, others = [], 0, 0
    for source in found.sources:
        if source.get("seller_id") in registered:
            producer = registered[source["seller_id"]]
            producer_ward = find_ward(producer.ward_code)
            producers.append(
                {
                    "name": producer.name,
                    "commune": producer_ward.name if producer_ward else "",
                    "weight_kg": source["weight_g"] / 1000,
                }
            )
        else:
            others += 1
            others_g += source["weight_g"]
    certificate = None
    if product.ocop_stars is not None:
        expires = product.ocop_certificate_expires_on
        certificate = {
            "stars": product.ocop_stars,
            "score": product.ocop_score,
            "number": product.ocop_certificate_no,
            "expires_on": expires.isoformat() if expires else None,
            "valid": domain.ocop_is_valid(product, on_day),
        }
    return {
        "digital_link": domain.digital_link(trace_domain, found.gtin, found.lot_code),
        "gtin": found.gtin,
        "lot": found.lot_code,
        "product": {
            "name": product.name,
            "category": product.category,
            "unit": product.unit,
            "unit_weight_g": product.unit_weight_g,
            "photo_urls": product.photo_urls,
        },
        "ocop_stars": domain.shown_ocop_stars(product, on_day),
        "certificate": certificate,
        "seller": {
            "name": seller.name,
            "kind": seller.kind,
            "commune": ward.name if ward else "",
            "province": province.name if province else "",
        },
        "dates": {
            "produced_on": found.produced_on.isoformat(),
            "harvested_on": found.harvested_on.isoformat() if found.harvested_on else None,
            "best_before": found.best_before.isoformat() if found.best_before else None,
        },
        "quantity": found.quantity,
        "producers": producers,
        "other_households": {"count": others, "weight_kg": others_g / 1000},
        "total_weight_kg": sum(s["weight_g"] for s in found.sources) / 1000,
    }
