"""logistics' event handlers. Each runs inside the consumer's unit of work."""

from __future__ import annotations

from vuonminh.logistics import domain
from vuonminh.logistics.models import Shipment
from vuonminh.shared.events import Envelope, OrderPlaced, ShipmentDispatched
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork


async def on_order_placed(uow: UnitOfWork, envelope: Envelope) -> None:
    order = envelope.data_as(OrderPlaced)
    recipient, address = order.buyer, order.buyer.address
    now = utc_now()
    for plan in domain.plan_shipments(order):
        if await uow.session.get(Shipment, plan.shipment_id) is not None:
            continue
        uow.session.add(
            Shipment(
                id=plan.shipment_id,
                order_id=order.order_id,
                seller_id=plan.seller_id,
                carrier=plan.carrier,
                status="dispatched",
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
            )
        )
        uow.publish(
            ShipmentDispatched(
                shipment_id=plan.shipment_id,
                order_id=order.order_id,
                seller_id=plan.seller_id,
                carrier=plan.carrier,
                origin_province_code=plan.origin_province_code,
                origin_ward_code=plan.origin_ward_code,
                recipient=recipient,
                items=plan.items,
                weight_g=plan.weight_g,
                cod_amount_vnd=plan.cod_amount_vnd,
                dispatched_at=now,
            )
        )
