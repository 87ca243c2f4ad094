"""analytics' rules, free of I/O: which facts an event yields, periods, percentiles, core sellers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from vuonminh.shared.events import OrderPlaced
from vuonminh.shared.timeutil import vietnam_day

MAX_RANGE_DAYS = 366  # the longest range one query may span: the projections' retention in one view
GRANULARITIES = ("day", "week", "month")


@dataclass(frozen=True)
class SellerSale:
    seller_id: str
    ward_code: str
    province_code: str
    gmv_vnd: int
    weight_g: int
    items: int = 0


def seller_sales(order: OrderPlaced) -> list[SellerSale]:
    """An order's sales per seller: KPIs count toward the seller's commune, not the buyer's."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    where: dict[str, tuple[str, str]] = {}
    for line in order.lines:
        totals[line.seller_id][0] += line.line_total_vnd
        totals[line.seller_id][1] += line.line_weight_g
        totals[line.seller_id][2] += line.quantity
        where[line.seller_id] = (line.seller_ward_code, line.seller_province_code)
    return [
        SellerSale(
            seller_id=s, ward_code=where[s][0], province_code=where[s][1], gmv_vnd=gmv, weight_g=grams, items=items
        )
        for s, (gmv, grams, items) in sorted(totals.items())
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


def grams_to_tonnes(grams: int) -> float:
    return round(grams / 1_000_000, 3)


def period_start(day: date, granularity: str) -> date:
    """The first day of the period holding `day`: itself, its week's Monday, its month's 1st."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(start: date, end: date, granularity: str) -> list[date]:
    """Every period touching [start, end], so that a chart shows empty days as zero."""
    seen: list[date] = []
    day = start
    while day <= end:
        first = period_start(day, granularity)
        if not seen or seen[-1] != first:
            seen.append(first)
        day += timedelta(days=1)
    return seen


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p50 of 1..10 is 5): a value that happened, not an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def hours_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 2)


@dataclass(frozen=True)
class CoreRule:
    """A core seller had at least `min_orders` orders a day on at least `min_days` of the last
    `window_days` days (the commune's "5 sellers at 20–30 orders a day")."""

    min_orders: int = 20
    window_days: int = 7
    min_days: int = 5

    def window(self, on: date) -> tuple[date, date]:
        return on - timedelta(days=self.window_days - 1), on

    def core_sellers(self, daily_orders: Iterable[tuple[str, date, int]], on: date) -> dict[str, tuple[int, int]]:
        """seller -> (days at or above the threshold, orders in the window), for the core ones."""
        first, last = self.window(on)
        days: Mapping[str, int]
        days, orders = defaultdict(int), defaultdict(int)
        for seller, day, count in daily_orders:
            if first <= day <= last:
                orders[seller] += count
                if count >= self.min_orders:
                    days[seller] += 1
        return {seller: (n, orders[seller]) for seller, n in days.items() if n >= self.min_days}


def certificate_valid(stars: int | None, expires_on: date | None, on: date) -> bool:
    return stars is not None and (expires_on is None or expires_on >= on)


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
