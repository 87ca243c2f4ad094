"""orders' event handlers, and the sweep that decides orders left waiting for the catalog.

Each handler runs inside the consumer's unit of work (see shared/inbox.py): what it stores and
the events it publishes commit together.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import domain
from vuonminh.orders.metrics import ORDER_CONFLICTS, ORDERS_AWAITING_CATALOG
from vuonminh.orders.models import KnownProduct, KnownSeller, Order, OrderCatalogWait, OrderLineRow
from vuonminh.shared.events import (
    Buyer,
    BuyerAddress,
    Envelope,
    OrderItem,
    OrderPlaced,
    OrderReceived,
    ProductListed,
    SellerRegistered,
    SellerRegisteredV2,
)
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

AWAITING = "awaiting_catalog"
# Parked orders looked at per sweep pass; the oldest first.
SWEEP_BATCH = 500


async def on_seller_registered(uow: UnitOfWork, envelope: Envelope) -> None:
    # v1 and v2 carry the same fields orders keeps (v2 changed only the kinds).
    event = envelope.data_as(SellerRegisteredV2 if envelope.type == SellerRegisteredV2.TYPE else SellerRegistered)
    await uow.session.merge(
        KnownSeller(
            seller_id=event.seller_id, name=event.name, province_code=event.province_code, ward_code=event.ward_code
        )
    )
    await _resume_orders_waiting_for(uow, kind="seller", ref=event.seller_id)


async def on_product_listed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data_as(ProductListed)
    await uow.session.merge(
        KnownProduct(sku=event.sku, seller_id=event.seller_id, name=event.name, unit_weight_g=event.unit_weight_g)
    )
    await _resume_orders_waiting_for(uow, kind="sku", ref=event.sku)


async def on_order_received(uow: UnitOfWork, envelope: Envelope) -> None:
    received = envelope.data_as(OrderReceived)
    # By the shop's identity, not by our derived id: orders stored before the id derivation
    # changed keep the id they were given.
    order = await find_order(uow.session, received.channel, received.shop_id, received.order_id, lock=True)
    if order is not None:
        differs = domain.differences(domain.order_content(received_from(order)), domain.order_content(received))
        if order.status == "placed":
            if differs:
                _record_conflict(order, envelope, received, differs)
            else:
                log.info("orders.same_order_again", order_id=order.id, event_id=envelope.id)
            return
        if order.status == AWAITING and not differs:
            log.info("orders.same_order_again", order_id=order.id, event_id=envelope.id)
            return
        # Not placed (rejected, or still waiting for the catalog): the shop's new version replaces it.
        log.info("orders.order_replaced", order_id=order.id, previous_status=order.status, event_id=envelope.id)
        _take_version(order, received, envelope)
    else:
        order = Order(
            id=domain.order_id_for(received.channel, received.shop_id, received.order_id),
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            status=AWAITING,
            total_vnd=0,
            total_weight_g=0,
            created_at=utc_now(),
            **_version_fields(received, envelope),
        )
        uow.session.add(order)
    await _decide(uow, order, received)


# -- looking orders up ------------------------------------------------------------------------------------
async def find_order(
    session: AsyncSession, channel: str, shop_id: str, external_order_id: str, *, lock: bool = False
) -> Order | None:
    query = select(Order).where(
        Order.channel == channel, Order.shop_id == shop_id, Order.external_order_id == external_order_id
    )
    if lock:
        # Another replica (or the sweep) may be deciding it: the second waits, then sees the result.
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.exec(query)).first()


async def _locked_order(session: AsyncSession, order_id: str) -> Order | None:
    query = select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    return (await session.exec(query)).first()


def received_from(order: Order) -> OrderReceived:
    """The stored version of an order, as the shop sent it."""
    return OrderReceived(
        channel=order.channel,  # type: ignore[arg-type]
        shop_id=order.shop_id,
        order_id=order.external_order_id,
        placed_at=order.placed_at,
        livestream_id=order.livestream_id,
        buyer=Buyer(
            name=order.buyer_name,
            phone=order.buyer_phone,
            address=BuyerAddress(
                province_code=order.buyer_province_code, ward_code=order.buyer_ward_code, line=order.buyer_address_line
            ),
        ),
        items=tuple(OrderItem.model_validate(item) for item in order.items),
        payment_method=order.payment_method,  # type: ignore[arg-type]
        received_at=order.received_at,
    )


# -- versions ---------------------------------------------------------------------------------------------
def _version_fields(received: OrderReceived, envelope: Envelope) -> dict:
    address = received.buyer.address
    return {
        "placed_at": received.placed_at,
        "received_at": received.received_at,
        "livestream_id": received.livestream_id,
        "payment_method": received.payment_method,
        "buyer_name": received.buyer.name,
        "buyer_phone": received.buyer.phone,
        "buyer_province_code": address.province_code,
        "buyer_ward_code": address.ward_code,
        "buyer_address_line": address.line,
        "items": [item.model_dump() for item in received.items],
        "correlation_id": envelope.correlation_id,
    }


def _take_version(order: Order, received: OrderReceived, envelope: Envelope) -> None:
    for name, value in _version_fields(received, envelope).items():
        setattr(order, name, value)


def _record_conflict(order: Order, envelope: Envelope, received: OrderReceived, differs: list[str]) -> None:
    """A placed order is final: another content for it is kept beside it, visibly, not applied."""
    content = domain.order_content(received)
    for known in order.conflicts:
        if not domain.differences(domain.order_content(OrderReceived.model_validate(known["version"])), content):
            log.info("orders.same_conflicting_version_again", order_id=order.id, event_id=envelope.id)
            return
    conflict = {
        "event_id": envelope.id,
        "received_at": received.received_at.isoformat(),
        "differs": differs,
        "version": received.model_dump(mode="json"),
    }
    order.conflicts = [*order.conflicts, conflict]  # a new list, so the JSON column is written
    ORDER_CONFLICTS.labels(received.channel, "consumer").inc()
    log.warning(
        "orders.conflicting_version_recorded",
        order_id=order.id,
        event_id=envelope.id,
        correlation_id=envelope.correlation_id,
        differs=differs,
    )


# -- deciding -------------------------------------------------------------------------------------------
async def _catalog_for(
    session: AsyncSession, received: OrderReceived
) -> tuple[dict[str, domain.CatalogProduct], dict[str, domain.CatalogSeller]]:
    skus = {item.sku for item in received.items}
    products = {
        p.sku: domain.CatalogProduct(sku=p.sku, name=p.name, seller_id=p.seller_id, unit_weight_g=p.unit_weight_g)
        for p in (await session.exec(select(KnownProduct).where(col(KnownProduct.sku).in_(skus)))).all()
    }
    seller_ids = {p.seller_id for p in products.values()}
    sellers = {
        s.seller_id: domain.CatalogSeller(seller_id=s.seller_id, province_code=s.province_code, ward_code=s.ward_code)
        for s in (await session.exec(select(KnownSeller).where(col(KnownSeller.seller_id).in_(seller_ids)))).all()
    }
    return products, sellers


async def _decide(
    uow: UnitOfWork, order: Order, received: OrderReceived, *, waited_s: float | None = None
) -> domain.Decision:
    products, sellers = await _catalog_for(uow.session, received)
    decision = domain.decide(received, order_id=order.id, products=products, sellers=sellers, waited_s=waited_s)
    await _store(uow, order, decision)
    return decision


async def _store(uow: UnitOfWork, order: Order, decision: domain.Decision) -> None:
    """Writes the decision on the order (lines, waits) and publishes it once decided."""
    session = uow.session
    # Only an order that waited has wait rows; only a placed one (final, never decided again) has lines.
    had_waits = order.awaiting_since is not None
    if isinstance(decision, domain.AwaitingCatalog):
        if not had_waits:
            order.awaiting_since = utc_now()
        order.status = AWAITING
        order.total_vnd = order.total_weight_g = 0
        order.rejection_reasons = []
        await session.flush()  # the order row before its waits (foreign key)
        if await _set_waits(session, order.id, decision, had_waits=had_waits):
            log.info(
                "orders.order_awaiting_catalog",
                order_id=order.id,
                missing_skus=list(decision.missing_skus),
                missing_seller_ids=list(decision.missing_seller_ids),
                correlation_id=order.correlation_id,
            )
        return
    placed = isinstance(decision, OrderPlaced)
    order.status = "placed" if placed else "rejected"
    order.awaiting_since = None
    order.total_vnd = decision.total_vnd if placed else 0
    order.total_weight_g = decision.total_weight_g if placed else 0
    order.rejection_reasons = [] if placed else [reason.model_dump() for reason in decision.reasons]
    await session.flush()  # the order row before its lines (foreign key)
    if had_waits:
        await session.exec(delete(OrderCatalogWait).where(col(OrderCatalogWait.order_id) == order.id))
    if placed:
        for line_no, line in enumerate(decision.lines, start=1):
            session.add(OrderLineRow(order_id=order.id, line_no=line_no, **line.model_dump()))
    # The order's own flow, also when a catalog event or the sweep decides it.
    uow.publish(decision, correlation_id=order.correlation_id)
    log.info("orders.order_decided", order_id=order.id, status=order.status, correlation_id=order.correlation_id)


async def _set_waits(session: AsyncSession, order_id: str, waiting: domain.AwaitingCatalog, *, had_waits: bool) -> bool:
    """Makes the order's wait rows name exactly what it misses; True when they changed."""
    wanted = {("sku", sku) for sku in waiting.missing_skus} | {("seller", s) for s in waiting.missing_seller_ids}
    current: set[tuple[str, str]] = set()
    if had_waits:
        query = select(OrderCatalogWait.kind, OrderCatalogWait.ref).where(OrderCatalogWait.order_id == order_id)
        current = set((await session.exec(query)).all())
    for kind, ref in current - wanted:
        await session.exec(
            delete(OrderCatalogWait).where(
                col(OrderCatalogWait.order_id) == order_id,
                col(OrderCatalogWait.kind) == kind,
                col(OrderCatalogWait.ref) == ref,
            )
        )
    for kind, ref in sorted(wanted - current):
        session.add(OrderCatalogWait(order_id=order_id, kind=kind, ref=ref))
    return wanted != current


async def _resume_orders_waiting_for(uow: UnitOfWork, *, kind: str, ref: str) -> None:
    """A SKU or seller reached the catalog copy: decide the orders parked for it, in this unit of work."""
    waiting = (
        await uow.session.exec(
            select(OrderCatalogWait.order_id).where(OrderCatalogWait.kind == kind, OrderCatalogWait.ref == ref)
        )
    ).all()
    for order_id in sorted(set(waiting)):
        order = await _locked_order(uow.session, order_id)
        if order is not None and order.status == AWAITING:
            await _decide(uow, order, received_from(order))


# -- the sweep --------------------------------------------------------------------------------------------
async def sweep_orders_awaiting_catalog(runtime: ServiceRuntime) -> None:
    """Background loop: every VUONMINH_CATALOG_SWEEP_S, decide parked orders.

    An order whose catalog entries have arrived is placed (this also covers a catalog event that
    committed while the order was being parked, on another replica); one that has waited
    VUONMINH_CATALOG_WAIT_S is rejected with its reasons.
    """
    while True:
        try:
            await sweep_once(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database may be away: try again at the next pass
            log.warning("orders.catalog_sweep_failed", error=repr(error))
        await asyncio.sleep(runtime.settings.catalog_sweep_s)


async def sweep_once(runtime: ServiceRuntime, *, now: datetime | None = None) -> dict[str, int]:
    """One pass of the sweep; returns how many parked orders were placed, rejected or left waiting."""
    now = now or utc_now()
    wait_s = runtime.settings.catalog_wait_s
    async with runtime.sessions() as session:
        parked = (
            await session.exec(
                select(Order.id).where(Order.status == AWAITING).order_by(col(Order.awaiting_since)).limit(SWEEP_BATCH)
            )
        ).all()
    outcome = {"placed": 0, "rejected": 0, "waiting": 0}
    for order_id in parked:
        async with runtime.unit_of_work() as uow:
            order = await _locked_order(uow.session, order_id)
            if order is None or order.status != AWAITING:
                continue
            waited_s = (now - (order.awaiting_since or now)).total_seconds()
            over = waited_s if waited_s >= wait_s else None
            decision = await _decide(uow, order, received_from(order), waited_s=over)
            outcome["waiting" if isinstance(decision, domain.AwaitingCatalog) else order.status] += 1
    async with runtime.sessions() as session:
        ORDERS_AWAITING_CATALOG.set(
            (await session.exec(select(func.count()).select_from(Order).where(Order.status == AWAITING))).one()
        )
    if outcome["placed"] or outcome["rejected"]:
        log.info("orders.catalog_sweep", **outcome)
    return outcome
