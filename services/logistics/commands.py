"""logistics' writes from its API (beside the handlers of events and the carriers' callbacks)."""

from __future__ import annotations

import uuid
from typing import cast

from sqlmodel import col, select

from vuonminh.logistics import domain, handlers
from vuonminh.logistics.models import (
    CodRemittance,
    Courier,
    CourierIn,
    RemittanceIn,
    RemittanceOut,
    SellerCarrierPreference,
    Shipment,
)
from vuonminh.shared.addresses import find_ward
from vuonminh.shared.events.logistics import Carrier
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


class CommandError(ValueError):
    """The request contradicts what is stored (422, with this message)."""


async def record_remittance(uow: UnitOfWork, remittance: RemittanceIn) -> RemittanceOut:
    """A carrier paid a seller the COD of these delivered shipments: the amount must be exactly what
    they collected and had not yet paid over, so the reconciliation stays true."""
    wanted = sorted(set(remittance.shipment_ids))
    shipments = (await uow.session.exec(select(Shipment).where(col(Shipment.id).in_(wanted)).with_for_update())).all()
    found = {shipment.id: shipment for shipment in shipments}
    if missing := [shipment_id for shipment_id in wanted if shipment_id not in found]:
        raise CommandError(f"shipment_ids: no such shipments {missing[:5]}")
    for shipment in shipments:
        if (shipment.carrier, shipment.seller_id) != (remittance.carrier, remittance.seller_id):
            raise CommandError(f"shipment_ids: {shipment.id} is not {remittance.seller_id}'s with {remittance.carrier}")
        if shipment.status != "delivered":
            raise CommandError(f"shipment_ids: {shipment.id} is {shipment.status}, not delivered")
    owed = sum(shipment.cod_collected_vnd - shipment.cod_remitted_vnd for shipment in shipments)
    if remittance.amount_vnd != owed:
        raise CommandError(
            f"amount_vnd: {remittance.amount_vnd} VND does not match the {owed} VND collected and not yet paid over"
        )
    for shipment in shipments:
        shipment.cod_remitted_vnd, shipment.cod_remitted_at = shipment.cod_collected_vnd, remittance.remitted_at
    row = CodRemittance(
        id=str(uuid.uuid4()),
        carrier=remittance.carrier,
        seller_id=remittance.seller_id,
        amount_vnd=remittance.amount_vnd,
        shipment_ids=wanted,
        remitted_at=remittance.remitted_at,
        recorded_at=utc_now(),
    )
    uow.session.add(row)
    return RemittanceOut.model_validate(row, from_attributes=True)


async def set_carrier_preference(uow: UnitOfWork, seller_id: str, carrier: str | None) -> None:
    current = await uow.session.get(SellerCarrierPreference, seller_id)
    if carrier is None:
        if current is not None:
            await uow.session.delete(current)
        return
    if current is None:
        uow.session.add(SellerCarrierPreference(seller_id=seller_id, carrier=carrier, updated_at=utc_now()))
    else:
        current.carrier, current.updated_at = carrier, utc_now()


async def register_courier(uow: UnitOfWork, courier: CourierIn) -> Courier:
    if unknown := [ward for ward in courier.ward_codes if find_ward(ward) is None]:
        raise CommandError(f"ward_codes: unknown 2025 ward codes {unknown[:5]}")
    row = await uow.session.get(Courier, courier.id)
    if row is None:
        row = Courier(**courier.model_dump(), updated_at=utc_now())
        uow.session.add(row)
    else:
        row.name, row.carrier, row.ward_codes = courier.name, courier.carrier, courier.ward_codes
        row.pickups_per_window, row.updated_at = courier.pickups_per_window, utc_now()
    return row


async def hand_to_carrier(uow: UnitOfWork, shipment_id: str, carrier: str, why: str) -> Shipment:
    """A person gives a shipment no carrier could take (needs_attention) to `carrier`, e.g. after
    arranging a truck for ten tonnes of tea: from then on it is dispatched like any other."""
    shipment = await uow.session.get(Shipment, shipment_id, with_for_update=True)
    if shipment is None:
        raise LookupError(f"shipment {shipment_id!r} not found")
    if shipment.status != "needs_attention":
        raise CommandError(
            f"shipment {shipment_id} is {shipment.status}: only a shipment that needs attention is handed over by hand"
        )
    order = await handlers.placed_order_of(uow, shipment.order_id)
    plan = next((p for p in domain.plan_shipments(order) if p.shipment_id == shipment_id), None) if order else None
    if order is None or plan is None:
        raise CommandError(f"shipment {shipment_id}: its order's content is no longer kept")
    now = utc_now()
    shipment.carrier, shipment.status, shipment.status_at = carrier, "created", now
    shipment.choice = {**(shipment.choice or {}), "carrier": carrier, "why": why}
    shipment.quoted_fee_vnd = None
    await handlers.hand_over(uow, order, plan, shipment, cast(Carrier, carrier), now)
    return shipment
