from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from vuonminh.catalog import domain


@dataclass
class P:
    sku: str = "HOA-DAO"
    seller_id: str = "bl-vuon-dao"
    name: str = "Cành hoa đào Tết"
    unit_weight_g: int = 3000
    ocop_stars: int | None = None
    ocop_certificate_expires_on: date | None = None
    season_starts_on: date | None = None
    season_ends_on: date | None = None
    active: bool = True


@pytest.mark.parametrize("gtin", ["8936012345674", "08936012345674", "96385074", "036000291452"])
def test_valid_gtins_become_fourteen_digits(gtin):
    assert domain.normalise_gtin(gtin) == gtin.zfill(14)


@pytest.mark.parametrize("gtin", ["8936012345673", "893601234568", "89360123456740A", "1234567"])
def test_a_wrong_check_digit_or_length_is_refused(gtin):
    with pytest.raises(ValueError):
        domain.normalise_gtin(gtin)


def test_the_check_digit_names_the_right_one():
    with pytest.raises(ValueError, match="should be 4"):
        domain.normalise_gtin("8936012345670")


def test_the_digital_link_is_gs1_shaped():
    assert (
        domain.digital_link("truyxuat.example.vn", "08936012345672", "BL 2026/01")
        == "https://truyxuat.example.vn/01/08936012345672/10/BL%202026%2F01"
    )


def test_an_expired_certificate_hides_the_stars():
    product = P(ocop_stars=4, ocop_certificate_expires_on=date(2026, 12, 31))
    assert domain.shown_ocop_stars(product, date(2026, 12, 31)) == 4
    assert domain.shown_ocop_stars(product, date(2027, 1, 1)) is None
    assert domain.product_listed(product, date(2027, 1, 1)).ocop_stars is None
    assert domain.shown_ocop_stars(P(ocop_stars=3), date(2030, 1, 1)) == 3  # no known expiry: kept


def test_out_of_season_is_not_orderable():
    flowers = P(season_starts_on=date(2027, 1, 20), season_ends_on=date(2027, 2, 12))
    assert domain.not_orderable_reason(flowers, date(2027, 2, 1)) is None
    reason = domain.not_orderable_reason(flowers, date(2027, 3, 1))
    assert "ngoài mùa vụ" in reason and "20/01/2027" in reason
    assert "ngừng bán" in domain.not_orderable_reason(P(active=False), date(2027, 2, 1))


def test_a_season_must_end_after_it_starts():
    with pytest.raises(domain.CatalogError, match="^season_ends_on"):
        domain.check_product(
            season_starts_on=date(2027, 2, 12), season_ends_on=date(2027, 1, 20), seller_exists=True, seller_id="s"
        )
    with pytest.raises(domain.CatalogError, match="^season_ends_on"):
        domain.check_product(season_starts_on=date(2027, 2, 12), season_ends_on=None, seller_exists=True, seller_id="s")


def test_seasons_are_judged_on_vietnam_days():
    assert domain.vietnam_day(datetime(2027, 1, 19, 17, 30, tzinfo=UTC)) == date(2027, 1, 20)


def test_a_reservation_is_all_or_nothing():
    products = {"A": P(sku="A", name="Miến dong"), "B": P(sku="B", name="Khoai sâm")}
    on_day = date(2026, 11, 20)

    held = domain.decide_reservation({"A": 2, "B": 1}, products=products, available={"A": 2, "B": 5}, on_day=on_day)
    assert isinstance(held, domain.Reservation)
    assert [(line.sku, line.quantity) for line in held.lines] == [("A", 2), ("B", 1)]

    refused = domain.decide_reservation({"A": 3, "B": 1}, products=products, available={"A": 2, "B": 5}, on_day=on_day)
    assert isinstance(refused, domain.Refusal)
    [problem] = refused.problems
    assert (problem.code, problem.sku, problem.requested, problem.available) == ("out_of_stock", "A", 3, 2)
    assert problem.message == "Không đủ hàng: Miến dong chỉ còn 2, đơn đặt 3"


def test_refusals_name_every_line_that_cannot_be_held():
    products = {"A": P(sku="A", name="Miến dong", active=False)}
    refused = domain.decide_reservation({"A": 1, "Z": 1, "B": 1}, products=products, available={}, on_day=date.today())
    assert [(p.sku, p.code) for p in refused.problems] == [
        ("A", "not_orderable"),
        ("B", "not_orderable"),
        ("Z", "not_orderable"),
    ]


def test_sold_out_says_so():
    refused = domain.decide_reservation({"A": 1}, products={"A": P(sku="A")}, available={"A": 0}, on_day=date.today())
    assert refused.problems[0].message == "Hết hàng: Cành hoa đào Tết đã bán hết"


def test_quantities_are_summed_per_sku():
    assert domain.quantities_by_sku([("A", 1), ("B", 2), ("A", 3)]) == {"A": 4, "B": 2}


def test_an_adjustment_never_takes_stock_below_zero():
    assert domain.adjusted_available(available=5, change=-5, unit="chậu") == 0
    with pytest.raises(domain.CatalogError, match="^change: -6 chậu"):
        domain.adjusted_available(available=5, change=-6, unit="chậu")


def test_a_stale_version_conflicts():
    domain.check_version(current=3, expected=3, sku="A")
    with pytest.raises(domain.CatalogError) as error:
        domain.check_version(current=4, expected=3, sku="A")
    assert error.value.status == 409


def test_v1_aggregators_are_traders_that_aggregate():
    assert domain.seller_kind("aggregator", False) == ("trader", True)
    assert domain.seller_kind("household", False) == ("household", False)
