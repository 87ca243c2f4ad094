"""analytics' event handlers: each event becomes one or two set-based statements.

The inbox applies every event once (by event id). Facts are inserted with ON CONFLICT DO NOTHING
and later events only set flags or fill milestone times, so replaying the topics in any
interleaving (a rebuild reads one topic after another) ends in the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from vuonminh.analytics import domain
from vuonminh.analytics.models import (
    ListingRow,
    LivestreamRow,
    OrderLineFact,
    ProductRow,
    SellerOrderFact,
    SellerRow,
    ShipmentFact,
)
from vuonminh.shared.events import (
    Envelope,
    ListingPublished,
    LivestreamScheduled,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    OrderRejectedV2,
    ProductListed,
    SellerRegistered,
    ShipmentDispatched,
    ShipmentStatusChanged,
)
from vuonminh.shared.inbox import BatchHandler
from vuonminh.shared.timeutil import vietnam_day
from vuonminh.shared.unit_of_work import UnitOfWork

SELLER_ORDERS: Table = SellerOrderFact.__table__  # type: ignore[assignment]
ORDER_LINES: Table = OrderLineFact.__table__  # type: ignore[assignment]
SHIPMENTS: Table = ShipmentFact.__table__  # type: ignore[assignment]


async def _upsert(
    uow: UnitOfWork,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update_columns: Sequence[str] = (),
    set_: Callable[[Any], Mapping[str, Any]] | None = None,
    where: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """One multi-row INSERT ... ON CONFLICT on the primary key: DO NOTHING, or DO UPDATE of
    `update_columns` (taken from the new row) and `set_` (expressions over `excluded`)."""
    if not rows:
        return
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(list(rows))
    keys = [c.name for c in table.primary_key.columns]
    changes = {name: statement.excluded[name] for name in update_columns}
    if set_ is not None:
        changes.update(set_(statement.excluded))
    if changes:
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_=changes, where=where(statement.excluded) if where else None
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    await uow.session.exec(statement)


# -- orders.orders ---------------------------------------------------------------------------


async def on_orders_placed(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    """A run of orders (a livestream brings thousands a minute): one multi-row insert per table."""
    orders = [envelope.data_as(OrderPlaced) for envelope in envelopes]
    facts, lines = [], []
    for order in orders:
        day = domain.order_day(order)
        facts += [
            {
                "order_id": order.order_id,
                "seller_id": sale.seller_id,
                "ward_code": sale.ward_code,
                "province_code": sale.province_code,
                "day": day,
                "placed_at": order.placed_at,
                "livestream_id": order.livestream_id,
                "gmv_vnd": sale.gmv_vnd,
                "weight_g": sale.weight_g,
                "items": sale.items,
                "channel": order.channel,
                "shop_id": order.shop_id,
                "cancelled": False,
                "returned": False,
            }
            for sale in domain.seller_sales(order)
        ]
        lines += [
            {
                "order_id": order.order_id,
                "line_no": number,
                "seller_id": line.seller_id,
                "sku": line.sku,
                "product_name": line.product_name[:200],
                "ward_code": line.seller_ward_code,
                "province_code": line.seller_province_code,
                "day": day,
                "quantity": line.quantity,
                "gmv_vnd": line.line_total_vnd,
                "weight_g": line.line_weight_g,
            }
            for number, line in enumerate(order.lines)
        ]
    # Bounded statements: SQLite takes at most 32,766 parameters in one.
    for chunk in range(0, len(facts), 1000):
        await _upsert(uow, SELLER_ORDERS, facts[chunk : chunk + 1000])
    for chunk in range(0, len(lines), 1000):
        await _upsert(uow, ORDER_LINES, lines[chunk : chunk + 1000])
    # A return read before its order (the shipments topic replayed first) still takes it out.
    order_ids = [order.order_id for order in orders]
    returned = select(SHIPMENTS.c.order_id, SHIPMENTS.c.seller_id).where(
        SHIPMENTS.c.order_id.in_(order_ids), SHIPMENTS.c.returned_at.is_not(None)
    )
    pairs = (await uow.session.exec(returned)).all()
    for order_id, seller_id in pairs:
        await uow.session.exec(
            update(SELLER_ORDERS)
            .where(SELLER_ORDERS.c.order_id == order_id, SELLER_ORDERS.c.seller_id == seller_id)
            .values(returned=True)
        )


on_order_placed = BatchHandler(on_orders_placed)


async def on_order_confirmed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data_as(OrderConfirmed)
    await uow.session.exec(
        update(SELLER_ORDERS).where(SELLER_ORDERS.c.order_id == event.order_id).values(confirmed_at=event.confirmed_at)
    )


async def _take_out_of_totals(uow: UnitOfWork, order_id: str) -> None:
    await uow.session.exec(update(SELLER_ORDERS).where(SELLER_ORDERS.c.order_id == order_id).values(cancelled=True))


async def on_order_cancelled(uow: UnitOfWork, envelope: Envelope) -> None:
    await _take_out_of_totals(uow, envelope.data_as(OrderCancelled).order_id)


async def on_order_rejected(uow: UnitOfWork, envelope: Envelope) -> None:
    # v1 was published instead of order_placed (nothing to take out); v2 follows it after the
    # stock step refused it. Either way the order leaves the totals.
    event = envelope.data
    assert isinstance(event, OrderRejected | OrderRejectedV2)
    await _take_out_of_totals(uow, event.order_id)


# -- logistics.shipments ---------------------------------------------------------------------


async def on_shipment_dispatched(uow: UnitOfWork, envelope: Envelope) -> None:
    shipment = envelope.data_as(ShipmentDispatched)  # its recipient (the buyer) is not kept
    row = {
        "shipment_id": shipment.shipment_id,
        "order_id": shipment.order_id,
        "seller_id": shipment.seller_id,
        "ward_code": shipment.origin_ward_code,
        "carrier": shipment.carrier,
        "day": vietnam_day(shipment.dispatched_at),
        "weight_g": shipment.weight_g,
        "dispatched_at": shipment.dispatched_at,
        "cod_amount_vnd": shipment.cod_amount_vnd,
        "status": "created",
    }
    dispatch_columns = ("order_id", "seller_id", "ward_code", "carrier", "day", "weight_g", "dispatched_at")
    await _upsert(uow, SHIPMENTS, [row], update_columns=(*dispatch_columns, "cod_amount_vnd"))


MILESTONES = {"picked_up": "picked_up_at", "delivered": "delivered_at", "returned": "returned_at"}


async def on_shipment_status_changed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data_as(ShipmentStatusChanged)
    row: dict[str, Any] = {
        "shipment_id": event.shipment_id,
        "order_id": event.order_id,
        "seller_id": event.seller_id,
        "carrier": event.carrier,
        "status": event.status,
        "status_at": event.occurred_at,
        "shipping_fee_vnd": event.shipping_fee_vnd,
        "cod_collected_vnd": event.cod_collected_vnd,
        **{column: None for column in MILESTONES.values()},
    }
    if event.status in MILESTONES:
        row[MILESTONES[event.status]] = event.occurred_at
    current = SHIPMENTS.c

    def changes(new: Any) -> dict[str, Any]:
        newer = or_(current.status_at.is_(None), new.status_at >= current.status_at)
        return {
            # The latest state as the carrier dates it wins: a late callback changes no state.
            "status": case((newer, new.status), else_=current.status),
            "status_at": case((newer, new.status_at), else_=current.status_at),
            # A milestone keeps the first time it was reported.
            **{column: _first(current[column], new[column]) for column in MILESTONES.values()},
            "shipping_fee_vnd": _coalesce(new.shipping_fee_vnd, current.shipping_fee_vnd),
            "cod_collected_vnd": _coalesce(new.cod_collected_vnd, current.cod_collected_vnd),
        }

    await _upsert(uow, SHIPMENTS, [row], set_=changes)
    if event.status == "returned":
        # The parcel came back: its kg, items and value leave the seller's sales.
        await uow.session.exec(
            update(SELLER_ORDERS)
            .where(and_(SELLER_ORDERS.c.order_id == event.order_id, SELLER_ORDERS.c.seller_id == event.seller_id))
            .values(returned=True)
        )


def _coalesce(first: Any, second: Any) -> Any:
    return case((first.is_not(None), first), else_=second)


def _first(current: Any, new: Any) -> Any:
    return case((current.is_(None), new), (new.is_(None), current), (new < current, new), else_=current)


# -- catalog and livestreams -----------------------------------------------------------------


async def on_seller_registered(uow: UnitOfWork, envelope: Envelope) -> None:
    seller = envelope.data_as(SellerRegistered)
    row = seller.model_dump(include={"seller_id", "name", "kind", "province_code", "ward_code"})
    await _upsert(uow, SellerRow.__table__, [row], update_columns=("name", "kind", "province_code", "ward_code"))


async def on_product_listed(uow: UnitOfWork, envelope: Envelope) -> None:
    product = envelope.data_as(ProductListed)
    row = {
        "sku": product.sku,
        "seller_id": product.seller_id,
        "name": product.name,
        "ocop_stars": product.ocop_stars,
        "ocop_certificate_expires_on": product.ocop_certificate_expires_on,
    }
    await _upsert(uow, ProductRow.__table__, [row], update_columns=tuple(k for k in row if k != "sku"))


async def on_listing_published(uow: UnitOfWork, envelope: Envelope) -> None:
    listing = envelope.data_as(ListingPublished)
    row = {
        "sku": listing.sku,
        "channel": listing.channel,
        "platform_sku": listing.platform_sku,
        "active": listing.active,
        "published_at": listing.published_at,
    }
    table: Table = ListingRow.__table__  # type: ignore[assignment]
    await _upsert(
        uow,
        table,
        [row],
        update_columns=("active", "published_at"),
        where=lambda new: new.published_at >= table.c.published_at,  # the latest publication wins
    )


async def on_livestream_scheduled(uow: UnitOfWork, envelope: Envelope) -> None:
    session = envelope.data_as(LivestreamScheduled)
    row = session.model_dump(include={"livestream_id", "seller_id", "channel", "shop_id", "title"})
    row |= {"starts_at": session.starts_at, "ends_at": session.ends_at}
    await _upsert(uow, LivestreamRow.__table__, [row], update_columns=tuple(k for k in row if k != "livestream_id"))
