"""orders' event handlers. Each runs inside the consumer's unit of work (see shared/inbox.py)."""

from __future__ import annotations

import structlog
from sqlmodel import col, select

from vuonminh.orders import domain
from vuonminh.orders.models import KnownProduct, KnownSeller, Order, OrderLineRow
from vuonminh.shared.events import Envelope, OrderPlaced, OrderReceived, ProductListed, SellerRegistered
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


async def on_seller_registered(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data_as(SellerRegistered)
    await uow.session.merge(
        KnownSeller(
            seller_id=event.seller_id, name=event.name, province_code=event.province_code, ward_code=event.ward_code
        )
    )


async def on_product_listed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data_as(ProductListed)
    await uow.session.merge(
        KnownProduct(sku=event.sku, seller_id=event.seller_id, name=event.name, unit_weight_g=event.unit_weight_g)
    )


async def on_order_received(uow: UnitOfWork, envelope: Envelope) -> None:
    received = envelope.data_as(OrderReceived)
    order_id = domain.order_id_for(received.channel, received.shop_id, received.order_id)
    if await uow.session.get(Order, order_id) is not None:
        # The shop sent this order again (with a different body, or the id would have matched
        # the inbox): the first accepted version stands.
        log.info("orders.duplicate_order_ignored", order_id=order_id, event_id=envelope.id)
        return
    skus = {item.sku for item in received.items}
    products = {
        p.sku: domain.CatalogProduct(sku=p.sku, name=p.name, seller_id=p.seller_id, unit_weight_g=p.unit_weight_g)
        for p in (await uow.session.exec(select(KnownProduct).where(col(KnownProduct.sku).in_(skus)))).all()
    }
    seller_ids = {p.seller_id for p in products.values()}
    sellers = {
        s.seller_id: domain.CatalogSeller(seller_id=s.seller_id, province_code=s.province_code, ward_code=s.ward_code)
        for s in (await uow.session.exec(select(KnownSeller).where(col(KnownSeller.seller_id).in_(seller_ids)))).all()
    }
    outcome = domain.decide(received, products=products, sellers=sellers)
    placed = isinstance(outcome, OrderPlaced)
    address = received.buyer.address
    uow.session.add(
        Order(
            id=order_id,
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            status="placed" if placed else "rejected",
            placed_at=received.placed_at,
            received_at=received.received_at,
            livestream_id=received.livestream_id,
            payment_method=received.payment_method,
            buyer_name=received.buyer.name,
            buyer_phone=received.buyer.phone,
            buyer_province_code=address.province_code,
            buyer_ward_code=address.ward_code,
            buyer_address_line=address.line,
            total_vnd=outcome.total_vnd if placed else 0,
            total_weight_g=outcome.total_weight_g if placed else 0,
            rejection_reasons=[] if placed else [r.model_dump() for r in outcome.reasons],
            created_at=utc_now(),
        )
    )
    if placed:
        await uow.session.flush()  # the order row before its lines (foreign key)
        for line_no, line in enumerate(outcome.lines, start=1):
            uow.session.add(OrderLineRow(order_id=order_id, line_no=line_no, **line.model_dump()))
    uow.publish(outcome)
    log.info(
        "orders.order_decided",
        order_id=order_id,
        status="placed" if placed else "rejected",
        correlation_id=envelope.correlation_id,
    )
