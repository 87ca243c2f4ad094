"""First-mile pickups, as pure rules: a seller's parcels for one carrier are collected in one pickup per
window (morning, afternoon: Vietnam time), and each pickup goes to a courier of that carrier who covers
the seller's commune and has room left in that window. A livestream's thousand parcels from a commune
become a handful of pickups per seller, not a trip each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from vuonminh.shared.timeutil import VIETNAM_TZ

MORNING, AFTERNOON = "morning", "afternoon"
_PICKUP_NAMESPACE = uuid.UUID("5f0c2a1e-8d43-4b7a-9e21-6c3d4b2a1f90")


@dataclass(frozen=True)
class Windows:
    """Parcels ready before `morning_cutoff` go in that morning's pickup, before `afternoon_cutoff` in the
    afternoon's, later ones in the next morning's."""

    morning_cutoff: time = time(10, 0)
    afternoon_cutoff: time = time(15, 0)

    def window_for(self, ready_at: datetime) -> tuple[date, str]:
        local = ready_at.astimezone(VIETNAM_TZ)
        if local.time() < self.morning_cutoff:
            return local.date(), MORNING
        if local.time() < self.afternoon_cutoff:
            return local.date(), AFTERNOON
        return local.date() + timedelta(days=1), MORNING


def pickup_id_for(seller_id: str, carrier: str, day: date, window: str) -> str:
    """One pickup per seller, carrier and window: its id follows from them."""
    return str(uuid.uuid5(_PICKUP_NAMESPACE, f"{seller_id}:{carrier}:{day.isoformat()}:{window}"))


@dataclass(frozen=True)
class CourierRoom:
    courier_id: str
    covers_ward: bool
    available: bool
    pickups_per_window: int
    pickups_in_window: int  # already assigned to it in this window

    @property
    def room_left(self) -> int:
        return self.pickups_per_window - self.pickups_in_window


def pick_courier(couriers: Sequence[CourierRoom], *, excluding: str | None = None) -> str | None:
    """The courier for a pickup: available, covering the commune, with room left; the one with the most
    room (spreading the trips), then by id. None: nobody can take it now (the pickup waits, flagged)."""
    able = [c for c in couriers if c.available and c.covers_ward and c.room_left > 0 and c.courier_id != excluding]
    if not able:
        return None
    return min(able, key=lambda c: (-c.room_left, c.courier_id)).courier_id
