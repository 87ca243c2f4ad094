"""analytics' HTTP API: one route per KPI (parse, call queries, return), and the province report."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable
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
from vuonminh.shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["analytics"])
Session = Annotated[AsyncSession, Depends(session_of("analytics"))]
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("analytics"))]
From = Annotated[date, Query(alias="from", description="first day (Vietnam calendar), YYYY-MM-DD")]
To = Annotated[date, Query(description="last day (included), YYYY-MM-DD")]
On = Annotated[date | None, Query(description="the day to look at (default: today in Vietnam)")]
Period = Annotated[Granularity, Query(description="periods of the series: day, week (Monday first) or month")]
T = TypeVar("T")


def checked_range(from_: From, to: To) -> tuple[date, date]:
    problem = domain.check_range(from_, to)
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    return from_, to


Range = Annotated[tuple[date, date], Depends(checked_range)]


async def answer(query: Awaitable[T]) -> T:
    """The query's result, or 404 with its message when it names something unknown."""
    try:
        return await query
    except queries.NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


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
async def commune_kpis(ward_code: str, session: Session, days: Range, granularity: Period = "day") -> CommuneKpis:
    return await answer(queries.commune_kpis(session, ward_code, *days, granularity))


@router.get("/kpis/communes/{ward_code}/core-sellers", response_model=CoreSellers, summary="Core sellers vs target")
async def core_sellers(ward_code: str, session: Session, runtime: Runtime, on: On = None) -> CoreSellers:
    return await answer(queries.core_sellers(session, ward_code, on or queries.today_in_vietnam(), core_rule(runtime)))


@router.put(
    "/kpis/communes/{ward_code}/core-seller-target",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set the commune's target of core sellers",
)
async def set_core_seller_target(ward_code: str, body: CoreSellerTargetIn, session: Session) -> Response:
    await answer(queries.set_core_seller_target(session, ward_code, body.core_sellers_target, body.due_on))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/kpis/communes/{ward_code}/ocop-share", response_model=OcopShare, summary="OCOP products online")
async def ocop_share(ward_code: str, session: Session, on: On = None) -> OcopShare:
    return await answer(queries.ocop_share(session, ward_code, on or queries.today_in_vietnam()))


@router.get("/kpis/communes/{ward_code}/top-products", response_model=list[ProductSales], summary="Best sellers")
async def top_products(
    ward_code: str, session: Session, days: Range, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[ProductSales]:
    return await answer(queries.top_products(session, ward_code, *days, limit))


@router.get("/kpis/communes/{ward_code}/channels", response_model=ChannelMix, summary="Orders per sales channel")
async def channel_mix(ward_code: str, session: Session, days: Range) -> ChannelMix:
    return await answer(queries.commune_channel_mix(session, ward_code, *days))


@router.get(
    "/kpis/communes/{ward_code}/fulfilment",
    response_model=Fulfilment,
    summary="Pickup and delivery times, success rate, returns, shipping fees and COD of the orders placed in the range",
)
async def fulfilment(ward_code: str, session: Session, days: Range) -> Fulfilment:
    return await answer(queries.fulfilment(session, ward_code, *days))


@router.get("/kpis/provinces/{province_code}", response_model=ProvinceKpis, summary="A province's communes ranked")
async def province_kpis(province_code: str, session: Session, days: Range, granularity: Period = "day") -> ProvinceKpis:
    return await answer(queries.province_kpis(session, province_code, *days, granularity))


@router.get("/kpis/provinces/{province_code}/report.csv", summary="The province report as CSV (UTF-8)")
async def province_report_csv(province_code: str, session: Session, days: Range) -> Response:
    report = await answer(queries.province_kpis(session, province_code, *days))
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
async def province_report_xlsx(province_code: str, session: Session, days: Range) -> Response:
    from vuonminh.analytics.exports import province_workbook

    report = await answer(queries.province_kpis(session, province_code, *days))
    return Response(
        province_workbook(report),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{_report_name(report)}.xlsx"'},
    )


def _report_name(report: ProvinceKpis) -> str:
    return f"bao-cao-tinh-{report.province_code}-{report.from_}-{report.to}"


@router.get("/kpis/sellers/{seller_id}", response_model=SellerKpis, summary="One seller's sales")
async def seller_kpis(seller_id: str, session: Session, days: Range, granularity: Period = "day") -> SellerKpis:
    return await answer(queries.seller_kpis(session, seller_id, *days, granularity))


@router.get("/kpis/products/{sku}", response_model=ProductKpis, summary="One product's sales (kg and tonnes)")
async def product_kpis(sku: str, session: Session, days: Range, granularity: Period = "day") -> ProductKpis:
    return await answer(queries.product_kpis(session, sku, *days, granularity))


@router.get("/kpis/livestreams/{livestream_id}", response_model=LivestreamKpis, summary="A livestream's results")
async def livestream_kpis(livestream_id: str, session: Session) -> LivestreamKpis:
    return await answer(queries.livestream_kpis(session, livestream_id))
