"""analytics' HTTP API: one route per KPI (parse, call queries, return), and the province report.

Officials read the KPIs of their communes (commune officials) or provinces (province officials);
a seller reads its own seller, product and livestream KPIs. Anything outside the caller's scope
answers 404, as if it did not exist."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.analytics import domain, queries
from vuonminh.analytics.models import (
    ChannelMix,
    CommuneKpis,
    CoreSellers,
    CoreSellerTargetIn,
    Fulfilment,
    Granularity,
    LivestreamKpis,
    OcopShare,
    ProductKpis,
    ProductSales,
    ProvinceKpis,
    SellerKpis,
)
from vuonminh.shared.app import runtime_of, session_of
from vuonminh.shared.audit import audit_write
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["analytics"])
Session = Annotated[AsyncSession, Depends(session_of("analytics"))]
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("analytics"))]
From = Annotated[date, Query(alias="from", description="first day (Vietnam calendar), YYYY-MM-DD")]
To = Annotated[date, Query(description="last day (included), YYYY-MM-DD")]
On = Annotated[date | None, Query(description="the day to look at (default: today in Vietnam)")]
Period = Annotated[Granularity, Query(description="periods of the series: day, week (Monday first) or month")]
T = TypeVar("T")
Official = Annotated[Caller, Depends(require(Role.commune_official, Role.province_official))]
ProvinceOfficial = Annotated[Caller, Depends(require(Role.province_official))]
OfficialOrSeller = Annotated[Caller, Depends(require(Role.commune_official, Role.province_official, Role.seller))]


def checked_range(from_: From, to: To) -> tuple[date, date]:
    problem = domain.check_range(from_, to)
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    return from_, to


Range = Annotated[tuple[date, date], Depends(checked_range)]


def check_commune(caller: Caller, ward_code: str) -> None:
    """Unknown, or another commune's: the same 404."""
    ward, province = queries.place_of_ward(ward_code)
    if not caller.may_see_place(ward_code=ward, province_code=province):
        raise queries.NotFound(f"no 2025 commune/ward has code {ward_code!r}")


async def check_seller(session: AsyncSession, caller: Caller, seller_id: str) -> None:
    ward, province = await queries.place_of_seller(session, seller_id)
    if not (caller.may_see_seller(seller_id) or caller.may_see_place(ward_code=ward, province_code=province)):
        raise queries.NotFound(f"no seller has id {seller_id!r}")


@asynccontextmanager
async def not_found() -> AsyncIterator[None]:
    """A NotFound (unknown, or outside the caller's scope) answers 404 with its message."""
    try:
        yield
    except queries.NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


async def check_commune_scope(caller: Caller, ward_code: str) -> None:
    check_commune(caller, ward_code)


async def check_product_scope(session: AsyncSession, caller: Caller, sku: str) -> None:
    await check_seller(session, caller, await queries.seller_of_product(session, sku))


async def check_livestream_scope(session: AsyncSession, caller: Caller, livestream_id: str) -> None:
    await check_seller(session, caller, await queries.seller_of_livestream(session, livestream_id))


async def check_province_scope(caller: Caller, province_code: str) -> None:
    if not caller.may_see_province(province_code):
        raise queries.NotFound(f"no 2025 province has code {province_code!r}")


def core_rule(runtime: ServiceRuntime) -> domain.CoreRule:
    settings = runtime.settings
    return domain.CoreRule(
        min_orders=settings.core_seller_min_orders,
        window_days=settings.core_seller_window_days,
        min_days=settings.core_seller_min_days,
    )


@router.get(
    "/kpis/communes/{ward_code}",
    response_model=CommuneKpis,
    summary="Sales KPIs of one commune/ward's sellers over Vietnam calendar days [from, to]",
)
async def commune_kpis(
    ward_code: str, session: Session, caller: Official, days: Range, granularity: Period = "day"
) -> CommuneKpis:
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.commune_kpis(session, ward_code, *days, granularity)


@router.get("/kpis/communes/{ward_code}/core-sellers", response_model=CoreSellers, summary="Core sellers vs target")
async def core_sellers(
    ward_code: str, session: Session, caller: Official, runtime: Runtime, on: On = None
) -> CoreSellers:
    day = on or queries.today_in_vietnam()
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.core_sellers(session, ward_code, day, core_rule(runtime))


@router.put(
    "/kpis/communes/{ward_code}/core-seller-target",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set the commune's target of core sellers",
)
async def set_core_seller_target(
    ward_code: str, body: CoreSellerTargetIn, runtime: Runtime, caller: ProvinceOfficial
) -> Response:
    # The province sets its communes' targets.
    async with not_found(), runtime.unit_of_work() as uow:
        await check_commune_scope(caller, ward_code)
        await queries.set_core_seller_target(uow.session, ward_code, body.core_sellers_target, body.due_on)
        audit_write(uow, caller, "set_core_seller_target", target=("commune", ward_code), outcome="saved")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/kpis/communes/{ward_code}/ocop-share", response_model=OcopShare, summary="OCOP products online")
async def ocop_share(ward_code: str, session: Session, caller: Official, on: On = None) -> OcopShare:
    day = on or queries.today_in_vietnam()
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.ocop_share(session, ward_code, day)


@router.get("/kpis/communes/{ward_code}/top-products", response_model=list[ProductSales], summary="Best sellers")
async def top_products(
    ward_code: str, session: Session, caller: Official, days: Range, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[ProductSales]:
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.top_products(session, ward_code, *days, limit)


@router.get("/kpis/communes/{ward_code}/channels", response_model=ChannelMix, summary="Orders per sales channel")
async def channel_mix(ward_code: str, session: Session, caller: Official, days: Range) -> ChannelMix:
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.commune_channel_mix(session, ward_code, *days)


@router.get(
    "/kpis/communes/{ward_code}/fulfilment",
    response_model=Fulfilment,
    summary="Pickup and delivery times, success rate, returns, shipping fees and COD of the orders placed in the range",
)
async def fulfilment(ward_code: str, session: Session, caller: Official, days: Range) -> Fulfilment:
    async with not_found():
        await check_commune_scope(caller, ward_code)
        return await queries.fulfilment(session, ward_code, *days)


@router.get("/kpis/provinces/{province_code}", response_model=ProvinceKpis, summary="A province's communes ranked")
async def province_kpis(
    province_code: str, session: Session, caller: ProvinceOfficial, days: Range, granularity: Period = "day"
) -> ProvinceKpis:
    async with not_found():
        await check_province_scope(caller, province_code)
        return await queries.province_kpis(session, province_code, *days, granularity)


@router.get("/kpis/provinces/{province_code}/report.csv", summary="The province report as CSV (UTF-8)")
async def province_report_csv(province_code: str, session: Session, caller: ProvinceOfficial, days: Range) -> Response:
    async with not_found():
        await check_province_scope(caller, province_code)
        report = await queries.province_kpis(session, province_code, *days)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(queries.REPORT_COLUMNS)
    writer.writerows(queries.province_report_rows(report))
    # A byte-order mark so that spreadsheet programs read the Vietnamese names as UTF-8.
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_report_name(report)}.csv"'},
    )


@router.get("/kpis/provinces/{province_code}/report.xlsx", summary="The province report as an Excel workbook")
async def province_report_xlsx(province_code: str, session: Session, caller: ProvinceOfficial, days: Range) -> Response:
    from vuonminh.analytics.exports import province_workbook

    async with not_found():
        await check_province_scope(caller, province_code)
        report = await queries.province_kpis(session, province_code, *days)
    return Response(
        province_workbook(report),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{_report_name(report)}.xlsx"'},
    )


def _report_name(report: ProvinceKpis) -> str:
    return f"bao-cao-tinh-{report.province_code}-{report.from_}-{report.to}"


@router.get("/kpis/sellers/{seller_id}", response_model=SellerKpis, summary="One seller's sales")
async def seller_kpis(
    seller_id: str, session: Session, caller: OfficialOrSeller, days: Range, granularity: Period = "day"
) -> SellerKpis:
    async with not_found():
        await check_seller(session, caller, seller_id)
        return await queries.seller_kpis(session, seller_id, *days, granularity)


@router.get("/kpis/products/{sku}", response_model=ProductKpis, summary="One product's sales (kg and tonnes)")
async def product_kpis(
    sku: str, session: Session, caller: OfficialOrSeller, days: Range, granularity: Period = "day"
) -> ProductKpis:
    async with not_found():
        await check_product_scope(session, caller, sku)
        return await queries.product_kpis(session, sku, *days, granularity)


@router.get("/kpis/livestreams/{livestream_id}", response_model=LivestreamKpis, summary="A livestream's results")
async def livestream_kpis(livestream_id: str, session: Session, caller: OfficialOrSeller) -> LivestreamKpis:
    async with not_found():
        await check_livestream_scope(session, caller, livestream_id)
        return await queries.livestream_kpis(session, livestream_id)
