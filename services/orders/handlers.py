"""orders' event handlers, and the sweep that decides orders left waiting for the catalog.

Each handler runs inside the consumer's unit of work (see shared/inbox.py): what it stores and
the events it publishes commit together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime

import structlog
from sqlalchemy import delete, func, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import domain
from vuonminh.orders.metrics import ORDER_CONFLICTS, ORDERS_AWAITING_CATALOG
from vuonminh.orders.models import (
    KnownProduct,
    KnownSeller,
    Order,
    OrderCatalogWait,
    OrderLineRow,
    OrderStatusEntry,
    PlatformListing,
)
from vuonminh.orders.queries import livestream_for
from vuonminh.shared.addresses import check_address_codes
from vuonminh.shared.events import (
    Buyer,
    BuyerAddress,
    Envelope,
    ListingPublished,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderPlaced,
    OrderReceived,
    OrderReceivedV2,
    OrderRejectedV2,
    OrderRejectedV3,
    OrderStatusChanged,
    PlatformItem,
    ProductListed,
    RejectionReasonV2,
    SellerRegistered,
    SellerRegisteredV2,
    ShipmentStatusChanged,
    StockReservationFailed,
    StockReserved,
)
from vuonminh.shared.events.orders import PlacedBuyer
from vuonminh.shared.inbox import BatchHandler
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

AWAITING = "awaiting_catalog"
# Reasons catalog's stock step gives (reservation_failed): the order was placed, then refused.
STOCK_REFUSALS = frozenset({"out_of_stock", "not_orderable"})
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


async def on_orders_received(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    """A run of direct orders: their stored versions (locked) and the catalog they name are read
    with one query each, then each order is decided as it would be alone, in offset order."""
    received = [(envelope, envelope.data_as(OrderReceived)) for envelope in envelopes]
    # By the shop's identity, not by our derived id: orders stored before the id derivation
    # changed keep the id they were given.
    stored = await _locked_orders(uow.session, {(r.channel, r.shop_id, r.order_id) for _, r in received})
    catalog = await _catalog_of(uow.session, {item.sku for _, r in received for item in r.items})
    for envelope, order_received in received:
        key = (order_received.channel, order_received.shop_id, order_received.order_id)
        uow.caused_by = envelope  # what each order publishes names its own webhook as its cause
        with structlog.contextvars.bound_contextvars(event_id=envelope.id, correlation_id=envelope.correlation_id):
            stored[key] = await _receive(uow, envelope, order_received, stored.get(key), catalog=catalog)
    uow.caused_by = None


# Called with one event it decides that one: how a failed batch is retried event by event.
ON_ORDERS_RECEIVED = BatchHandler(on_orders_received)


async def _receive(
    uow: UnitOfWork, envelope: Envelope, received: OrderReceived, order: Order | None, *, catalog: CatalogView
) -> Order:
    """One shop's order, given its stored version (locked) or None: stored, replaced or kept aside."""
    if order is not None:
        differs = domain.differences(domain.order_content(received_from(order)), domain.order_content(received))
        if order.status in domain.FINAL_FOR_INTAKE:
            if differs:
                _record_conflict(order, envelope, received, differs)
            else:
                log.info("orders.same_order_again", order_id=order.id, event_id=envelope.id)
            return order
        refused_by_stock = order.status == "rejected" and any(
            reason.get("code") in STOCK_REFUSALS for reason in order.rejection_reasons
        )
        if (order.status == AWAITING or refused_by_stock) and not differs:
            # The same order again (a shop's retry): a stock refusal stands until the shop changes the order.
            log.info("orders.same_order_again", order_id=order.id, event_id=envelope.id)
            return order
        # Not placed (rejected, or still waiting for the catalog): the shop's new version replaces it.
        log.info("orders.order_replaced", order_id=order.id, previous_status=order.status, event_id=envelope.id)
        _take_version(order, received, envelope)
        await _decide(uow, order, received, catalog=catalog)
        return order
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
    await _decide(uow, order, received, catalog=catalog, new_order=True)
    return order


async def _locked_orders(
    session: AsyncSession, keys: Collection[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Order]:
    """The stored orders of these (channel, shop, shop's order id), locked for this transaction."""
    if not keys:
        return {}
    identity = tuple_(col(Order.channel), col(Order.shop_id), col(Order.external_order_id))
    # Another replica (or the sweep) may be deciding one: this waits, then sees the result. Locked
    # in id order, so two batches never wait on each other in a cycle; a deadlock is retried anyway.
    query = (
        select(Order)
        .where(identity.in_(list(keys)))
        .order_by(col(Order.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {(o.channel, o.shop_id, o.external_order_id): o for o in (await session.exec(query)).all()}


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
    """The stored version of an order, as the shop sent it.

    A marketplace order is built without validation (its channel is not v1's, its SKUs are the
    platform's until mapped): it is only read by the rules, never published as such.
    """
    if order.channel != "direct":
        received = OrderReceived.model_construct(
            channel=order.channel,
            shop_id=order.shop_id,
            order_id=order.external_order_id,
            placed_at=order.placed_at,
            livestream_id=order.livestream_id,
            buyer=PlacedBuyer(
                name=order.buyer_name,
                phone=order.buyer_phone,
                address=BuyerAddress.model_construct(
                    province_code=order.buyer_province_code,
                    ward_code=order.buyer_ward_code,
                    line=order.buyer_address_line,
                ),
            )
            if order.buyer_ward_code
            else None,
            items=tuple(PlatformItem.model_validate(item) for item in order.items),
            payment_method=order.payment_method,
            received_at=order.received_at,
        )
        object.__setattr__(received, "buyer_legacy_district", order.buyer_legacy_district)  # read by domain.decide
        return received
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
# What orders knows of catalog for some SKUs: their products and those products' sellers.
CatalogView = tuple[dict[str, domain.CatalogProduct], dict[str, domain.CatalogSeller]]


async def _catalog_of(session: AsyncSession, skus: Collection[str]) -> CatalogView:
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


async def _mapped(session: AsyncSession, received: OrderReceived) -> OrderReceived:
    """A marketplace order's items with catalog SKUs: the seller SKU when it is a catalog SKU, else the
    listing catalog published for the seller SKU or the platform's SKU id; an unknown one stays as the
    platform names it (the order then waits for it)."""
    if received.channel == "direct":
        return received
    items: list[PlatformItem] = list(received.items)  # type: ignore[arg-type]
    refs = {item.sku for item in items} | {item.platform_sku_id for item in items if item.platform_sku_id}
    known = set(
        (await session.exec(select(KnownProduct.sku).where(col(KnownProduct.sku).in_({i.sku for i in items})))).all()
    )
    listings = {
        (row.kind, row.ref): row.sku
        for row in (
            await session.exec(
                select(PlatformListing).where(
                    PlatformListing.channel == received.channel,
                    col(PlatformListing.ref).in_(refs),
                    col(PlatformListing.active).is_(True),
                )
            )
        ).all()
    }
    mapped = []
    for item in items:
        sku = item.sku if item.sku in known else listings.get(("seller_sku", item.sku))
        if sku is None and item.platform_sku_id:
            sku = listings.get(("platform_sku", item.platform_sku_id))
        mapped.append(
            OrderItem.model_construct(
                sku=sku or item.sku[:64], quantity=item.quantity, unit_price_vnd=item.unit_price_vnd
            )
        )
    return received.model_copy(update={"items": tuple(mapped)})


async def _decide(
    uow: UnitOfWork,
    order: Order,
    received: OrderReceived,
    *,
    waited_s: float | None = None,
    catalog: CatalogView | None = None,
    new_order: bool = False,
) -> domain.Decision:
    """`catalog`: read already for a batch (it must cover the order's SKUs); `new_order`: nothing of
    the order is stored yet (no old lines to replace)."""
    if received.channel != "direct" and received.buyer is None:
        # Platforms hide the address until the order is paid; a paid one without it is not shippable.
        reason = RejectionReasonV2(code="no_address", message="the platform gave no delivery address")
        decision: domain.Decision = OrderRejectedV3(
            order_id=order.id,
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            placed_at=received.placed_at,
            reasons=(reason,),
        )
        await _store(uow, order, decision)
        return decision
    received = await _mapped(uow.session, received)
    products, sellers = catalog or await _catalog_of(uow.session, {item.sku for item in received.items})
    decision = domain.decide(received, order_id=order.id, products=products, sellers=sellers, waited_s=waited_s)
    await _store(uow, order, decision, new_order=new_order)
    return decision


async def _store(uow: UnitOfWork, order: Order, decision: domain.Decision, *, new_order: bool = False) -> None:
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
    order.status_changed_at = utc_now()
    order.awaiting_since = None
    order.total_vnd = decision.total_vnd if placed else 0
    order.total_weight_g = decision.total_weight_g if placed else 0
    order.rejection_reasons = [] if placed else [reason.model_dump() for reason in decision.reasons]
    await session.flush()  # the order row before its lines (foreign key)
    if had_waits:
        await session.exec(delete(OrderCatalogWait).where(col(OrderCatalogWait.order_id) == order.id))
    if placed:
        if not new_order:
            # An order refused by the stock step after it was placed keeps its lines: a new version replaces them.
            await session.exec(delete(OrderLineRow).where(col(OrderLineRow.order_id) == order.id))
        for line_no, line in enumerate(decision.lines, start=1):
            session.add(OrderLineRow(order_id=order.id, line_no=line_no, **line.model_dump()))
    _history(uow, order, source="intake", note=None if placed else "; ".join(r.code for r in decision.reasons))
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


# -- history ----------------------------------------------------------------------------------------------
def _history(
    uow: UnitOfWork,
    order: Order,
    *,
    source: str,
    occurred_at: datetime | None = None,
    platform_status: str | None = None,
    applied: bool = True,
    note: str | None = None,
) -> None:
    now = utc_now()
    uow.session.add(
        OrderStatusEntry(
            order_id=order.id,
            status=order.status,
            source=source,
            platform_status=platform_status,
            occurred_at=occurred_at or now,
            recorded_at=now,
            applied=applied,
            note=note,
        )
    )


def _move(
    uow: UnitOfWork, order: Order, target: str, *, source: str, occurred_at: datetime, platform_status: str | None
):
    """Moves a placed order forward (shipped, delivered, returned) and says so on the order's key."""
    previous = order.status
    order.status = target
    order.status_changed_at = utc_now()
    _history(uow, order, source=source, occurred_at=occurred_at, platform_status=platform_status)
    uow.publish(
        OrderStatusChanged(
            order_id=order.id,
            status=target,  # type: ignore[arg-type]
            previous_status=previous,
            source="platform" if source == "platform" else "logistics",
            platform_status=platform_status,
            occurred_at=occurred_at,
            recorded_at=utc_now(),
        ),
        correlation_id=order.correlation_id,
    )


def _cancel(uow: UnitOfWork, order: Order, *, occurred_at: datetime, platform_status: str | None) -> None:
    """Cancelled before dispatch: a placed order's cancellation is published (catalog releases its
    stock, logistics cancels its shipment); one never placed just ends."""
    was_placed = order.status in ("placed", "confirmed")
    order.status = "cancelled"
    order.awaiting_since = None
    order.status_changed_at = utc_now()
    _history(uow, order, source="platform", occurred_at=occurred_at, platform_status=platform_status)
    if was_placed:
        uow.publish(
            OrderCancelled(
                order_id=order.id,
                cancelled_at=occurred_at,
                cancelled_by="platform",
                reason_code="platform_cancelled",
                message=f"{order.channel} status {platform_status}",
            ),
            correlation_id=order.correlation_id,
        )


# -- marketplace orders -------------------------------------------------------------------------------------
def _v2_fields(received: OrderReceivedV2, envelope: Envelope) -> dict:
    buyer = received.buyer
    address = buyer.address if buyer else None
    return {
        "placed_at": received.placed_at,
        "received_at": received.received_at,
        "livestream_id": received.livestream_id,
        "payment_method": received.payment_method,
        "buyer_name": buyer.name if buyer else "",
        "buyer_phone": buyer.phone if buyer else "",
        "buyer_province_code": (address.province_code or "") if address else "",
        "buyer_ward_code": (address.ward_code or "") if address else "",
        "buyer_address_line": address.line if address else "",
        "buyer_legacy_district": address.legacy_district if address else None,
        "items": [item.model_dump() for item in received.items],
        "correlation_id": envelope.correlation_id,
    }


async def on_platform_order_received(uow: UnitOfWork, envelope: Envelope) -> None:
    """A marketplace order as its platform's API answered it: stored, placed once paid, then moved
    by its platform status; a status older than the applied one is kept in the history only."""
    received = envelope.data_as(OrderReceivedV2)
    order = await find_order(uow.session, received.channel, received.shop_id, received.order_id, lock=True)
    state = received.status
    if order is None:
        order = Order(
            id=domain.order_id_for(received.channel, received.shop_id, received.order_id),
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            status="awaiting_payment",
            total_vnd=0,
            total_weight_g=0,
            created_at=utc_now(),
            status_changed_at=utc_now(),
            **_v2_fields(received, envelope),
        )
        if order.livestream_id is None:  # placed during a scheduled session on this shop: it counts for it
            order.livestream_id = await livestream_for(
                uow.session, received.channel, received.shop_id, received.placed_at
            )
        uow.session.add(order)
        await uow.session.flush()
    elif domain.is_stale_platform_state(order.platform_state, order.platform_status_at, state, received.status_at):
        _history(
            uow,
            order,
            source="platform",
            occurred_at=received.status_at,
            platform_status=received.platform_status,
            applied=False,
            note=f"stale: {order.platform_status} applied already",
        )
        log.info("orders.stale_platform_status", order_id=order.id, status=received.platform_status)
        return
    elif order.status in ("awaiting_payment", "awaiting_catalog", "rejected"):
        # Not placed yet: the platform's newer answer (e.g. the address, once paid) replaces the stored one.
        for name, value in _v2_fields(received, envelope).items():
            setattr(order, name, value)
    order.platform_status = received.platform_status
    order.platform_state = state
    order.platform_status_at = received.status_at
    if state == "cancelled":
        if domain.may_cancel(order.status):
            await uow.session.flush()
            await uow.session.exec(delete(OrderCatalogWait).where(col(OrderCatalogWait.order_id) == order.id))
            _cancel(uow, order, occurred_at=received.status_at, platform_status=received.platform_status)
        else:
            _history(
                uow,
                order,
                source="platform",
                occurred_at=received.status_at,
                platform_status=received.platform_status,
                applied=False,
                note="cancelled after dispatch",
            )
        return
    if state == "unpaid":
        _history(
            uow, order, source="platform", occurred_at=received.status_at, platform_status=received.platform_status
        )
        return
    if order.status == "awaiting_payment":  # paid (or further): place it
        address = received.buyer.address if received.buyer else None
        problem = (
            check_address_codes(address.province_code, address.ward_code)
            if address and address.province_code and address.ward_code
            else "the address does not resolve to a 2025 province and ward"
        )
        if received.buyer is not None and problem:
            await _store(uow, order, _rejected_for_address(order, received, problem))
            return
        await _decide(uow, order, received_from(order))
    target = domain.FROM_PLATFORM.get(state)
    if target and domain.moves_forward(order.status, target) and order.status != "awaiting_catalog":
        _move(
            uow,
            order,
            target,
            source="platform",
            occurred_at=received.status_at,
            platform_status=received.platform_status,
        )


def _rejected_for_address(order: Order, received: OrderReceivedV2, problem: str) -> OrderRejectedV3:
    return OrderRejectedV3(
        order_id=order.id,
        channel=received.channel,
        shop_id=received.shop_id,
        external_order_id=received.order_id,
        placed_at=received.placed_at,
        reasons=(RejectionReasonV2(code="unknown_address", message=problem),),
    )


# -- the stock step of the saga -----------------------------------------------------------------------------
async def on_reservation_results(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    """catalog's answers for a poll's orders (reserved or refused): the orders are locked with one
    query, then each answer is applied in offset order."""
    answers = [
        envelope.data_as(StockReserved if envelope.type == StockReserved.TYPE else StockReservationFailed)
        for envelope in envelopes
    ]
    orders = await _locked_orders_by_id(uow.session, {answer.order_id for answer in answers})
    for envelope, answer in zip(envelopes, answers, strict=True):
        uow.caused_by = envelope
        with structlog.contextvars.bound_contextvars(event_id=envelope.id, correlation_id=envelope.correlation_id):
            order = orders.get(answer.order_id)
            if order is None or order.status != "placed":
                # Cancelled meanwhile (catalog releases on order_cancelled), or already past it: nothing to apply.
                log.info("orders.reservation_answer_not_applied", order_id=answer.order_id, event_type=envelope.type)
            elif isinstance(answer, StockReserved):
                _confirm(uow, order, answer)
            else:
                _refuse(uow, order, answer)
    uow.caused_by = None


# Reserved and refused alternate on one topic: one handler for both keeps a poll in one call.
ON_RESERVATION_RESULTS = BatchHandler(on_reservation_results)


async def _locked_orders_by_id(session: AsyncSession, order_ids: Collection[str]) -> dict[str, Order]:
    query = (
        select(Order)
        .where(col(Order.id).in_(order_ids))
        .order_by(col(Order.id))  # the same lock order as every batch
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {order.id: order for order in (await session.exec(query)).all()}


def _confirm(uow: UnitOfWork, order: Order, event: StockReserved) -> None:
    order.status = "confirmed"
    order.status_changed_at = utc_now()
    _history(uow, order, source="catalog", occurred_at=event.reserved_at)
    uow.publish(OrderConfirmed(order_id=order.id, confirmed_at=utc_now()), correlation_id=order.correlation_id)


def _refuse(uow: UnitOfWork, order: Order, event: StockReservationFailed) -> None:
    reasons = tuple(
        RejectionReasonV2(code=problem.code, message=problem.message, sku=problem.sku) for problem in event.problems
    )
    order.status = "rejected"
    order.status_changed_at = utc_now()
    order.rejection_reasons = [reason.model_dump() for reason in reasons]
    _history(uow, order, source="catalog", occurred_at=event.failed_at, note="; ".join(r.code for r in reasons))
    rejected_type = OrderRejectedV2 if order.channel == "direct" else OrderRejectedV3
    uow.publish(
        rejected_type(
            order_id=order.id,
            channel=order.channel,  # type: ignore[arg-type]
            shop_id=order.shop_id,
            external_order_id=order.external_order_id,
            placed_at=order.placed_at,
            reasons=reasons,
        ),
        correlation_id=order.correlation_id,
    )


# -- listings and shipments -----------------------------------------------------------------------------------
async def on_listing_published(uow: UnitOfWork, envelope: Envelope) -> None:
    """catalog's listing of a product on a marketplace: its platform SKU id and seller SKU map to the
    product; orders parked on either resume."""
    event = envelope.data_as(ListingPublished)
    refs = [("platform_sku", event.platform_sku)] + ([("seller_sku", event.seller_sku)] if event.seller_sku else [])
    for kind, ref in refs:
        await uow.session.merge(
            PlatformListing(
                channel=event.channel, kind=kind, ref=ref, sku=event.sku, seller_id=event.seller_id, active=event.active
            )
        )
    if event.active:
        await uow.session.flush()
        for _kind, ref in refs:
            await _resume_orders_waiting_for(uow, kind="sku", ref=ref[:64])


async def on_shipment_status_changed(uow: UnitOfWork, envelope: Envelope) -> None:
    """logistics' shipments move the order: picked up is shipped, then delivered or returned."""
    event = envelope.data_as(ShipmentStatusChanged)
    target = domain.FROM_SHIPMENT.get(event.status)
    if target is None:
        return
    order = await _locked_order(uow.session, event.order_id)
    if order is None or not domain.moves_forward(order.status, target) or order.status == "awaiting_catalog":
        return
    _move(uow, order, target, source="logistics", occurred_at=event.occurred_at, platform_status=None)
