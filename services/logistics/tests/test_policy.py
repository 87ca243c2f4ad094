"""The carrier choice: one case per limit of a carrier's profile, the fee order, the seller's preference,
and a fulfilment no carrier can take. On the bundled profiles (carrier_profiles.json) and on small ones."""

from __future__ import annotations

import pytest

from vuonminh.logistics.policy import CarrierProfiles, Fulfilment, choose, load_profiles

FEES = {
    "intra_province": {"bands": [[1000, 20000], [3000, 30000]], "extra_per_500g": 5000},
    "neighbouring": {"bands": [[1000, 25000]], "extra_per_500g": 5000},
    "national": {"bands": [[1000, 30000]], "extra_per_500g": 5000},
}


def profiles(**overrides) -> CarrierProfiles:
    """Two carriers, 'cheap' and 'dear', alike but for their fees; overrides change one of them."""
    base = {"max_weight_g": 20000, "cod": True, "max_cod_vnd": 10_000_000, "daily_pickups_per_ward": 100}
    dear_fees = {zone: {**table, "bands": [[w, f + 1000] for w, f in table["bands"]]} for zone, table in FEES.items()}
    carriers = {"cheap": {**base, "fees": FEES}, "dear": {**base, "fees": dear_fees}}
    for name, change in overrides.items():
        carriers[name] = {**carriers[name], **change}
    return CarrierProfiles.model_validate({"neighbours": {"12": ["14"]}, "carriers": carriers})


def parcel(**fields) -> Fulfilment:
    defaults = {
        "origin_province_code": "12",
        "origin_ward_code": "03390",
        "destination_province_code": "12",
        "weight_g": 1000,
        "cod_amount_vnd": 130000,
    }
    return Fulfilment(**{**defaults, **fields})


def test_the_lowest_fee_wins_and_the_choice_explains_itself():
    choice = choose(parcel(), profiles(), pickups_today={})
    assert (choice.carrier, choice.fee_vnd, choice.zone) == ("cheap", 20000, "intra_province")
    assert "lowest fee" in choice.why and "next dear at 21,000 VND" in choice.why
    assert [(c.carrier, c.fee_vnd, c.excluded) for c in choice.candidates] == [
        ("cheap", 20000, None),
        ("dear", 21000, None),
    ]


@pytest.mark.parametrize(
    ("change", "fulfilment", "reason"),
    [
        ({"pickup_provinces_excluded": ["12"]}, {}, "no pickups in province 12"),
        ({"delivery_provinces_excluded": ["01"]}, {"destination_province_code": "01"}, "no deliveries to province 01"),
        ({"max_weight_g": 5000}, {"weight_g": 5001}, "5,001 g is over its 5,000 g limit"),
        ({"cod": False}, {}, "no cash on delivery"),
        ({"max_cod_vnd": 100000}, {}, "130,000 VND is over its 100,000 VND ceiling"),
    ],
    ids=["pickup-coverage", "delivery-coverage", "weight", "no-cod", "cod-ceiling"],
)
def test_a_carrier_that_cannot_take_it_is_excluded_with_its_reason(change, fulfilment, reason):
    choice = choose(parcel(**fulfilment), profiles(cheap=change), pickups_today={})
    assert choice.carrier == "dear"
    cheap = next(c for c in choice.candidates if c.carrier == "cheap")
    assert cheap.fee_vnd is None and reason in cheap.excluded


def test_a_carrier_whose_pickups_today_are_taken_is_passed_over():
    choice = choose(parcel(), profiles(), pickups_today={"cheap": 100, "dear": 99})
    assert choice.carrier == "dear"
    cheap = choice.candidates[0]
    assert "100 pickups today at commune 03390 are taken" in cheap.excluded


def test_the_sellers_preference_wins_when_its_carrier_can_take_it():
    assert choose(parcel(), profiles(), pickups_today={}, preferred="dear").carrier == "dear"
    # ...and not when it cannot: the choice says why.
    choice = choose(parcel(weight_g=9000), profiles(dear={"max_weight_g": 5000}), pickups_today={}, preferred="dear")
    assert choice.carrier == "cheap" and "preferred dear cannot take it: 9,000 g is over" in choice.why


def test_fees_follow_the_zone_and_the_weight_band():
    p = profiles()
    assert choose(parcel(destination_province_code="14"), p, pickups_today={}).fee_vnd == 25000  # neighbouring
    assert choose(parcel(destination_province_code="01"), p, pickups_today={}).zone == "national"
    assert choose(parcel(weight_g=3000), p, pickups_today={}).fee_vnd == 30000  # the 3 kg band
    assert choose(parcel(weight_g=3001), p, pickups_today={}).fee_vnd == 35000  # a started 500 g more
    assert choose(parcel(weight_g=4200), p, pickups_today={}).fee_vnd == 45000  # three started 500 g


def test_a_fulfilment_no_carrier_can_take_is_flagged_with_every_reason():
    choice = choose(parcel(weight_g=10_000_000), load_profiles(), pickups_today={})
    assert choice.carrier is None and choice.fee_vnd is None
    assert choice.why.startswith("no carrier can take it")
    assert all(c.excluded for c in choice.candidates) and "vnpost: 10,000,000 g is over" in choice.why


def test_the_bundled_profiles_send_lai_chau_parcels_as_the_commune_expects():
    bundled = load_profiles()
    assert set(bundled.carriers) == {"ghn", "ghtk", "viettel_post", "vnpost"}
    assert len(bundled.neighbours) == 34  # the 2025 provinces
    # Within Lai Châu: GHTK; to Hà Nội: Viettel Post; GHN does not pick up in the mountain provinces.
    assert choose(parcel(), bundled, pickups_today={}).carrier == "ghtk"
    to_ha_noi = choose(parcel(destination_province_code="01"), bundled, pickups_today={})
    assert to_ha_noi.carrier == "viettel_post" and to_ha_noi.zone == "national"
    assert "no pickups in province 12" in next(c.excluded for c in to_ha_noi.candidates if c.carrier == "ghn")
    assert bundled.zone("12", "14") == bundled.zone("14", "12") == "neighbouring"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"fees": {"intra_province": FEES["intra_province"]}}, "missing"),
        ({"fees": {**FEES, "national": {"bands": [[1000, 1], [500, 2]], "extra_per_500g": 1}}}, "ascend"),
        ({"max_weight_g": 0}, "greater than 0"),
    ],
)
def test_profiles_that_make_no_sense_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        profiles(cheap=bad)
