"""catalog's HTTP API: thin handlers over the commands and queries, and the public trace page."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import ColumnElement, false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.catalog import commands, queries, trace
from vuonminh.catalog.domain import CatalogError, normalise_gtin
from vuonminh.catalog.models import (
    ListingIn,
    ListingOut,
    Lot,
    LotIn,
    LotOut,
    Product,
    ProductIn,
    ProductOut,
    ProductPatch,
    ProvincialShop,
    ProvincialShopIn,
    ProvincialShopOut,
    Seller,
    SellerIn,
    SellerOut,
    StockAdjustmentIn,
    StockOut,
)
from vuonminh.shared.app import runtime_of, session_of
from vuonminh.shared.audit import audit_write
from vuonminh.shared.auth import Caller, Role, public, require
from vuonminh.shared.paging import Limit, Offset
from vuonminh.shared.runtime import ServiceRuntime

T = TypeVar("T")

router = APIRouter(tags=["catalog"])
v1 = APIRouter(prefix="/v1")
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("catalog"))]
Session = Annotated[AsyncSession, Depends(session_of("catalog"))]
# Who reads the catalog: sellers their own, officials their communes' or provinces' sellers, the operator all.
Reader = Annotated[Caller, Depends(require(Role.seller, Role.commune_official, Role.province_official))]
# Who changes a seller's products, stock, listings and lots: that seller (or the operator).
Writer = Annotated[Caller, Depends(require(Role.seller))]
Operator = Annotated[Caller, Depends(require(Role.operator))]


def visible_sellers(caller: Caller) -> ColumnElement[bool] | None:
    """The sellers `caller` may see, as a condition on Seller (None: all of them)."""
    if caller.is_operator:
        return None
    if caller.role is Role.seller:
        return col(Seller.seller_id).in_(caller.seller_ids)
    if caller.role is Role.commune_official:
        return col(Seller.ward_code).in_(caller.ward_codes)
    if caller.role is Role.province_official:
        return col(Seller.province_code).in_(caller.province_codes)
    return false()


def visible_products(caller: Caller) -> ColumnElement[bool] | None:
    sellers = visible_sellers(caller)
    if sellers is None:
        return None
    if caller.role is Role.seller:
        return col(Product.seller_id).in_(caller.seller_ids)
    return col(Product.seller_id).in_(select(Seller.seller_id).where(sellers))


async def _visible_product(session: AsyncSession, sku: str, caller: Caller) -> Product:
    """The product if `caller` may see it; 404 otherwise, the same answer as for a SKU that does not exist."""
    query = select(Product).where(Product.sku == sku)
    if (scope := visible_products(caller)) is not None:
        query = query.where(scope)
    product = (await session.exec(query)).first()
    if product is None:
        raise _not_found(f"product {sku!r}")
    return product


async def _own_product(runtime: ServiceRuntime, sku: str, caller: Caller) -> None:
    """A write to a product is its seller's (or the operator's): anyone else gets 404."""
    async with runtime.sessions() as session:
        product = await session.get(Product, sku)
    if product is None or not caller.may_see_seller(product.seller_id):
        raise _not_found(f"product {sku!r}")


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def _done(changed: bool, what: str = "created") -> str:
    """The outcome an audit entry records: `what`, or "unchanged" for an identical retry."""
    return what if changed else "unchanged"


async def _run(result: Awaitable[T]) -> T:
    try:
        return await result
    except CatalogError as error:
        raise HTTPException(error.status, error.message) from error


# --- provincial shops and sellers --------------------------------------------------------------------


@v1.post(
    "/provincial-shops",
    response_model=ProvincialShopOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a provincial shop that groups producers (201; 200 when repeated; 409 when it differs)",
)
async def register_provincial_shop(request: ProvincialShopIn, runtime: Runtime, response: Response, caller: Operator):
    async with runtime.unit_of_work() as uow:
        shop, created = await _run(commands.register_provincial_shop(uow, request))
        audit_write(
            uow, caller, "register_provincial_shop", target=("provincial_shop", shop.shop_id), outcome=_done(created)
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    async with runtime.sessions() as session:
        return await queries.provincial_shop(session, shop.shop_id)


@v1.get("/provincial-shops/{shop_id}", response_model=ProvincialShopOut)
async def get_provincial_shop(shop_id: str, session: Session, caller: Reader):
    shop = await queries.provincial_shop(session, shop_id)
    stored = await session.get(ProvincialShop, shop_id)
    visible = shop is not None and (
        caller.is_operator
        or caller.may_see_province(stored.province_code)
        or caller.may_see_seller(stored.coordinator_seller_id)
        or any(caller.may_see_seller(member) for member in shop.seller_ids)
    )
    if not visible:
        raise _not_found(f"provincial shop {shop_id!r}")
    return shop


@v1.get("/sellers", response_model=list[SellerOut])
async def list_sellers(
    session: Session,
    caller: Reader,
    ward_code: str | None = None,
    province_code: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    return await queries.sellers(
        session,
        ward_code=ward_code,
        province_code=province_code,
        scope=visible_sellers(caller),
        limit=limit,
        offset=offset,
    )


@v1.get("/sellers/{seller_id}", response_model=SellerOut)
async def get_seller(seller_id: str, session: Session, caller: Reader):
    query = select(Seller).where(Seller.seller_id == seller_id)
    if (scope := visible_sellers(caller)) is not None:
        query = query.where(scope)
    seller = (await session.exec(query)).first()
    if seller is None:
        raise _not_found(f"seller {seller_id!r}")
    return queries.seller_out(seller)


@v1.post(
    "/sellers",
    response_model=SellerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a seller (201; 200 when the same registration is repeated; 409 when it differs)",
)
async def register_seller(request: SellerIn, runtime: Runtime, response: Response, caller: Operator):
    async with runtime.unit_of_work() as uow:
        seller, created = await _run(commands.register_seller(uow, request))
        audit_write(uow, caller, "register_seller", target=("seller", seller.seller_id), outcome=_done(created))
    if not created:
        response.status_code = status.HTTP_200_OK
    return queries.seller_out(seller)


# --- products ------------------------------------------------------------------------------------------


@v1.get("/products", response_model=list[ProductOut])
async def list_products(
    session: Session,
    caller: Reader,
    seller_id: str | None = None,
    ward_code: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    return await queries.products(
        session, seller_id=seller_id, ward_code=ward_code, scope=visible_products(caller), limit=limit, offset=offset
    )


@v1.get("/products/{sku}", response_model=ProductOut)
async def get_product(sku: str, session: Session, caller: Reader):
    await _visible_product(session, sku, caller)
    return await queries.product(session, sku)


@v1.post(
    "/products",
    response_model=ProductOut,
    status_code=status.HTTP_201_CREATED,
    summary="Put a seller's product on sale (201; 200 when repeated as is; 409 when it differs)",
)
async def list_product(request: ProductIn, runtime: Runtime, response: Response, caller: Writer):
    if not caller.may_see_seller(request.seller_id):
        raise _not_found(f"seller {request.seller_id!r}")
    async with runtime.unit_of_work() as uow:
        existing = await uow.session.get(Product, request.sku)
        if existing is not None and not caller.may_see_seller(existing.seller_id):
            raise HTTPException(status.HTTP_409_CONFLICT, f"SKU {request.sku!r} belongs to another seller")
        product, created = await _run(commands.list_product(uow, request))
        audit_write(uow, caller, "list_product", target=("product", product.sku), outcome=_done(created))
    if not created:
        response.status_code = status.HTTP_200_OK
    async with runtime.sessions() as session:
        return await queries.product(session, product.sku)


@v1.patch(
    "/products/{sku}",
    response_model=ProductOut,
    summary="Edit a product: send the `version` you read; 409 when it changed meanwhile",
)
async def edit_product(sku: str, patch: ProductPatch, runtime: Runtime, caller: Writer):
    await _own_product(runtime, sku, caller)
    async with runtime.unit_of_work() as uow:
        await _run(commands.edit_product(uow, sku, patch))
        audit_write(uow, caller, "edit_product", target=("product", sku), outcome="updated")
    async with runtime.sessions() as session:
        return await queries.product(session, sku)


@v1.post(
    "/products/{sku}/stock",
    response_model=StockOut,
    summary="Adjust a product's stock by `change` units of sale, with a reason (kept in the ledger)",
)
async def adjust_stock(sku: str, request: StockAdjustmentIn, runtime: Runtime, caller: Writer):
    await _own_product(runtime, sku, caller)
    async with runtime.unit_of_work() as uow:
        await _run(commands.adjust_stock(uow, sku, request))
        audit_write(uow, caller, "adjust_stock", target=("product", sku), outcome="updated")
    async with runtime.sessions() as session:
        return await queries.stock(session, sku, after_id=0, limit=0)


@v1.get("/products/{sku}/stock", response_model=StockOut, summary="Stock levels and the ledger, oldest first")
async def get_stock(
    sku: str, session: Session, caller: Reader, after_id: Annotated[int, Query(ge=0)] = 0, limit: Limit = 100
):
    await _visible_product(session, sku, caller)
    return await queries.stock(session, sku, after_id=after_id, limit=limit)


# --- listings --------------------------------------------------------------------------------------------


@v1.post(
    "/products/{sku}/listings",
    response_model=ListingOut,
    summary="Record (or withdraw, `active: false`) the product's ids on TikTok Shop, Shopee or Lazada",
)
async def publish_listing(sku: str, request: ListingIn, runtime: Runtime, response: Response, caller: Writer):
    await _own_product(runtime, sku, caller)
    async with runtime.unit_of_work() as uow:
        listing, changed = await _run(commands.publish_listing(uow, sku, request))
        audit_write(uow, caller, "publish_listing", target=("product", sku), outcome=_done(changed, "updated"))
    response.status_code = status.HTTP_201_CREATED if changed else status.HTTP_200_OK
    return ListingOut(**listing.model_dump())


@v1.get("/products/{sku}/listings", response_model=list[ListingOut])
async def get_listings(sku: str, session: Session, caller: Reader):
    await _visible_product(session, sku, caller)
    return await queries.listings(session, sku)


# --- lots and QR codes -----------------------------------------------------------------------------------


@v1.post(
    "/products/{sku}/lots",
    response_model=LotOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a traceable lot with its source households (201; 200 when repeated; 409 when it differs)",
)
async def record_lot(sku: str, request: LotIn, runtime: Runtime, response: Response, caller: Writer):
    await _own_product(runtime, sku, caller)
    async with runtime.unit_of_work() as uow:
        lot, created = await _run(commands.record_lot(uow, sku, request))
        audit_write(uow, caller, "record_lot", target=("lot", f"{sku}/{lot.lot_code}"), outcome=_done(created))
    if not created:
        response.status_code = status.HTTP_200_OK
    return queries.lot_out(lot, runtime.settings.trace_domain)


@v1.get("/products/{sku}/lots", response_model=list[LotOut])
async def list_lots(sku: str, session: Session, runtime: Runtime, caller: Reader):
    await _visible_product(session, sku, caller)
    return await queries.lots(session, sku, runtime.settings.trace_domain)


async def _digital_link(sku: str, lot_code: str, session: AsyncSession, runtime: ServiceRuntime, caller: Caller) -> str:
    await _visible_product(session, sku, caller)
    lot: Lot | None = await queries.lot(session, sku, lot_code)
    if lot is None:
        raise _not_found(f"lot {lot_code!r} of product {sku!r}")
    return queries.lot_out(lot, runtime.settings.trace_domain).digital_link


@v1.get(
    "/products/{sku}/lots/{lot_code}/qr.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The lot's GS1 Digital Link as a QR code (PNG)",
)
async def lot_qr_png(sku: str, lot_code: str, session: Session, runtime: Runtime, caller: Reader) -> Response:
    link = await _digital_link(sku, lot_code, session, runtime, caller)
    return Response(trace.qr_png(link), media_type="image/png")


@v1.get(
    "/products/{sku}/lots/{lot_code}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
    summary="The lot's GS1 Digital Link as a QR code (SVG)",
)
async def lot_qr_svg(sku: str, lot_code: str, session: Session, runtime: Runtime, caller: Reader) -> Response:
    link = await _digital_link(sku, lot_code, session, runtime, caller)
    return Response(trace.qr_svg(link), media_type="image/svg+xml")


router.include_router(v1)


# --- the public trace page (GS1 Digital Link resolver): public on purpose, no personal data -------------


@router.get(
    "/01/{gtin}/10/{lot_code}",
    response_class=HTMLResponse,
    responses={200: {"content": {"application/json": {}}}, 404: {"content": {"text/html": {}}}},
    summary="Public trace page of a lot (HTML in Vietnamese; JSON with `Accept: application/json`)",
    tags=["trace"],
    dependencies=[Depends(public)],
)
async def trace_lot(gtin: str, lot_code: str, request: Request, session: Session, runtime: Runtime) -> Response:
    wants_json = _prefers_json(request.headers.get("accept", ""))
    try:
        gtin14 = normalise_gtin(gtin)
    except ValueError:
        gtin14 = None
    found = gtin14 and await queries.trace(session, gtin14, lot_code, runtime.settings.trace_domain)
    if not found:
        message = f"Không tìm thấy lô {lot_code} của sản phẩm GTIN {gtin}"
        if wants_json:
            return JSONResponse({"detail": message}, status_code=status.HTTP_404_NOT_FOUND)
        return HTMLResponse(trace.not_found_page(gtin, lot_code), status_code=status.HTTP_404_NOT_FOUND)
    if wants_json:
        return JSONResponse(found)
    return HTMLResponse(trace.trace_page(found))


def _prefers_json(accept: str) -> bool:
    """JSON only when asked for it above HTML (a browser's Accept lists text/html first)."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "application/json" not in kinds:
        return False
    return "text/html" not in kinds or kinds.index("application/json") < kinds.index("text/html")
