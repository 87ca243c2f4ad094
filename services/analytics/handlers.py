"""analytics' event handlers: each event becomes one or two set-based statements.

The inbox applies every event once (by event id). Facts are inserted with ON CONFLICT DO NOTHING
and later events only set flags or fill milestone times, so replaying the topics in any
interleaving (a rebuild reads one topic after another) ends in the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, case, or_, select, update
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
    OrderPlacedV2,
    OrderRejected,
    OrderRejectedV2,
    OrderRejectedV3,
    ProductListed,
    SellerRegistered,
    ShipmentDispatched,
    ShipmentDispatchedV2,
    ShipmentStatusChanged,
    payload_class_for,
)
from vuonminh.shared.inbox import BatchHandler
from vuonminh.shared.timeutil import vietnam_day
from vuonminh.shared.unit_of_work import UnitOfWork

SELLER_ORDERS: Table = SellerOrderFact.__table__  # type: ignore[assignment]
ORDER_LINES: Table = OrderLineFact.__table__  # type: ignore[assignment]
SHIPMENTS: Table = ShipmentFact.__table__  # type: ignore[assignment]


_STATEMENTS: dict[tuple, Any] = {}


def _upsert_statement(
    dialect: str,
    table: Table,
    update_columns: Sequence[str],
    set_: Callable[[Any], Mapping[str, Any]] | None,
    where: Callable[[Any], ColumnElement[bool]] | None,
) -> Any:
    """INSERT ... ON CONFLICT on the primary key (DO NOTHING, or DO UPDATE of `update_columns` from
    the new row and `set_`, expressions over `excluded`), built once and reused, so that SQLAlchemy
    compiles it once."""
    key = (dialect, table.name, tuple(update_columns), set_, where)
    if key not in _STATEMENTS:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
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
        _STATEMENTS[key] = statement
    return _STATEMENTS[key]


async def _upsert(
    uow: UnitOfWork,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update_columns: Sequence[str] = (),
    set_: Callable[[Any], Mapping[str, Any]] | None = None,
    where: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """Upserts `rows` with one statement run over all of them (executemany: the driver sends the
    rows in batches; rows with the same key are applied in order, the later one last)."""
    if rows:
        statement = _upsert_statement(uow.session.get_bind().dialect.name, table, update_columns, set_, where)
        await _many(uow, statement, rows)


async def _many(uow: UnitOfWork, statement: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    connection = await uow.session.connection()
    await connection.execute(statement, list(rows))


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
    await _upsert(uow, SELLER_ORDERS, facts)
    await _upsert(uow, ORDER_LINES, lines)
    # A return read before its order (the shipments topic replayed first) still takes it out.
    order_ids = [order.order_id for order in orders]
    returned = select(SHIPMENTS.c.order_id, SHIPMENTS.c.seller_id).where(
        SHIPMENTS.c.order_id.in_(order_ids), SHIPMENTS.c.returned_at.is_not(None)
    )
    pairs = (await uow.session.exec(returned)).all()
    if pairs:
        await _many(uow, MARK_RETURNED, [{"b_order_id": o, "b_seller_id": s} for o, s in pairs])


# Statements run once per event of a run (executemany), each compiled once.
MARK_CONFIRMED = (
    update(SELLER_ORDERS)
    .where(SELLER_ORDERS.c.order_id == bindparam("b_order_id"))
    .values(confirmed_at=bindparam("b_confirmed_at"))
)
MARK_CANCELLED = update(SELLER_ORDERS).where(SELLER_ORDERS.c.order_id == bindparam("b_order_id")).values(cancelled=True)
MARK_RETURNED = (
    update(SELLER_ORDERS)
    .where(SELLER_ORDERS.c.order_id == bindparam("b_order_id"), SELLER_ORDERS.c.seller_id == bindparam("b_seller_id"))
    .values(returned=True)
)


async def _orders_confirmed(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    events = [envelope.data_as(OrderConfirmed) for envelope in envelopes]
    await _many(uow, MARK_CONFIRMED, [{"b_order_id": e.order_id, "b_confirmed_at": e.confirmed_at} for e in events])


async def _orders_cancelled(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    # order_rejected v1 was published instead of order_placed (nothing to take out); v2 follows it
    # after the stock step refused it. Cancelled or rejected, the order leaves the totals.
    order_ids = []
    for envelope in envelopes:
        event = envelope.data
        assert isinstance(event, OrderCancelled | OrderRejected | OrderRejectedV2)
        order_ids.append({"b_order_id": event.order_id})
    await _many(uow, MARK_CANCELLED, order_ids)


# -- logistics.shipments ---------------------------------------------------------------------

DISPATCH_COLUMNS = (
    "order_id",
    "seller_id",
    "ward_code",
    "carrier",
    "day",
    "weight_g",
    "dispatched_at",
    "cod_amount_vnd",
)


async def _shipments_dispatched(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    rows = []
    for envelope in envelopes:
        shipment = envelope.data_as(ShipmentDispatched)  # its recipient (the buyer) is not kept
        rows.append(
            {
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
                "status_at": None,
                **{column: None for column in MILESTONES.values()},
                "shipping_fee_vnd": None,
                "cod_collected_vnd": None,
            }
        )
    await _upsert(uow, SHIPMENTS, rows, update_columns=DISPATCH_COLUMNS)


MILESTONES = {"picked_up": "picked_up_at", "delivered": "delivered_at", "returned": "returned_at"}


def _status_changes(new: Any) -> dict[str, Any]:
    current = SHIPMENTS.c
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


async def _shipment_statuses(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    rows, returned = [], []
    for envelope in envelopes:
        event = envelope.data_as(ShipmentStatusChanged)
        row: dict[str, Any] = {
            "shipment_id": event.shipment_id,
            "order_id": event.order_id,
            "seller_id": event.seller_id,
            "carrier": event.carrier,
            "ward_code": None,
            "day": None,
            "weight_g": 0,
            "dispatched_at": None,
            "cod_amount_vnd": 0,
            "status": event.status,
            "status_at": event.occurred_at,
            "shipping_fee_vnd": event.shipping_fee_vnd,
            "cod_collected_vnd": event.cod_collected_vnd,
            **{column: None for column in MILESTONES.values()},
        }
        if event.status in MILESTONES:
            row[MILESTONES[event.status]] = event.occurred_at
        rows.append(row)
        if event.status == "returned":
            # The parcel came back: its kg, items and value leave the seller's sales.
            returned.append({"b_order_id": event.order_id, "b_seller_id": event.seller_id})
    await _upsert(uow, SHIPMENTS, rows, set_=_status_changes)
    if returned:
        await _many(uow, MARK_RETURNED, returned)


def _coalesce(first: Any, second: Any) -> Any:
    return case((first.is_not(None), first), else_=second)


def _first(current: Any, new: Any) -> Any:
    return case((current.is_(None), new), (new.is_(None), current), (new < current, new), else_=current)


# -- catalog and livestreams -----------------------------------------------------------------


# seller_registered.v2 (catalog's sellers issue: `trader` joins the kinds) carries the same fields.
SELLER_REGISTERED_V2 = "vuonminh.catalog.seller_registered.v2"


async def _sellers_registered(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    fields = {"seller_id", "name", "kind", "province_code", "ward_code"}
    rows = [envelope.data.model_dump(include=fields) for envelope in envelopes]
    await _upsert(uow, SellerRow.__table__, rows, update_columns=("name", "kind", "province_code", "ward_code"))


PRODUCT_COLUMNS = ("seller_id", "name", "ocop_stars", "ocop_certificate_expires_on")


async def _products_listed(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    rows = []
    for envelope in envelopes:
        product = envelope.data_as(ProductListed)
        rows.append({"sku": product.sku, **{name: getattr(product, name) for name in PRODUCT_COLUMNS}})
    await _upsert(uow, ProductRow.__table__, rows, update_columns=PRODUCT_COLUMNS)


def _newer_listing(new: Any) -> ColumnElement[bool]:
    return new.published_at >= ListingRow.__table__.c.published_at


async def _listings_published(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    rows = []
    for envelope in envelopes:
        listing = envelope.data_as(ListingPublished)
        rows.append(
            {
                "sku": listing.sku,
                "channel": listing.channel,
                "platform_sku": listing.platform_sku,
                "active": listing.active,
                "published_at": listing.published_at,
            }
        )
    # The latest publication wins, whatever order the events come in.
    await _upsert(uow, ListingRow.__table__, rows, update_columns=("active", "published_at"), where=_newer_listing)


LIVESTREAM_COLUMNS = ("seller_id", "channel", "shop_id", "title", "starts_at", "ends_at")


async def _livestreams_scheduled(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    rows = []
    for envelope in envelopes:
        stream = envelope.data_as(LivestreamScheduled)
        rows.append({"livestream_id": stream.livestream_id, **{c: getattr(stream, c) for c in LIVESTREAM_COLUMNS}})
    await _upsert(uow, LivestreamRow.__table__, rows, update_columns=LIVESTREAM_COLUMNS)


# -- one handler for every event analytics reads ---------------------------------------------

# A batch's events are applied kind by kind in this order, each kind with one statement run over
# its events. It is safe because an event never needs one that comes after it in this order: an
# order's cancellation follows its placement in the log (one key, one partition), a parcel's status
# follows its dispatch or is upserted without it, and a return read before its order is looked up
# when the order comes (see on_orders_placed).
PHASES: tuple[tuple[tuple[str, ...], Callable[[UnitOfWork, Sequence[Envelope]], Any]], ...] = (
    ((SellerRegistered.TYPE, SELLER_REGISTERED_V2), _sellers_registered),
    ((ProductListed.TYPE,), _products_listed),
    ((ListingPublished.TYPE,), _listings_published),
    ((LivestreamScheduled.TYPE,), _livestreams_scheduled),
    # v2 (marketplace orders) is a subclass of v1: the same code reads both.
    ((OrderPlaced.TYPE, OrderPlacedV2.TYPE), on_orders_placed),
    ((OrderConfirmed.TYPE,), _orders_confirmed),
    ((OrderCancelled.TYPE, OrderRejected.TYPE, OrderRejectedV2.TYPE, OrderRejectedV3.TYPE), _orders_cancelled),
    ((ShipmentDispatched.TYPE, ShipmentDispatchedV2.TYPE), _shipments_dispatched),
    ((ShipmentStatusChanged.TYPE,), _shipment_statuses),
)
# The types this code knows (a version declared by a branch not merged yet is left out until it is).
EVENT_TYPES = tuple(t for types, _apply in PHASES for t in types if payload_class_for(t) is not None)


async def apply_events(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    by_type: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        by_type.setdefault(envelope.type, []).append(envelope)
    for types, apply in PHASES:
        events = [envelope for event_type in types for envelope in by_type.get(event_type, ())]
        if events:
            await apply(uow, events)


# Registered for every type (service.py): the inbox hands a batch's consecutive events of one
# BatchHandler over in one call, so a poll of mixed events is one call, not one per event.
APPLY = BatchHandler(apply_events)
