from datetime import date

from vuonminh.analytics.domain import check_range, grams_to_kg, order_day, seller_sales
from vuonminh.wiring.testing import order_line, placed_order


def _order(placed_at: str):
    lines = [
        order_line("s1", "03390", 2, 65000, 500),
        order_line("s2", "03478", 1, 175000, 5000),
        order_line("s1", "03390", 1, 85000, 500),
    ]
    return placed_order(lines, placed_at=placed_at)


def test_sales_are_counted_per_seller_in_the_sellers_commune():
    sales = {s.seller_id: s for s in seller_sales(_order("2026-11-20T09:00:00+07:00"))}

    assert (sales["s1"].ward_code, sales["s1"].gmv_vnd, sales["s1"].weight_g) == ("03390", 215000, 1500)
    assert (sales["s2"].ward_code, sales["s2"].gmv_vnd, sales["s2"].weight_g) == ("03478", 175000, 5000)


def test_the_day_is_the_vietnam_calendar_day():
    # 18:30 UTC on the 19th is 01:30 on the 20th in Vietnam.
    assert order_day(_order("2026-11-19T18:30:00Z")) == date(2026, 11, 20)
    assert order_day(_order("2026-11-19T16:59:59Z")) == date(2026, 11, 19)


def test_ranges_and_units():
    assert check_range(date(2026, 1, 2), date(2026, 1, 1)) == "'to' is before 'from'"
    assert "366" in check_range(date(2025, 1, 1), date(2026, 12, 31))
    assert check_range(date(2026, 1, 1), date(2026, 12, 31)) is None
    assert grams_to_kg(171850) == 171.85
