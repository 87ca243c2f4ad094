"""logistics' read queries: what the API shows, filtered by the caller's scope in the query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, case, false, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.logistics.models import CarrierCallbackRecord, CodLine, Pickup, Shipment
from vuonminh.shared.auth import Caller, Role
from vuonminh.shared.timeutil import VIETNAM_TZ


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


async def callbacks(
    session: AsyncSession, carrier: str, *, outcome: str | None, shipment_id: str | None, limit: int, offset: int
) -> Sequence[CarrierCallbackRecord]:
    query = select(CarrierCallbackRecord).where(CarrierCallbackRecord.carrier == carrier)
    if outcome:
        query = query.where(CarrierCallbackRecord.outcome == outcome)
    if shipment_id:
        query = query.where(CarrierCallbackRecord.shipment_id == shipment_id)
    query = query.order_by(col(CarrierCallbackRecord.id).desc()).limit(limit).offset(offset)
    return (await session.exec(query)).all()


def vietnam_days(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in Vietnam time, as UTC-aware bounds."""
    start = datetime.combine(first, time(), VIETNAM_TZ)
    return start, datetime.combine(last + timedelta(days=1), time(), VIETNAM_TZ)


async def cod_reconciliation(
    session: AsyncSession, caller: Caller, first: date, last: date, *, seller_id: str | None, carrier: str | None
) -> list[CodLine]:
    """Per seller and carrier, shipments created in the period: COD to collect, collected, remitted, still
    owed by the carrier to the seller, and the carriers' fees."""
    start, end = vietnam_days(first, last)
    live = Shipment.status != "cancelled"
    query = (
        select(
            Shipment.seller_id,
            Shipment.carrier,
            func.count(),
            func.sum(Shipment.cod_amount_vnd),
            func.sum(Shipment.cod_collected_vnd),
            func.sum(Shipment.cod_remitted_vnd),
            func.sum(func.coalesce(Shipment.shipping_fee_vnd, 0)),
            func.sum(case((Shipment.status == "delivered", 1), else_=0)),
        )
        .where(col(Shipment.created_at) >= start, col(Shipment.created_at) < end, live)
        .group_by(Shipment.seller_id, Shipment.carrier)
        .order_by(Shipment.seller_id, Shipment.carrier)
    )
    if (scope := visible_shipments(caller)) is not None:
        query = query.where(scope)
    if seller_id:
        query = query.where(Shipment.seller_id == seller_id)
    if carrier:
        query = query.where(Shipment.carrier == carrier)
    return [
        CodLine(
            seller_id=seller,
            carrier=carrier_name,
            shipments=count,
            delivered=int(delivered or 0),
            cod_to_collect_vnd=int(to_collect or 0),
            cod_collected_vnd=int(collected or 0),
            cod_remitted_vnd=int(remitted or 0),
            owed_to_seller_vnd=int((collected or 0) - (remitted or 0)),
            shipping_fees_vnd=int(fees or 0),
        )
        for seller, carrier_name, count, to_collect, collected, remitted, fees, delivered in (
            await session.exec(query)  # type: ignore[call-overload]
        ).all()
    ]


async def pickups_today(session: AsyncSession, ward_code: str, now: datetime) -> dict[str, int]:
    """Shipments each carrier has been given today (Vietnam day) at this pickup commune."""
    local_day = now.astimezone(VIETNAM_TZ).date()
    start, end = vietnam_days(local_day, local_day)
    query = (
        select(Shipment.carrier, func.count())
        .where(
            Shipment.origin_ward_code == ward_code, col(Shipment.created_at) >= start, col(Shipment.created_at) < end
        )
        .group_by(Shipment.carrier)
    )
    return {carrier: count for carrier, count in (await session.exec(query)).all()}  # type: ignore[call-overload]


async def pickups(
    session: AsyncSession,
    caller: Caller,
    *,
    seller_id: str | None,
    courier_id: str | None,
    window_date: date | None,
    unassigned: bool,
    limit: int,
    offset: int,
) -> Sequence[Pickup]:
    query = select(Pickup).where(Pickup.status == "open")
    if caller.role is Role.seller:
        query = query.where(col(Pickup.seller_id).in_(caller.seller_ids))
    elif caller.role is Role.carrier:
        query = query.where(Pickup.carrier == caller.carrier)
    if seller_id:
        query = query.where(Pickup.seller_id == seller_id)
    if courier_id:
        query = query.where(Pickup.courier_id == courier_id)
    if window_date:
        query = query.where(Pickup.window_date == window_date)
    if unassigned:
        query = query.where(col(Pickup.courier_id).is_(None))
    query = (
        query.order_by(col(Pickup.window_date), col(Pickup.window).desc(), col(Pickup.id)).limit(limit).offset(offset)
    )
    return (await session.exec(query)).all()
