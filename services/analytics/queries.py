"""analytics' read queries: one function per KPI, each taking a session and plain arguments.

Routes and pages parse, call one of these, and return. Sales count an order's part while it is
neither cancelled/rejected nor returned (see models.SellerOrderFact).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, false, func, or_, select, true
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.analytics import domain
from vuonminh.analytics.models import (
    ChannelMix,
    ChannelShare,
    CommuneKpis,
    CommuneRank,
    CommuneTarget,
    CoreSeller,
    CoreSellers,
    DailyKpis,
    Fulfilment,
    Granularity,
    ListingRow,
    LivestreamKpis,
    LivestreamMinute,
    LivestreamRow,
    OcopShare,
    OrderLineFact,
    ProductKpis,
    ProductRow,
    ProductSales,
    ProvinceKpis,
    SalesPoint,
    SalesTotals,
    SellerKpis,
    SellerOrderFact,
    SellerRow,
    ShipmentFact,
)
from vuonminh.shared.addresses import find_province, find_ward, province_code_of
from vuonminh.shared.timeutil import as_utc, utc_now

F = SellerOrderFact.__table__.c  # type: ignore[attr-defined]
L = OrderLineFact.__table__.c  # type: ignore[attr-defined]
S = ShipmentFact.__table__.c  # type: ignore[attr-defined]
COUNTED = and_(F.cancelled == false(), F.returned == false())
CHANNELS = ("tiktok_shop", "shopee", "lazada", "direct")
TOP_PRODUCTS = 10


class NotFound(LookupError):
    """The commune, province, seller, product or livestream is unknown (the message says which)."""


def _in_range(day_column: Any, start: date, end: date) -> ColumnElement[bool]:
    return and_(day_column >= start, day_column <= end)


# -- where a thing is: the scope an official must hold to read it ---------------------------


async def place_of_seller(session: AsyncSession, seller_id: str) -> tuple[str, str]:
    """(ward, province) of a seller, from catalog's record or else from its sales."""
    seller = await session.get(SellerRow, seller_id)
    if seller is not None:
        return seller.ward_code, seller.province_code
    known = (await session.exec(select(F.ward_code, F.province_code).where(F.seller_id == seller_id))).first()
    if known is None:
        raise NotFound(f"no seller has id {seller_id!r}")
    return known[0], known[1]


async def seller_of_product(session: AsyncSession, sku: str) -> str:
    product = await session.get(ProductRow, sku)
    if product is not None:
        return product.seller_id
    seller = (await session.exec(select(L.seller_id).where(L.sku == sku))).first()
    if seller is None:
        raise NotFound(f"no product has SKU {sku!r}")
    return seller[0]


async def seller_of_livestream(session: AsyncSession, livestream_id: str) -> str:
    stream = await session.get(LivestreamRow, livestream_id)
    if stream is not None:
        return stream.seller_id
    seller = (await session.exec(select(F.seller_id).where(F.livestream_id == livestream_id))).first()
    if seller is None:
        raise NotFound(f"no livestream has id {livestream_id!r}")
    return seller[0]


def place_of_ward(ward_code: str) -> tuple[str, str]:
    return ward_code, province_code_of(_ward(ward_code))


# -- sales, folded into periods --------------------------------------------------------------


async def _sales(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], start: date, end: date, granularity: Granularity
) -> tuple[SalesTotals, list[SalesPoint], list[tuple[date, int, int, int]]]:
    """Totals, a point per period (zeros included) and the daily rows (days with sales only)."""
    scope = and_(*where, _in_range(F.day, start, end))
    daily = (
        await session.exec(
            select(
                F.day, func.count(distinct(F.order_id)), func.sum(F["items"]), func.sum(F.gmv_vnd), func.sum(F.weight_g)
            )
            .where(scope, COUNTED)
            .group_by(F.day)
            .order_by(F.day)
        )
    ).all()
    seller_days = (await session.exec(select(F.day, F.seller_id).distinct().where(scope, COUNTED))).all()
    points: dict[date, list[int]] = {p: [0, 0, 0, 0] for p in domain.periods(start, end, granularity)}
    sellers: dict[date, set[str]] = defaultdict(set)
    for day, orders, items, gmv, grams in daily:
        point = points[domain.period_start(day, granularity)]
        for index, value in enumerate((orders, items, gmv, grams)):
            point[index] += int(value or 0)
    for day, seller in seller_days:
        sellers[domain.period_start(day, granularity)].add(seller)
    cancelled, returned = (
        await session.exec(
            select(
                func.count(distinct(F.order_id)).filter(F.cancelled == true()),
                func.count(distinct(F.order_id)).filter(and_(F.returned == true(), F.cancelled == false())),
            ).where(scope)
        )
    ).one()
    series = [
        SalesPoint(
            period=period,
            orders=o,
            items=i,
            gmv_vnd=g,
            kg_sold=domain.grams_to_kg(w),
            active_sellers=len(sellers[period]),
        )
        for period, (o, i, g, w) in points.items()
    ]
    grams = sum(p[3] for p in points.values())
    totals = SalesTotals(
        orders=sum(p.orders for p in series),
        items=sum(p.items for p in series),
        gmv_vnd=sum(p.gmv_vnd for p in series),
        kg_sold=domain.grams_to_kg(grams),
        tonnes_sold=domain.grams_to_tonnes(grams),
        active_sellers=len({s for _, s in seller_days}),
        cancelled_orders=cancelled,
        returned_orders=returned,
    )
    rows = [(day, int(o), int(g or 0), int(w or 0)) for day, o, _i, g, w in daily]
    return totals, series, rows


def _ward(ward_code: str) -> Any:
    ward = find_ward(ward_code)
    if ward is None:
        raise NotFound(f"no 2025 commune/ward has code {ward_code!r}")
    return ward


async def commune_kpis(
    session: AsyncSession, ward_code: str, start: date, end: date, granularity: Granularity = "day"
) -> CommuneKpis:
    ward = _ward(ward_code)
    totals, series, daily = await _sales(session, [F.ward_code == ward_code], start, end, granularity)
    shipments = await session.scalar(select(func.count()).where(S.ward_code == ward_code, _in_range(S.day, start, end)))
    province_code = province_code_of(ward)
    province = find_province(province_code)
    return CommuneKpis(
        ward_code=ward_code,
        ward_name=ward.name,
        province_code=province_code,
        province_name=province.name if province else "",
        from_=start,
        to=end,
        orders=totals.orders,
        gmv_vnd=totals.gmv_vnd,
        kg_sold=totals.kg_sold,
        active_sellers=totals.active_sellers,
        shipments=shipments or 0,
        daily=[DailyKpis(day=day, orders=n, gmv_vnd=g, kg_sold=domain.grams_to_kg(w)) for day, n, g, w in daily],
        items=totals.items,
        tonnes_sold=totals.tonnes_sold,
        cancelled_orders=totals.cancelled_orders,
        returned_orders=totals.returned_orders,
        granularity=granularity,
        series=series,
    )


async def province_kpis(
    session: AsyncSession, province_code: str, start: date, end: date, granularity: Granularity = "day"
) -> ProvinceKpis:
    province = find_province(province_code)
    if province is None:
        raise NotFound(f"no 2025 province has code {province_code!r}")
    totals, series, _ = await _sales(session, [F.province_code == province_code], start, end, granularity)
    rows = (
        await session.exec(
            select(
                F.ward_code,
                func.count(distinct(F.order_id)),
                func.sum(F["items"]),
                func.sum(F.gmv_vnd),
                func.sum(F.weight_g),
                func.count(distinct(F.seller_id)),
            )
            .where(F.province_code == province_code, _in_range(F.day, start, end), COUNTED)
            .group_by(F.ward_code)
        )
    ).all()
    ranked = sorted(rows, key=lambda r: (-int(r[3] or 0), -r[1], r[0]))
    communes = []
    for rank, (ward_code, orders, items, gmv, grams, sellers) in enumerate(ranked, start=1):
        ward = find_ward(ward_code)
        communes.append(
            CommuneRank(
                rank=rank,
                ward_code=ward_code,
                ward_name=ward.name if ward else ward_code,
                orders=orders,
                items=int(items or 0),
                gmv_vnd=int(gmv or 0),
                kg_sold=domain.grams_to_kg(int(grams or 0)),
                active_sellers=sellers,
            )
        )
    return ProvinceKpis(
        province_code=province_code,
        province_name=province.name,
        from_=start,
        to=end,
        granularity=granularity,
        totals=totals,
        series=series,
        communes=communes,
    )


async def seller_kpis(
    session: AsyncSession, seller_id: str, start: date, end: date, granularity: Granularity = "day"
) -> SellerKpis:
    seller = await session.get(SellerRow, seller_id)
    if seller is None:
        known = (await session.exec(select(F.ward_code, F.province_code).where(F.seller_id == seller_id))).first()
        if known is None:
            raise NotFound(f"no seller has id {seller_id!r}")
        name, ward_code, province_code = seller_id, known[0], known[1]
    else:
        name, ward_code, province_code = seller.name, seller.ward_code, seller.province_code
    totals, series, _ = await _sales(session, [F.seller_id == seller_id], start, end, granularity)
    top = await _product_sales(session, [L.seller_id == seller_id, _in_range(L.day, start, end)], TOP_PRODUCTS)
    return SellerKpis(
        seller_id=seller_id,
        seller_name=name,
        ward_code=ward_code,
        province_code=province_code,
        from_=start,
        to=end,
        granularity=granularity,
        totals=totals,
        series=series,
        top_products=top,
    )


# -- products --------------------------------------------------------------------------------

_LINE_COUNTED = and_(F.order_id == L.order_id, F.seller_id == L.seller_id)


async def _product_sales(session: AsyncSession, where: Sequence[ColumnElement[bool]], limit: int) -> list[ProductSales]:
    rows = (
        await session.exec(
            select(
                L.sku,
                func.max(L.product_name),
                func.count(distinct(L.order_id)),
                func.sum(L.quantity),
                func.sum(L.gmv_vnd),
                func.sum(L.weight_g),
            )
            .join_from(OrderLineFact.__table__, SellerOrderFact.__table__, _LINE_COUNTED)
            .where(*where, COUNTED)
            .group_by(L.sku)
            .order_by(func.sum(L.gmv_vnd).desc(), L.sku)
            .limit(limit)
        )
    ).all()
    return [
        ProductSales(
            sku=sku,
            name=name,
            orders=orders,
            items=int(items),
            gmv_vnd=int(gmv),
            kg_sold=domain.grams_to_kg(int(grams)),
        )
        for sku, name, orders, items, gmv, grams in rows
    ]


async def top_products(
    session: AsyncSession, ward_code: str, start: date, end: date, limit: int = TOP_PRODUCTS
) -> list[ProductSales]:
    _ward(ward_code)
    return await _product_sales(session, [L.ward_code == ward_code, _in_range(L.day, start, end)], limit)


async def product_kpis(
    session: AsyncSession, sku: str, start: date, end: date, granularity: Granularity = "day"
) -> ProductKpis:
    product = await session.get(ProductRow, sku)
    first_line = (await session.exec(select(L.product_name, L.seller_id).where(L.sku == sku))).first()
    if product is None and first_line is None:
        raise NotFound(f"no product has SKU {sku!r}")
    scope = and_(L.sku == sku, _in_range(L.day, start, end), COUNTED)
    daily = (
        await session.exec(
            select(
                L.day,
                func.count(distinct(L.order_id)),
                func.sum(L.quantity),
                func.sum(L.gmv_vnd),
                func.sum(L.weight_g),
                func.count(distinct(L.seller_id)),
            )
            .join_from(OrderLineFact.__table__, SellerOrderFact.__table__, _LINE_COUNTED)
            .where(scope)
            .group_by(L.day)
        )
    ).all()
    points: dict[date, list[int]] = {p: [0, 0, 0, 0] for p in domain.periods(start, end, granularity)}
    for day, orders, items, gmv, grams, _sellers in daily:
        point = points[domain.period_start(day, granularity)]
        for index, value in enumerate((orders, items, gmv, grams)):
            point[index] += int(value or 0)
    seller_id = product.seller_id if product else first_line[1]
    series = [
        SalesPoint(period=p, orders=o, items=i, gmv_vnd=g, kg_sold=domain.grams_to_kg(w), active_sellers=1 if o else 0)
        for p, (o, i, g, w) in points.items()
    ]
    grams = sum(p[3] for p in points.values())
    totals = SalesTotals(
        orders=sum(p.orders for p in series),
        items=sum(p.items for p in series),
        gmv_vnd=sum(p.gmv_vnd for p in series),
        kg_sold=domain.grams_to_kg(grams),
        tonnes_sold=domain.grams_to_tonnes(grams),
        active_sellers=1 if grams or any(p.orders for p in series) else 0,
        cancelled_orders=0,
        returned_orders=0,
    )
    return ProductKpis(
        sku=sku,
        name=product.name if product else first_line[0],
        seller_id=seller_id,
        ocop_stars=product.ocop_stars if product else None,
        from_=start,
        to=end,
        granularity=granularity,
        totals=totals,
        series=series,
    )


# -- core sellers, OCOP share, channels ------------------------------------------------------


async def core_sellers(session: AsyncSession, ward_code: str, on: date, rule: domain.CoreRule) -> CoreSellers:
    _ward(ward_code)
    first, last = rule.window(on)
    rows = (
        await session.exec(
            select(F.seller_id, F.day, func.count(distinct(F.order_id)))
            .where(F.ward_code == ward_code, _in_range(F.day, first, last), COUNTED)
            .group_by(F.seller_id, F.day)
        )
    ).all()
    core = rule.core_sellers(((s, d, n) for s, d, n in rows), on)
    names = dict(
        (await session.exec(select(SellerRow.seller_id, SellerRow.name).where(SellerRow.seller_id.in_(core)))).all()
    )
    target = await session.get(CommuneTarget, ward_code)
    return CoreSellers(
        ward_code=ward_code,
        on=on,
        min_orders_per_day=rule.min_orders,
        window_days=rule.window_days,
        min_days=rule.min_days,
        core_sellers=len(core),
        sellers=[
            CoreSeller(seller_id=s, seller_name=names.get(s, s), days_at_threshold=d, orders_in_window=n)
            for s, (d, n) in sorted(core.items(), key=lambda item: (-item[1][1], item[0]))
        ],
        target=target.core_sellers_target if target else None,
        target_due_on=target.due_on if target else None,
        progress=domain.share(len(core), target.core_sellers_target) if target else None,
    )


async def set_core_seller_target(session: AsyncSession, ward_code: str, target: int, due_on: date) -> None:
    _ward(ward_code)
    row = await session.get(CommuneTarget, ward_code)
    if row is None:
        session.add(CommuneTarget(ward_code=ward_code, core_sellers_target=target, due_on=due_on))
    else:
        row.core_sellers_target, row.due_on = target, due_on


async def ocop_share(session: AsyncSession, ward_code: str, on: date) -> OcopShare:
    _ward(ward_code)
    products = (
        await session.exec(
            select(ProductRow.sku, ProductRow.ocop_stars, ProductRow.ocop_certificate_expires_on)
            .join(SellerRow, SellerRow.seller_id == ProductRow.seller_id)
            .where(SellerRow.ward_code == ward_code, ProductRow.ocop_stars.is_not(None))
        )
    ).all()
    valid = sorted(sku for sku, stars, expires in products if domain.certificate_valid(stars, expires, on))
    listed = set(
        (
            await session.exec(
                select(ListingRow.sku).distinct().where(ListingRow.sku.in_(valid), ListingRow.active == true())
            )
        ).scalars()
    )
    return OcopShare(
        ward_code=ward_code,
        on=on,
        ocop_products=len(valid),
        online=len(listed),
        share=domain.share(len(listed), len(valid)),
        offline_skus=[sku for sku in valid if sku not in listed],
    )


async def channel_mix(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], start: date, end: date
) -> ChannelMix:
    rows = (
        await session.exec(
            select(F.channel, func.count(distinct(F.order_id)), func.sum(F.gmv_vnd))
            .where(*where, _in_range(F.day, start, end), COUNTED)
            .group_by(F.channel)
        )
    ).all()
    found = {channel: (orders, int(gmv or 0)) for channel, orders, gmv in rows}
    total = sum(orders for orders, _ in found.values())
    names = list(CHANNELS) + sorted(set(found) - set(CHANNELS))
    return ChannelMix(
        from_=start,
        to=end,
        channels=[
            ChannelShare(
                channel=name,
                orders=found.get(name, (0, 0))[0],
                gmv_vnd=found.get(name, (0, 0))[1],
                share_of_orders=domain.share(found.get(name, (0, 0))[0], total) or 0.0,
            )
            for name in names
        ],
    )


async def commune_channel_mix(session: AsyncSession, ward_code: str, start: date, end: date) -> ChannelMix:
    _ward(ward_code)
    return await channel_mix(session, [F.ward_code == ward_code], start, end)


# -- fulfilment ------------------------------------------------------------------------------

_SHIPMENT_ORDER = and_(F.order_id == S.order_id, F.seller_id == S.seller_id)
NOT_OUTSTANDING = {"delivered", "returned", "cancelled", "lost"}


async def fulfilment(session: AsyncSession, ward_code: str, start: date, end: date) -> Fulfilment:
    """Parcels of the orders placed in [start, end] (by the order's day, so a late delivery
    counts for the day its order was placed)."""
    _ward(ward_code)
    rows = (
        await session.exec(
            select(
                F.placed_at,
                F.gmv_vnd,
                S.status,
                S.picked_up_at,
                S.delivered_at,
                S.returned_at,
                S.shipping_fee_vnd,
                S.cod_amount_vnd,
            )
            .join_from(
                ShipmentFact.__table__,
                SellerOrderFact.__table__,
                and_(F.order_id == S.order_id, F.seller_id == S.seller_id),
            )
            .where(F.ward_code == ward_code, _in_range(F.day, start, end), F.cancelled == false())
        )
    ).all()
    to_pickup = [domain.hours_between(as_utc(r[0]), as_utc(r[3])) for r in rows if r[3] is not None]
    to_delivery = [domain.hours_between(as_utc(r[0]), as_utc(r[4])) for r in rows if r[4] is not None]
    delivered = sum(1 for r in rows if r[4] is not None)
    returned = sum(1 for r in rows if r[5] is not None)
    lost = sum(1 for r in rows if r[2] == "lost")
    fees = sum(r[6] or 0 for r in rows)
    shipped_value = sum(r[1] for r in rows if r[6] is not None)
    return Fulfilment(
        from_=start,
        to=end,
        shipments=len(rows),
        picked_up=len(to_pickup),
        delivered=delivered,
        returned=returned,
        hours_to_pickup_p50=domain.percentile(to_pickup, 0.5),
        hours_to_pickup_p90=domain.percentile(to_pickup, 0.9),
        hours_to_delivery_p50=domain.percentile(to_delivery, 0.5),
        hours_to_delivery_p90=domain.percentile(to_delivery, 0.9),
        delivery_success_rate=domain.share(delivered, delivered + returned + lost),
        shipping_fee_vnd=fees,
        shipping_fee_share=domain.share(fees, shipped_value),
        cod_outstanding_vnd=sum(r[7] for r in rows if r[2] not in NOT_OUTSTANDING),
    )


# -- livestreams -----------------------------------------------------------------------------


async def livestream_kpis(session: AsyncSession, livestream_id: str, now: datetime | None = None) -> LivestreamKpis:
    """A session's orders: those the platform tagged with its id, and those placed on its shop
    and channel within its window."""
    now = now or utc_now()
    stream = await session.get(LivestreamRow, livestream_id)
    in_session = F.livestream_id == livestream_id
    if stream is not None:
        in_session = or_(
            in_session,
            and_(
                F.channel == stream.channel,
                F.shop_id == stream.shop_id,
                F.placed_at >= stream.starts_at,
                F.placed_at <= stream.ends_at,
            ),
        )
    rows = (await session.exec(select(F.order_id, F.placed_at, F.gmv_vnd, F.weight_g).where(in_session, COUNTED))).all()
    if stream is None and not rows:
        raise NotFound(f"no livestream has id {livestream_id!r}")
    per_minute: dict[datetime, set[str]] = defaultdict(set)
    for order_id, placed_at, _gmv, _grams in rows:
        per_minute[as_utc(placed_at).replace(second=0, microsecond=0)].add(order_id)
    orders = len({r[0] for r in rows})
    if stream is not None:
        starts, ends = as_utc(stream.starts_at), as_utc(stream.ends_at)
        minutes = max(1.0, (min(now, ends) - starts).total_seconds() / 60) if now > starts else 0.0
    else:
        starts = ends = None
        minutes = float(len(per_minute) and (max(per_minute) - min(per_minute)).total_seconds() / 60 + 1)
    peak = max(per_minute.items(), key=lambda item: (len(item[1]), -item[0].timestamp()), default=None)
    if per_minute:  # every minute of the session so far, so that a chart's time axis is even
        first = min(min(per_minute), starts) if starts else min(per_minute)
        last = max(max(per_minute), min(now, ends).replace(second=0, microsecond=0)) if ends else max(per_minute)
        minute = first
        while minute <= last:
            per_minute.setdefault(minute, set())
            minute += timedelta(minutes=1)
    order_ids = [r[0] for r in rows]
    best = await _product_sales(session, [L.order_id.in_(order_ids)], 5) if order_ids else []
    return LivestreamKpis(
        livestream_id=livestream_id,
        title=stream.title if stream else livestream_id,
        seller_id=stream.seller_id if stream else "",
        channel=stream.channel if stream else "",
        starts_at=starts,
        ends_at=ends,
        live=bool(stream and starts <= now <= ends),
        orders=orders,
        gmv_vnd=sum(r[2] for r in rows),
        kg_sold=domain.grams_to_kg(sum(r[3] for r in rows)),
        minutes=round(minutes, 1),
        orders_per_minute=round(orders / minutes, 2) if minutes else 0.0,
        peak_minute=peak[0] if peak else None,
        peak_minute_orders=len(peak[1]) if peak else 0,
        per_minute=[LivestreamMinute(minute=m, orders=len(ids)) for m, ids in sorted(per_minute.items())],
        best_sellers=best,
    )


# -- the province report (CSV / xlsx) --------------------------------------------------------

REPORT_COLUMNS = (
    "Hạng",
    "Mã xã",
    "Xã/phường",
    "Đơn hàng",
    "Sản phẩm",
    "Doanh thu (VND)",
    "Khối lượng (kg)",
    "Người bán",
)


def province_report_rows(report: ProvinceKpis) -> list[tuple[Any, ...]]:
    return [
        (c.rank, c.ward_code, c.ward_name, c.orders, c.items, c.gmv_vnd, c.kg_sold, c.active_sellers)
        for c in report.communes
    ]


def today_in_vietnam() -> date:
    from vuonminh.shared.timeutil import vietnam_day

    return vietnam_day(utc_now())


def this_week(today: date) -> tuple[date, date]:
    return today - timedelta(days=today.weekday()), today
