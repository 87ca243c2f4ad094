"""Which carrier takes a fulfilment (one seller's part of an order): a pure rule over the carriers'
profiles, which are configuration (carrier_profiles.json), not code.

Each carrier is a candidate or is excluded with its reason: it must pick up in the seller's province
and deliver to the buyer's, take the weight, take the cash on delivery (and that much of it), and have
room left in its daily pickups at the seller's commune. Among the candidates the seller's preferred
carrier wins; otherwise the lowest fee for the zone (within the province, a neighbouring province, or
national) and the weight; a tie goes to the carrier with more room left. The choice keeps every
candidate and why the winner won.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Zone = Literal["intra_province", "neighbouring", "national"]
DEFAULT_PROFILES = Path(__file__).with_name("carrier_profiles.json")


class FeeTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bands: tuple[tuple[int, int], ...] = Field(min_length=1)  # (up to grams, fee VND), ascending
    extra_per_500g: int = Field(ge=0)

    @field_validator("bands")
    @classmethod
    def _ascending(cls, bands: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        weights = [weight for weight, _fee in bands]
        if weights != sorted(set(weights)) or any(fee < 0 for _w, fee in bands):
            raise ValueError("bands must ascend by weight, with fees of 0 or more")
        return bands

    def fee_for(self, weight_g: int) -> int:
        for up_to_g, fee in self.bands:
            if weight_g <= up_to_g:
                return fee
        last_g, last_fee = self.bands[-1]
        extra_steps = -(-(weight_g - last_g) // 500)  # each started 500 g
        return last_fee + extra_steps * self.extra_per_500g


class CarrierProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pickup_provinces_excluded: frozenset[str] = frozenset()
    delivery_provinces_excluded: frozenset[str] = frozenset()
    max_weight_g: int = Field(gt=0)
    cod: bool
    max_cod_vnd: int = Field(ge=0)
    daily_pickups_per_ward: int = Field(gt=0)
    fees: dict[Zone, FeeTable]

    @model_validator(mode="after")
    def _every_zone(self) -> CarrierProfile:
        missing = {"intra_province", "neighbouring", "national"} - set(self.fees)
        if missing:
            raise ValueError(f"fees for {sorted(missing)} are missing")
        return self


class CarrierProfiles(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    neighbours: dict[str, frozenset[str]]
    carriers: dict[str, CarrierProfile] = Field(min_length=1)

    def zone(self, origin_province: str, destination_province: str) -> Zone:
        if origin_province == destination_province:
            return "intra_province"
        # Borders are symmetric: one side listing the other is enough.
        if destination_province in self.neighbours.get(origin_province, ()) or origin_province in self.neighbours.get(
            destination_province, ()
        ):
            return "neighbouring"
        return "national"


@lru_cache(maxsize=8)
def load_profiles(path: Path = DEFAULT_PROFILES) -> CarrierProfiles:
    return CarrierProfiles.model_validate(json.loads(path.read_text(encoding="utf-8")))


class Fulfilment(BaseModel):
    """One seller's part of an order, as the choice sees it."""

    model_config = ConfigDict(frozen=True)
    origin_province_code: str
    origin_ward_code: str
    destination_province_code: str
    weight_g: int
    cod_amount_vnd: int


class Candidate(BaseModel):
    carrier: str
    fee_vnd: int | None  # None when excluded
    excluded: str | None  # why it cannot take this fulfilment
    room_left: int


class Choice(BaseModel):
    carrier: str | None  # None: no carrier can take it (a person must look)
    fee_vnd: int | None
    zone: Zone
    why: str
    candidates: list[Candidate]


def choose(
    fulfilment: Fulfilment,
    profiles: CarrierProfiles,
    *,
    pickups_today: Mapping[str, int],
    preferred: str | None = None,
) -> Choice:
    """The carrier for `fulfilment`, given each carrier's pickups already booked today at its commune."""
    zone = profiles.zone(fulfilment.origin_province_code, fulfilment.destination_province_code)
    candidates = []
    for name, profile in sorted(profiles.carriers.items()):
        room = profile.daily_pickups_per_ward - pickups_today.get(name, 0)
        reason = _excluded(fulfilment, profile, room)
        fee = None if reason else profile.fees[zone].fee_for(fulfilment.weight_g)
        candidates.append(Candidate(carrier=name, fee_vnd=fee, excluded=reason, room_left=max(room, 0)))
    able = [c for c in candidates if c.excluded is None]
    if not able:
        reasons = "; ".join(f"{c.carrier}: {c.excluded}" for c in candidates)
        return Choice(
            carrier=None, fee_vnd=None, zone=zone, why=f"no carrier can take it ({reasons})", candidates=candidates
        )
    chosen = next((c for c in able if c.carrier == preferred), None)
    if chosen is not None:
        why = f"the seller's preferred carrier ({_vnd(chosen.fee_vnd)})"
    else:
        chosen = min(able, key=lambda c: (c.fee_vnd, -c.room_left, c.carrier))
        runner_up = sorted(able, key=lambda c: (c.fee_vnd, -c.room_left, c.carrier))[1:2]
        why = f"the lowest fee for {zone.replace('_', ' ')} delivery ({_vnd(chosen.fee_vnd)})"
        if runner_up:
            why += f"; next {runner_up[0].carrier} at {_vnd(runner_up[0].fee_vnd)}"
        if preferred:
            excluded = next((c.excluded for c in candidates if c.carrier == preferred), "not a known carrier")
            why += f"; the seller's preferred {preferred} cannot take it: {excluded}"
    return Choice(carrier=chosen.carrier, fee_vnd=chosen.fee_vnd, zone=zone, why=why, candidates=candidates)


def _excluded(fulfilment: Fulfilment, profile: CarrierProfile, room: int) -> str | None:
    if fulfilment.origin_province_code in profile.pickup_provinces_excluded:
        return f"no pickups in province {fulfilment.origin_province_code}"
    if fulfilment.destination_province_code in profile.delivery_provinces_excluded:
        return f"no deliveries to province {fulfilment.destination_province_code}"
    if fulfilment.weight_g > profile.max_weight_g:
        return f"{fulfilment.weight_g:,} g is over its {profile.max_weight_g:,} g limit"
    if fulfilment.cod_amount_vnd and not profile.cod:
        return "no cash on delivery"
    if fulfilment.cod_amount_vnd > profile.max_cod_vnd:
        return f"cash on delivery {_vnd(fulfilment.cod_amount_vnd)} is over its {_vnd(profile.max_cod_vnd)} ceiling"
    if room <= 0:
        return f"its {profile.daily_pickups_per_ward} pickups today at commune {fulfilment.origin_ward_code} are taken"
    return None


def _vnd(amount: int | None) -> str:
    return f"{amount:,} VND" if amount is not None else "no fee"
