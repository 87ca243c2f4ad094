"""analytics' rules, free of I/O: which facts an event yields."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from vuonminh.shared.events import OrderPlaced
from vuonminh.shared.timeutil import vietnam_day

MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class SellerSale:
    seller_id: str
    ward_code: str
    province_code: str
    gmv_vnd: int
    weight_g: int


def seller_sales(order: OrderPlaced) -> list[SellerSale]:
    """An order's sales per seller: KPIs count toward the seller's commune, not the buyer's."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    where: dict[str, tuple[str, str]] = {}
    for line in order.lines:
        totals[line.seller_id][0] += line.line_total_vnd
        totals[line.seller_id][1] += line.line_weight_g
        where[line.seller_id] = (line.seller_ward_code, line.seller_province_code)
    return [
        SellerSale(seller_id=s, ward_code=where[s][0], province_code=where[s][1], gmv_vnd=gmv, weight_g=grams)
        for s, (gmv, grams) in sorted(totals.items())
    ]


def order_day(order: OrderPlaced) -> date:
    return vietnam_day(order.placed_at)


def check_range(start: date, end: date) -> str | None:
    if end < start:
        return "'to' is before 'from'"
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        return f"the range is longer than {MAX_RANGE_DAYS} days"
    return None


def grams_to_kg(grams: int) -> float:
    return round(grams / 1000, 3)
