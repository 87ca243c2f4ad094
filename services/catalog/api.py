"""catalog's HTTP API: thin handlers over the commands and queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy import ColumnElement, false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.catalog import commands
from vuonminh.catalog.domain import CatalogError
from vuonminh.catalog.models import Product, ProductIn, ProductOut, Seller, SellerIn, SellerOut
from vuonminh.shared.addresses import find_province, find_ward
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, error_answer, runtime_of, session_of
from vuonminh.shared.audit import audit_write
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.paging import Limit, Offset
from vuonminh.shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["catalog"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("catalog"))]
Session = Annotated[AsyncSession, Depends(session_of("catalog"))]
# Who reads the catalog: sellers their own, officials their communes/provinces' sellers.
Reader = Annotated[Caller, Depends(require(Role.seller, Role.commune_official, Role.province_official))]
Operator = Annotated[Caller, Depends(require(Role.operator))]
SellerOrOperator = Annotated[Caller, Depends(require(Role.seller))]


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


def _seller_out(seller: Seller) -> SellerOut:
    ward, province = find_ward(seller.ward_code), find_province(seller.province_code)
    return SellerOut(
        **seller.model_dump(),
        ward_name=ward.name if ward else "",
        province_name=province.name if province else "",
    )


@router.get("/sellers", response_model=list[SellerOut])
async def list_sellers(
    session: Session,
    caller: Reader,
    ward_code: str | None = None,
    province_code: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[SellerOut]:
    query = select(Seller).order_by(col(Seller.seller_id)).limit(limit).offset(offset)
    if (scope := visible_sellers(caller)) is not None:
        query = query.where(scope)
    if ward_code:
        query = query.where(Seller.ward_code == ward_code)
    if province_code:
        query = query.where(Seller.province_code == province_code)
    return [_seller_out(s) for s in (await session.exec(query)).all()]


@router.get("/sellers/{seller_id}", response_model=SellerOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_seller(seller_id: str, session: Session, caller: Reader) -> SellerOut:
    query = select(Seller).where(Seller.seller_id == seller_id)
    if (scope := visible_sellers(caller)) is not None:
        query = query.where(scope)
    seller = (await session.exec(query)).first()
    if seller is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"seller {seller_id!r} not found")
    return _seller_out(seller)


@router.post(
    "/sellers",
    response_model=SellerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a seller (201; 200 when the same registration is repeated; 409 when it differs)",
    responses={409: error_answer("the seller exists with other details")},
)
async def register_seller(request: SellerIn, runtime: Runtime, response: Response, caller: Operator) -> SellerOut:
    try:
        async with runtime.unit_of_work() as uow:
            seller, created = await commands.register_seller(uow, request)
            outcome = "created" if created else "unchanged"
            audit_write(
                uow, caller, action="register_seller", target_type="seller", target_id=seller.seller_id, outcome=outcome
            )
    except CatalogError as error:
        raise HTTPException(error.status, error.message) from error
    if not created:
        response.status_code = status.HTTP_200_OK
    return _seller_out(seller)


@router.get("/products", response_model=list[ProductOut])
async def list_products(
    session: Session, caller: Reader, seller_id: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[Product]:
    query = select(Product).order_by(col(Product.sku)).limit(limit).offset(offset)
    if (scope := visible_products(caller)) is not None:
        query = query.where(scope)
    if seller_id:
        query = query.where(Product.seller_id == seller_id)
    return list((await session.exec(query)).all())


@router.get("/products/{sku}", response_model=ProductOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_product(sku: str, session: Session, caller: Reader) -> Product:
    query = select(Product).where(Product.sku == sku)
    if (scope := visible_products(caller)) is not None:
        query = query.where(scope)
    product = (await session.exec(query)).first()
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {sku!r} not found")
    return product


@router.post(
    "/products",
    response_model=ProductOut,
    status_code=status.HTTP_201_CREATED,
    summary="Put a seller's product on sale (201; 200 when repeated as is; 409 when it differs)",
    responses={
        404: error_answer("the seller is not one the caller acts for"),
        409: error_answer("the SKU exists with other details, or belongs to another seller"),
    },
)
async def list_product(request: ProductIn, runtime: Runtime, response: Response, caller: SellerOrOperator) -> Product:
    if not caller.may_see_seller(request.seller_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"seller {request.seller_id!r} not found")
    try:
        async with runtime.unit_of_work() as uow:
            existing = await uow.session.get(Product, request.sku)
            if existing is not None and not caller.may_see_seller(existing.seller_id):
                raise CatalogError(f"SKU {request.sku!r} belongs to another seller", status=status.HTTP_409_CONFLICT)
            product, created = await commands.list_product(uow, request)
            outcome = "created" if created else "unchanged"
            audit_write(
                uow, caller, action="list_product", target_type="product", target_id=product.sku, outcome=outcome
            )
    except CatalogError as error:
        raise HTTPException(error.status, error.message) from error
    if not created:
        response.status_code = status.HTTP_200_OK
    return product
