"""catalog's side of the order saga: reserve on order_placed, release on order_cancelled, and take the
units out of stock when a seller's shipment is picked up. Each runs inside the consumer's unit of work
(one transaction with the inbox record, so each effect happens once).

Never oversell: the stock rows of an order are locked (SELECT ... FOR UPDATE, SKUs in sorted order so
that two orders never wait on each other in a circle) before deciding, and the decrement itself is
conditional (`available >= quantity`). SQLite has one writer at a time, which serialises the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update

from vuonminh.catalog import domain
from vuonminh.catalog.models import Product, Reservation, ReservationDecision, StockLevel, StockMovement
from vuonminh.shared.events import (
    Envelope,
    OrderCancelled,
    OrderPlaced,
    ReservedLine,
    ShipmentStatusChanged,
    StockReservationFailed,
    StockReserved,
)
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

HELD, RELEASED, SHIPPED = "held", "released", "shipped"


class StockChangedUnderLock(RuntimeError):
    """A guarded decrement found fewer units than the locked read: never expected; the transaction rolls back."""


async def on_order_placed(uow: UnitOfWork, envelope: Envelope) -> None:
    order = envelope.data_as(OrderPlaced)
    session = uow.session
    decision = await session.get(ReservationDecision, order.order_id)
    if decision is not None and decision.outcome != "failed":
        if decision.outcome == "reserved":  # the same order again: the same answer, nothing held twice
            held = (await session.scalars(select(Reservation).where(Reservation.order_id == order.order_id))).all()
            lines = tuple(ReservedLine(sku=r.sku, quantity=r.quantity) for r in sorted(held, key=lambda r: r.sku))
            uow.publish(StockReserved(order_id=order.order_id, lines=lines, reserved_at=decision.decided_at))
        return  # released: a cancelled order stays cancelled
    wanted = domain.quantities_by_sku((line.sku, line.quantity) for line in order.lines)
    skus = sorted(wanted)
    locked = await session.execute(
        select(StockLevel.sku, StockLevel.available)
        .where(StockLevel.sku.in_(skus))
        .order_by(StockLevel.sku)
        .with_for_update()
    )
    available = dict(locked.tuples().all())
    products = {p.sku: p for p in (await session.scalars(select(Product).where(Product.sku.in_(skus)))).all()}
    now = utc_now()
    outcome = domain.decide_reservation(
        wanted, products=products, available=available, on_day=domain.vietnam_day(order.placed_at)
    )
    if isinstance(outcome, domain.Refusal):
        _decide(uow, decision, order.order_id, "failed", now)
        uow.publish(StockReservationFailed(order_id=order.order_id, problems=outcome.problems, failed_at=now))
        return
    movements = []
    for line in outcome.lines:
        after = (
            await session.execute(
                update(StockLevel)
                .where(StockLevel.sku == line.sku, StockLevel.available >= line.quantity)
                .values(
                    available=StockLevel.available - line.quantity,
                    reserved=StockLevel.reserved + line.quantity,
                    updated_at=now,
                )
                .returning(StockLevel.available, StockLevel.reserved)
            )
        ).first()
        if after is None:
            raise StockChangedUnderLock(f"{line.sku}: fewer than {line.quantity} units free under the row lock")
        movements.append(
            _movement(line.sku, "reservation", -line.quantity, line.quantity, after, envelope, order.order_id, now)
        )
    await session.execute(
        insert(Reservation),
        [
            {
                "order_id": order.order_id,
                "sku": line.sku,
                "seller_id": products[line.sku].seller_id,
                "quantity": line.quantity,
                "status": HELD,
                "reserved_at": now,
                "updated_at": now,
            }
            for line in outcome.lines
        ],
    )
    await session.execute(insert(StockMovement), movements)
    _decide(uow, decision, order.order_id, "reserved", now)
    uow.publish(StockReserved(order_id=order.order_id, lines=outcome.lines, reserved_at=now))


async def on_order_cancelled(uow: UnitOfWork, envelope: Envelope) -> None:
    """Units still held for the order go back to available; units already picked up stay shipped."""
    cancelled = envelope.data_as(OrderCancelled)
    decision = await uow.session.get(ReservationDecision, cancelled.order_id)
    now = utc_now()
    if decision is None or decision.outcome == "failed":
        # Nothing held; remember the cancellation so that a late order_placed holds nothing either.
        _decide(uow, decision, cancelled.order_id, "released", now)
        return
    await _move_held(uow, envelope, cancelled.order_id, seller_id=None, to=RELEASED, now=now)
    decision.outcome, decision.decided_at = "released", now


def _decide(uow: UnitOfWork, decision: ReservationDecision | None, order_id: str, outcome: str, now: datetime) -> None:
    """Records the answer (an insert for a new order, one update for a retried one: no extra look-up)."""
    if decision is None:
        uow.session.add(ReservationDecision(order_id=order_id, outcome=outcome, decided_at=now))
    else:
        decision.outcome, decision.decided_at = outcome, now


async def on_shipment_status_changed(uow: UnitOfWork, envelope: Envelope) -> None:
    """A picked-up shipment takes its seller's held units out of stock (one shipment per seller of an order)."""
    change = envelope.data_as(ShipmentStatusChanged)
    if change.status != "picked_up":
        return
    await _move_held(
        uow,
        envelope,
        change.order_id,
        seller_id=change.seller_id,
        to=SHIPPED,
        now=utc_now(),
        shipment_id=change.shipment_id,
    )


async def _move_held(
    uow: UnitOfWork,
    envelope: Envelope,
    order_id: str,
    *,
    seller_id: str | None,
    to: str,
    now: datetime,
    shipment_id: str | None = None,
) -> None:
    query = select(Reservation).where(Reservation.order_id == order_id, Reservation.status == HELD)
    if seller_id is not None:
        query = query.where(Reservation.seller_id == seller_id)
    held = (await uow.session.scalars(query.order_by(Reservation.sku).with_for_update())).all()
    movements = []
    for reservation in held:
        back = reservation.quantity if to == RELEASED else 0
        after = (
            await uow.session.execute(
                update(StockLevel)
                .where(StockLevel.sku == reservation.sku)
                .values(
                    available=StockLevel.available + back,
                    reserved=StockLevel.reserved - reservation.quantity,
                    updated_at=now,
                )
                .returning(StockLevel.available, StockLevel.reserved)
            )
        ).one()
        kind = "release" if to == RELEASED else "shipment"
        movements.append(
            _movement(reservation.sku, kind, back, -reservation.quantity, after, envelope, order_id, now, shipment_id)
        )
        reservation.status, reservation.updated_at = to, now
    if movements:
        await uow.session.execute(insert(StockMovement), movements)


REASONS = {
    "reservation": "Giữ hàng cho đơn {order}",
    "release": "Trả lại hàng do đơn {order} bị huỷ",
    "shipment": "Đã giao cho đơn vị vận chuyển (đơn {order})",
}


def _movement(
    sku: str,
    kind: str,
    available_change: int,
    reserved_change: int,
    after: Sequence[int],
    envelope: Envelope,
    order_id: str,
    at: datetime,
    shipment_id: str | None = None,
) -> dict:
    return {
        "sku": sku,
        "kind": kind,
        "available_change": available_change,
        "reserved_change": reserved_change,
        "available_after": after[0],
        "reserved_after": after[1],
        "reason": REASONS[kind].format(order=order_id),
        "order_id": order_id,
        "shipment_id": shipment_id,
        "event_id": envelope.id,
        "at": at,
    }
