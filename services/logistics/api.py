"""logistics' HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.logistics.models import Shipment, ShipmentOut
from vuonminh.shared.app import session_of

router = APIRouter(prefix="/v1", tags=["logistics"])
Session = Annotated[AsyncSession, Depends(session_of("logistics"))]


@router.get("/shipments", response_model=list[ShipmentOut], summary="Shipments, by order or seller")
async def list_shipments(
    session: Session,
    order_id: str | None = None,
    seller_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Shipment]:
    query = select(Shipment).order_by(col(Shipment.created_at).desc(), col(Shipment.id)).limit(limit).offset(offset)
    if order_id:
        query = query.where(Shipment.order_id == order_id)
    if seller_id:
        query = query.where(Shipment.seller_id == seller_id)
    return list((await session.exec(query)).all())


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut)
async def get_shipment(shipment_id: str, session: Session) -> Shipment:
    shipment = await session.get(Shipment, shipment_id)
    if shipment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"shipment {shipment_id!r} not found")
    return shipment
