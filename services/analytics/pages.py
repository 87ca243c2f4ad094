"""The officials' dashboard: server-rendered pages in Vietnamese, readable on a phone.

Each page calls the same query functions as the JSON API, so what a page shows is what the API
answers. Charts are drawn by Chart.js, served from this package (static/README.md).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from vuonminh.analytics import queries
from vuonminh.analytics.api import (
    Official,
    OfficialOrSeller,
    ProvinceOfficial,
    Runtime,
    Session,
    check_commune_scope,
    check_livestream_scope,
    check_province_scope,
    check_seller,
    core_rule,
)
from vuonminh.shared.addresses import find_ward
from vuonminh.shared.auth import public
from vuonminh.shared.timeutil import VIETNAM_TZ, as_utc, utc_now

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)
On = Annotated[date | None, Query(description="the day the page shows (default: today in Vietnam)")]
LIVESTREAM_POLL_S = 5
DAYS_SHOWN = 30
STATIC_FILES = {"chart.umd.min.js": "text/javascript", "dashboard.js": "text/javascript"}
CHANNEL_NAMES = {"tiktok_shop": "TikTok Shop", "shopee": "Shopee", "lazada": "Lazada", "direct": "Bán trực tiếp"}
T = TypeVar("T")


def show(value: Any, fmt: str = "number") -> str:
    """Vietnamese number formatting: 1.234.567 and 1,5 (as the browser's vi-VN does)."""
    if value is None:
        return "–"
    if fmt == "clock":
        return _local(value).strftime("%H:%M")
    if isinstance(value, float) and not value.is_integer():
        whole, _, decimals = f"{value:,.3f}".rstrip("0").partition(".")
        text = whole.replace(",", ".") + ("," + decimals if decimals else "")
    else:
        text = f"{int(value):,}".replace(",", ".")
    return {"vnd": f"{text} ₫", "kg": f"{text} kg"}.get(fmt, text)


def _local(moment: datetime) -> datetime:
    return as_utc(moment).astimezone(VIETNAM_TZ)


templates = Environment(loader=PackageLoader("vuonminh.analytics", "templates"), autoescape=select_autoescape())
templates.filters.update(
    show=show,
    vn_date=lambda d: d.strftime("%d/%m/%Y") if d else "",
    vn_day=lambda d: d.strftime("%d/%m"),
    vn_time=lambda t: _local(t).strftime("%H:%M %d/%m/%Y"),
    vn_clock=lambda t: _local(t).strftime("%H:%M"),
    channel_name=lambda c: CHANNEL_NAMES.get(c, c),
)


def page(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context))


async def found(query: Awaitable[T]) -> T:
    try:
        return await query
    except queries.NotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Không tìm thấy: {error}") from None


# Pages take the same credentials as the API (an `Authorization: Bearer` header) and the same scope.


@router.get("/communes/{ward_code}", response_class=HTMLResponse)
async def commune_page(
    ward_code: str, session: Session, caller: Official, runtime: Runtime, on: On = None
) -> HTMLResponse:
    await found(check_commune_scope(caller, ward_code))
    on = on or queries.today_in_vietnam()
    month_start = on - timedelta(days=DAYS_SHOWN - 1)
    return page(
        "commune.html",
        on=on,
        today=await found(queries.commune_kpis(session, ward_code, on, on)),
        week=await found(queries.commune_kpis(session, ward_code, *queries.this_week(on))),
        month=await found(queries.commune_kpis(session, ward_code, month_start, on)),
        core=await found(queries.core_sellers(session, ward_code, on, core_rule(runtime))),
        ocop=await found(queries.ocop_share(session, ward_code, on)),
        top=await found(queries.top_products(session, ward_code, month_start, on, 5)),
        channels=await found(queries.commune_channel_mix(session, ward_code, month_start, on)),
    )


@router.get("/provinces/{province_code}", response_class=HTMLResponse)
async def province_page(province_code: str, session: Session, caller: ProvinceOfficial, on: On = None) -> HTMLResponse:
    await found(check_province_scope(caller, province_code))
    on = on or queries.today_in_vietnam()
    start = on - timedelta(days=DAYS_SHOWN - 1)
    return page("province.html", report=await found(queries.province_kpis(session, province_code, start, on)))


@router.get("/sellers/{seller_id}", response_class=HTMLResponse)
async def seller_page(seller_id: str, session: Session, caller: OfficialOrSeller, on: On = None) -> HTMLResponse:
    await found(check_seller(session, caller, seller_id))
    on = on or queries.today_in_vietnam()
    kpis = await found(queries.seller_kpis(session, seller_id, on - timedelta(days=DAYS_SHOWN - 1), on))
    ward = find_ward(kpis.ward_code)
    return page("seller.html", kpis=kpis, ward_name=ward.name if ward else kpis.ward_code)


@router.get("/livestreams/{livestream_id}", response_class=HTMLResponse)
async def livestream_page(livestream_id: str, session: Session, caller: OfficialOrSeller) -> HTMLResponse:
    await found(check_livestream_scope(session, caller, livestream_id))
    live = await found(queries.livestream_kpis(session, livestream_id))
    rendered_at = _local(utc_now()).strftime("%H:%M:%S")
    return page("livestream.html", live=live, poll_seconds=LIVESTREAM_POLL_S, rendered_at=rendered_at)


@router.get("/static/{name}", dependencies=[Depends(public)])  # the charting library: nothing private
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name!r}")
    path = resources.files("vuonminh.analytics") / "static" / name
    return FileResponse(str(path), media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=86400"})
