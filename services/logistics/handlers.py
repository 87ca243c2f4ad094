"""logistics' event handlers. Each runs inside the consumer's unit of work.

Logistics ships only confirmed orders: `order_placed` is kept until `order_confirmed` (catalog
reserved the stock) creates one shipment per seller, or `order_cancelled` drops it; a cancellation
after that cancels the shipments not yet picked up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import cast

import structlog
from sqlmodel import col, select

from vuonminh.logistics import domain, first_mile, policy, queries
from vuonminh.logistics.carriers import CARRIERS
from vuonminh.logistics.models import AwaitingConfirmation, SellerCarrierPreference, Shipment
from vuonminh.logistics.settings import CarrierSettings
from vuonminh.shared.events import (
    DISPATCH_REQUESTED,
    Envelope,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderPlacedV2,
    ShipmentDispatched,
    ShipmentDispatchedV2,
    payload_class_for,
)
from vuonminh.shared.events.logistics import Carrier
from vuonminh.shared.inbox import BatchHandler
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class ConfirmationBeforePlacement(LookupError):
    """order_confirmed for an order this service never saw placed: a record error (dead-lettered)."""


async def on_orders_placed(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    """Placed orders, kept until confirmed: one query finds those kept already, one insert keeps the rest."""
    placed = [(envelope, envelope.data_as(OrderPlaced)) for envelope in envelopes]  # v2 (marketplaces) is a subclass
    query = select(AwaitingConfirmation.order_id).where(
        col(AwaitingConfirmation.order_id).in_({order.order_id for _, order in placed})
    )
    kept = set((await uow.session.exec(query)).all())
    now = utc_now()
    for envelope, order in placed:
        if order.order_id in kept:
            continue  # the same order placed again (a new version of a rejected one keeps its first content)
        kept.add(order.order_id)
        uow.session.add(
            AwaitingConfirmation(
                order_id=order.order_id,
                event_type=envelope.type,
                payload=order.model_dump_json(),
                status="awaiting",
                received_at=now,
            )
        )


ON_ORDERS_PLACED = BatchHandler(on_orders_placed)


async def on_order_confirmed(uow: UnitOfWork, envelope: Envelope) -> None:
    confirmed = envelope.data_as(OrderConfirmed)
    waiting = await uow.session.get(AwaitingConfirmation, confirmed.order_id, with_for_update=True)
    if waiting is None:
        raise ConfirmationBeforePlacement(f"order {confirmed.order_id} was confirmed but never placed here")
    if waiting.status != "awaiting":
        log.info("logistics.confirmation_ignored", order_id=confirmed.order_id, status=waiting.status)
        return
    order = await placed_order_of(uow, confirmed.order_id)
    assert order is not None
    waiting.status = "shipped"
    await _ship(uow, order)


async def on_order_cancelled(uow: UnitOfWork, envelope: Envelope) -> None:
    cancelled = envelope.data_as(OrderCancelled)
    waiting = await uow.session.get(AwaitingConfirmation, cancelled.order_id, with_for_update=True)
    if waiting is not None and waiting.status == "awaiting":
        waiting.status = "cancelled"
    now = utc_now()
    shipments = (
        await uow.session.exec(select(Shipment).where(Shipment.order_id == cancelled.order_id).with_for_update())
    ).all()
    for shipment in shipments:
        if not domain.cancellable(shipment.status):
            log.warning("logistics.cancel_too_late", shipment_id=shipment.id, status=shipment.status)
            continue
        if shipment.status == "needs_attention":
            shipment.status = "cancelled"  # never handed to a carrier: nobody outside knew of it
            continue
        uow.publish(shipment.move_to("cancelled", occurred_at=cancelled.cancelled_at, recorded_at=now))
        await first_mile.leave_pickup(uow, shipment)  # its slot in the courier's trip is free again


async def _ship(uow: UnitOfWork, order: OrderPlaced) -> None:
    recipient, address = order.buyer, order.buyer.address
    now = utc_now()
    profiles = policy.load_profiles(_carrier_settings().carrier_profiles)
    for plan in domain.plan_shipments(order):
        if await uow.session.get(Shipment, plan.shipment_id) is not None:
            continue
        preference = await uow.session.get(SellerCarrierPreference, plan.seller_id)
        choice = policy.choose(
            policy.Fulfilment(
                origin_province_code=plan.origin_province_code,
                origin_ward_code=plan.origin_ward_code,
                destination_province_code=address.province_code,
                weight_g=plan.weight_g,
                cod_amount_vnd=plan.cod_amount_vnd,
            ),
            profiles,
            pickups_today=await queries.pickups_today(uow.session, plan.origin_ward_code, now),
            preferred=preference.carrier if preference else None,
        )
        shipment = Shipment(
            id=plan.shipment_id,
            order_id=order.order_id,
            seller_id=plan.seller_id,
            # No carrier can take it: kept for a person, with the reason, and sent to nobody.
            carrier=choice.carrier or "none",
            status="created" if choice.carrier else "needs_attention",
            origin_province_code=plan.origin_province_code,
            origin_ward_code=plan.origin_ward_code,
            destination_province_code=address.province_code,
            destination_ward_code=address.ward_code,
            recipient_name=recipient.name,
            recipient_phone=recipient.phone,
            destination_line=address.line,
            weight_g=plan.weight_g,
            cod_amount_vnd=plan.cod_amount_vnd,
            items=[item.model_dump() for item in plan.items],
            created_at=now,
            reference=plan.shipment_id,
            status_at=now,
            quoted_fee_vnd=choice.fee_vnd,
            choice=choice.model_dump(),
        )
        uow.session.add(shipment)
        if choice.carrier is None:
            log.warning("logistics.no_carrier", shipment_id=plan.shipment_id, order_id=order.order_id, why=choice.why)
            continue
        await hand_over(uow, order, plan, shipment, cast(Carrier, choice.carrier), now)


async def hand_over(
    uow: UnitOfWork, order: OrderPlaced, plan: domain.ShipmentPlan, shipment: Shipment, carrier: Carrier, now: datetime
) -> None:
    """Tells everyone the shipment is the carrier's: the dispatch event, the carrier's create-order
    request on its own topic, then the seller's pickup for the window."""
    # A direct order's buyer fits v1; a marketplace order's (phone masked by the platform) needs v2.
    dispatched = ShipmentDispatchedV2 if isinstance(order, OrderPlacedV2) else ShipmentDispatched
    uow.publish(
        dispatched(
            shipment_id=plan.shipment_id,
            order_id=order.order_id,
            seller_id=plan.seller_id,
            carrier=carrier,
            origin_province_code=plan.origin_province_code,
            origin_ward_code=plan.origin_ward_code,
            recipient=order.buyer.model_dump(),
            items=plan.items,
            weight_g=plan.weight_g,
            cod_amount_vnd=plan.cod_amount_vnd,
            dispatched_at=now,
        )
    )
    uow.publish(
        DISPATCH_REQUESTED[carrier](
            shipment_id=plan.shipment_id,
            order_id=order.order_id,
            seller_id=plan.seller_id,
            carrier=carrier,
            reference=plan.shipment_id,
            create_order=CARRIERS[carrier].create_order(domain.parcel_of(order, plan)),
            requested_at=now,
        )
    )
    await first_mile.join_pickup(uow, shipment, now)


async def placed_order_of(uow: UnitOfWork, order_id: str) -> OrderPlaced | None:
    """The order as it was placed (kept since its confirmation was awaited)."""
    kept = await uow.session.get(AwaitingConfirmation, order_id)
    if kept is None:
        return None
    payload_class = payload_class_for(kept.event_type) or OrderPlacedV2
    order = payload_class.model_validate_json(kept.payload)
    assert isinstance(order, OrderPlaced)
    return order


@lru_cache(maxsize=1)
def _carrier_settings() -> CarrierSettings:
    # Handlers see the unit of work, not the runtime: the profiles' path comes from the environment, once.
    return CarrierSettings()
