"""First-mile pickups in the database: a shipment joins its seller's pickup for the window; a pickup goes
to a courier with room (pickups.py decides who); a courier's absence hands its pickups to others."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, func, select

from vuonminh.logistics import pickups
from vuonminh.logistics.models import Courier, Pickup, Shipment
from vuonminh.shared.timeutil import VIETNAM_TZ, utc_now
from vuonminh.shared.unit_of_work import UnitOfWork

WINDOWS = pickups.Windows()


async def join_pickup(uow: UnitOfWork, shipment: Shipment, now: datetime) -> Pickup:
    """Puts a new shipment in its seller's pickup for the window (made and assigned when it is the first)."""
    day, window = WINDOWS.window_for(now)
    pickup_id = pickups.pickup_id_for(shipment.seller_id, shipment.carrier, day, window)
    pickup = await uow.session.get(Pickup, pickup_id, with_for_update=True)
    if pickup is None:
        pickup = Pickup(
            id=pickup_id,
            seller_id=shipment.seller_id,
            carrier=shipment.carrier,
            ward_code=shipment.origin_ward_code,
            window_date=day,
            window=window,
            parcels=0,
            status="open",
            created_at=now,
            updated_at=now,
        )
        uow.session.add(pickup)
        await uow.session.flush()
    if pickup.status != "open":
        pickup.status = "open"
    pickup.parcels += 1
    pickup.updated_at = now
    shipment.pickup_id = pickup.id
    if pickup.courier_id is None:
        pickup.courier_id = await _courier_for(uow, pickup)
    if pickup.courier_id is not None:
        uow.publish(shipment.move_to("pickup_assigned", occurred_at=now, recorded_at=now))
    return pickup


async def leave_pickup(uow: UnitOfWork, shipment: Shipment) -> None:
    """A shipment cancelled before pickup leaves its trip; an empty trip frees the courier's slot."""
    if shipment.pickup_id is None:
        return
    pickup = await uow.session.get(Pickup, shipment.pickup_id, with_for_update=True)
    if pickup is None or pickup.status != "open":
        return
    pickup.parcels = max(0, pickup.parcels - 1)
    pickup.updated_at = utc_now()
    if pickup.parcels == 0:
        pickup.status, pickup.courier_id = "cancelled", None


async def set_availability(
    uow: UnitOfWork, courier: Courier, available: bool, reason: str | None
) -> dict[str, str | None]:
    """Marks the courier; when it cannot come, its pickups from today on go to others with room (or wait,
    unassigned); when it is back, pickups waiting in its communes come to it. Returns pickup -> courier."""
    now = utc_now()
    courier.available, courier.unavailable_reason, courier.updated_at = available, None if available else reason, now
    await uow.session.flush()
    today = now.astimezone(VIETNAM_TZ).date()
    open_from_today = (Pickup.status == "open", col(Pickup.window_date) >= today, Pickup.carrier == courier.carrier)
    if available:
        waiting = select(Pickup).where(*open_from_today, col(Pickup.courier_id).is_(None))
        affected = [
            p for p in (await uow.session.exec(waiting.with_for_update())).all() if p.ward_code in courier.ward_codes
        ]
    else:
        theirs = select(Pickup).where(*open_from_today, Pickup.courier_id == courier.id)
        affected = list((await uow.session.exec(theirs.with_for_update())).all())
    moved: dict[str, str | None] = {}
    for pickup in sorted(affected, key=lambda p: (p.window_date, p.window, p.id)):
        pickup.courier_id = None
        await uow.session.flush()
        pickup.courier_id = await _courier_for(uow, pickup)
        pickup.updated_at = now
        moved[pickup.id] = pickup.courier_id
        if pickup.courier_id is not None:
            await _assign_waiting_shipments(uow, pickup, now)
    return moved


async def _courier_for(uow: UnitOfWork, pickup: Pickup) -> str | None:
    couriers = (await uow.session.exec(select(Courier).where(Courier.carrier == pickup.carrier))).all()
    if not couriers:
        return None
    load = dict(
        (
            await uow.session.exec(
                select(Pickup.courier_id, func.count())
                .where(
                    Pickup.window_date == pickup.window_date,
                    Pickup.window == pickup.window,
                    Pickup.status == "open",
                    col(Pickup.courier_id).is_not(None),
                    Pickup.id != pickup.id,
                )
                .group_by(Pickup.courier_id)
            )
        ).all()
    )
    rooms = [
        pickups.CourierRoom(
            courier_id=c.id,
            covers_ward=pickup.ward_code in c.ward_codes,
            available=c.available,
            pickups_per_window=c.pickups_per_window,
            pickups_in_window=load.get(c.id, 0),
        )
        for c in couriers
    ]
    return pickups.pick_courier(rooms)


async def _assign_waiting_shipments(uow: UnitOfWork, pickup: Pickup, now: datetime) -> None:
    waiting = select(Shipment).where(Shipment.pickup_id == pickup.id, Shipment.status == "created")
    for shipment in (await uow.session.exec(waiting.with_for_update())).all():
        uow.publish(shipment.move_to("pickup_assigned", occurred_at=now, recorded_at=now))
