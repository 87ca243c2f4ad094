"""analytics' event handlers: each fact is written once (inbox + primary key)."""

from __future__ import annotations

from vuonminh.analytics import domain
from vuonminh.analytics.models import SellerOrderFact, ShipmentFact
from vuonminh.shared.events import Envelope, OrderPlaced, ShipmentDispatched
from vuonminh.shared.timeutil import vietnam_day
from vuonminh.shared.unit_of_work import UnitOfWork


async def on_order_placed(uow: UnitOfWork, envelope: Envelope) -> None:
    order = envelope.data_as(OrderPlaced)
    day = domain.order_day(order)
    for sale in domain.seller_sales(order):
        if await uow.session.get(SellerOrderFact, (order.order_id, sale.seller_id)) is None:
            uow.session.add(
                SellerOrderFact(
                    order_id=order.order_id,
                    seller_id=sale.seller_id,
                    ward_code=sale.ward_code,
                    province_code=sale.province_code,
                    day=day,
                    placed_at=order.placed_at,
                    livestream_id=order.livestream_id,
                    gmv_vnd=sale.gmv_vnd,
                    weight_g=sale.weight_g,
                )
            )


async def on_shipment_dispatched(uow: UnitOfWork, envelope: Envelope) -> None:
    shipment = envelope.data_as(ShipmentDispatched)
    if await uow.session.get(ShipmentFact, shipment.shipment_id) is None:
        uow.session.add(
            ShipmentFact(
                shipment_id=shipment.shipment_id,
                order_id=shipment.order_id,
                seller_id=shipment.seller_id,
                ward_code=shipment.origin_ward_code,
                carrier=shipment.carrier,
                day=vietnam_day(shipment.dispatched_at),
                weight_g=shipment.weight_g,
            )
        )
