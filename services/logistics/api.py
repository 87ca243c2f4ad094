"""logistics' HTTP API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import ColumnElement, false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.logistics.models import Shipment, ShipmentOut
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, session_of
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.paging import Limit, Offset
from vuonminh.shared.privacy import buyer_out

router = APIRouter(prefix="/v1", tags=["logistics"])
Session = Annotated[AsyncSession, Depends(session_of("logistics"))]
# Who reads shipments: a seller its own, a carrier those it carries, officials their communes' sellers'.
Reader = Annotated[Caller, Depends(require(Role.seller, Role.carrier, Role.commune_official, Role.province_official))]


def visible_shipments(caller: Caller) -> ColumnElement[bool] | None:
    """The shipments `caller` may see, as a condition on Shipment (None: all of them)."""
    if caller.is_operator:
        return None
    if caller.role is Role.seller:
        return col(Shipment.seller_id).in_(caller.seller_ids)
    if caller.role is Role.carrier:
        return Shipment.carrier == caller.carrier if caller.carrier else false()
    if caller.role is Role.commune_official:
        return col(Shipment.origin_ward_code).in_(caller.ward_codes)
    if caller.role is Role.province_official:
        return col(Shipment.origin_province_code).in_(caller.province_codes)
    return false()


def _shipments_out(shipments: Sequence[Shipment], caller: Caller) -> list[ShipmentOut]:
    # The recipient is shown to the operator, the selling seller and the carrier delivering it.
    reveal = caller.role in (Role.operator, Role.seller, Role.carrier)
    return [
        ShipmentOut(
            **shipment.model_dump(exclude={"recipient_name", "recipient_phone", "destination_line"}),
            recipient=buyer_out(
                name=shipment.recipient_name,
                phone=shipment.recipient_phone,
                province_code=shipment.destination_province_code,
                ward_code=shipment.destination_ward_code,
                line=shipment.destination_line,
                reveal=reveal,
            ),
        )
        for shipment in shipments
    ]


@router.get("/shipments", response_model=list[ShipmentOut], summary="Shipments, by order or seller")
async def list_shipments(
    session: Session,
    caller: Reader,
    order_id: str | None = None,
    seller_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ShipmentOut]:
    query = select(Shipment).order_by(col(Shipment.created_at).desc(), col(Shipment.id)).limit(limit).offset(offset)
    if (scope := visible_shipments(caller)) is not None:
        query = query.where(scope)
    if order_id:
        query = query.where(Shipment.order_id == order_id)
    if seller_id:
        query = query.where(Shipment.seller_id == seller_id)
    return _shipments_out((await session.exec(query)).all(), caller)


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_shipment(shipment_id: str, session: Session, caller: Reader) -> ShipmentOut:
    query = select(Shipment).where(Shipment.id == shipment_id)
    if (scope := visible_shipments(caller)) is not None:
        query = query.where(scope)
    shipment = (await session.exec(query)).first()
    if shipment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"shipment {shipment_id!r} not found")
    return _shipments_out([shipment], caller)[0]
