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
from vuonminh.shared.inbox import BatchHandler
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

HELD, RELEASED, SHIPPED = "held", "released", "shipped"


class StockChangedUnderLock(RuntimeError):
    """A guarded decrement found fewer units than the locked read: never expected; the transaction rolls back."""


async def reserve_orders(uow: UnitOfWork, envelopes: Sequence[Envelope]) -> None:
    """Decides a run of order_placed events (one partition's, in log order) with a few set-based statements.

    The stock rows of every SKU in the run are locked once, in SKU order; the orders are then decided one
    after the other against the locked counts in memory (exact: nobody else can change them until commit),
    and the result is written with one guarded decrement per SKU and multi-row inserts. During a livestream
    a poll brings hundreds of orders for the same few SKUs: this is a handful of statements, not hundreds.
    """
    session = uow.session
    placed = [(envelope, envelope.data_as(OrderPlaced)) for envelope in envelopes]
    order_ids = sorted({order.order_id for _, order in placed})
    decisions = {
        d.order_id: d
        for d in (
            await session.scalars(select(ReservationDecision).where(ReservationDecision.order_id.in_(order_ids)))
        ).all()
    }
    wanted = [domain.quantities_by_sku((line.sku, line.quantity) for line in order.lines) for _, order in placed]
    skus = sorted({sku for quantities in wanted for sku in quantities})
    locked = await session.execute(
        select(StockLevel.sku, StockLevel.available, StockLevel.reserved)
        .where(StockLevel.sku.in_(skus))
        .order_by(StockLevel.sku)
        .with_for_update()
    )
    free, held = {}, {}
    for sku, available, reserved in locked.tuples().all():
        free[sku], held[sku] = available, reserved
    products = {p.sku: p for p in (await session.scalars(select(Product).where(Product.sku.in_(skus)))).all()}
    answered = [o for o in order_ids if o in decisions and decisions[o].outcome == "reserved"]
    held_lines: dict[str, list[ReservedLine]] = {}
    if answered:
        for r in (await session.scalars(select(Reservation).where(Reservation.order_id.in_(answered)))).all():
            held_lines.setdefault(r.order_id, []).append(ReservedLine(sku=r.sku, quantity=r.quantity))

    now = utc_now()
    taken: dict[str, int] = {}
    reservations, movements, new_decisions = [], [], {}
    for (envelope, order), quantities in zip(placed, wanted, strict=True):
        decision = new_decisions.get(order.order_id) or decisions.get(order.order_id)
        if decision is not None and decision.outcome != "failed":
            if decision.outcome == "reserved":  # the same order again: the same answer, nothing held twice
                lines = tuple(sorted(held_lines.get(order.order_id, ()), key=lambda line: line.sku))
                uow.publish(
                    StockReserved(order_id=order.order_id, lines=lines, reserved_at=decision.decided_at),
                    caused_by=envelope,
                )
            continue  # released: a cancelled order stays cancelled
        outcome = domain.decide_reservation(
            quantities, products=products, available=free, on_day=domain.vietnam_day(order.placed_at)
        )
        if isinstance(outcome, domain.Refusal):
            new_decisions[order.order_id] = ReservationDecision(
                order_id=order.order_id, outcome="failed", decided_at=now
            )
            uow.publish(
                StockReservationFailed(order_id=order.order_id, problems=outcome.problems, failed_at=now),
                caused_by=envelope,
            )
            continue
        for line in outcome.lines:
            free[line.sku] -= line.quantity
            held[line.sku] += line.quantity
            taken[line.sku] = taken.get(line.sku, 0) + line.quantity
            reservations.append(
                {
                    "order_id": order.order_id,
                    "sku": line.sku,
                    "seller_id": products[line.sku].seller_id,
                    "quantity": line.quantity,
                    "status": HELD,
                    "reserved_at": now,
                    "updated_at": now,
                }
            )
            after = (free[line.sku], held[line.sku])
            movements.append(
                _movement(line.sku, "reservation", -line.quantity, line.quantity, after, envelope, order.order_id, now)
            )
        held_lines[order.order_id] = list(outcome.lines)
        new_decisions[order.order_id] = ReservationDecision(order_id=order.order_id, outcome="reserved", decided_at=now)
        uow.publish(StockReserved(order_id=order.order_id, lines=outcome.lines, reserved_at=now), caused_by=envelope)

    for sku, quantity in sorted(taken.items()):
        # Guarded as well as locked: a decrement that would go below zero changes nothing and fails the run.
        after = (
            await session.execute(
                update(StockLevel)
                .where(StockLevel.sku == sku, StockLevel.available >= quantity)
                .values(
                    available=StockLevel.available - quantity, reserved=StockLevel.reserved + quantity, updated_at=now
                )
                .returning(StockLevel.available, StockLevel.reserved)
            )
        ).first()
        if after is None or tuple(after) != (free[sku], held[sku]):
            raise StockChangedUnderLock(f"{sku}: stock moved under the row lock ({after} != {free[sku], held[sku]})")
    if reservations:
        await session.execute(insert(Reservation), reservations)
        await session.execute(insert(StockMovement), movements)
    for order_id, decision in new_decisions.items():
        if order_id in decisions:  # a refused order tried again
            decisions[order_id].outcome, decisions[order_id].decided_at = decision.outcome, decision.decided_at
        else:
            session.add(decision)


on_order_placed = BatchHandler(reserve_orders)


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
