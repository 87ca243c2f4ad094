"""The officials' dashboard: server-rendered pages in Vietnamese, readable on a phone.

Each page calls the same query functions as the JSON API, so what a page shows is what the API
answers. Charts are drawn by Chart.js, served from this package (static/README.md).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from vuonminh.analytics import queries
from vuonminh.analytics.api import (
    Runtime,
    Session,
    check_commune_scope,
    check_livestream_scope,
    check_province_scope,
    check_seller,
    core_rule,
)
from vuonminh.shared.addresses import find_ward
from vuonminh.shared.auth import (
    SESSION_COOKIE,
    Caller,
    Role,
    Unauthenticated,
    authenticator_of,
    public,
    require,
)
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
    # A no-break space keeps the unit on the number's line.
    return {"vnd": f"{text}\u00a0₫", "kg": f"{text}\u00a0kg"}.get(fmt, text)


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


# Pages take the same credentials as the API and the same scope: an `Authorization: Bearer` header, or
# the cookie a browser gets by signing in on /dashboard/login (a browser without either is sent there).
LOGIN_PATH = "/dashboard/login"
SIGNED_IN_FOR_S = 12 * 3600
Official = Annotated[Caller, Depends(require(Role.commune_official, Role.province_official, sign_in=LOGIN_PATH))]
ProvinceOfficial = Annotated[Caller, Depends(require(Role.province_official, sign_in=LOGIN_PATH))]
OfficialOrSeller = Annotated[
    Caller, Depends(require(Role.commune_official, Role.province_official, Role.seller, sign_in=LOGIN_PATH))
]
ROLE_NAMES = {
    Role.operator: "quản trị",
    Role.commune_official: "cán bộ xã",
    Role.province_official: "cán bộ tỉnh",
    Role.seller: "người bán",
}


def _safe_next(target: str | None) -> str | None:
    """Only a dashboard page of this site: never an open redirect."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _landing(caller: Caller) -> str | None:
    """The page a signed-in caller most likely wants: its commune, province or seller."""
    for prefix, scope in (
        ("communes", caller.ward_codes),
        ("provinces", caller.province_codes),
        ("sellers", caller.seller_ids),
    ):
        if scope:
            return f"/dashboard/{prefix}/{sorted(scope)[0]}"
    return None


@router.get(LOGIN_PATH.removeprefix("/dashboard"), response_class=HTMLResponse, dependencies=[Depends(public)])
async def login_page(next: str | None = None) -> HTMLResponse:  # noqa: A002 - the query parameter's name
    return page("login.html", next=_safe_next(next))


@router.post(LOGIN_PATH.removeprefix("/dashboard"), response_class=HTMLResponse, dependencies=[Depends(public)])
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    credential = (form.get("credential") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    try:
        caller = await authenticator_of(request).authenticate(credential)
    except Unauthenticated:
        problem = "Mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi." if credential else "Hãy nhập mã truy cập."
        response = page("login.html", next=target, problem=problem)
        response.status_code = status.HTTP_401_UNAUTHORIZED
        return response
    if caller.role not in ROLE_NAMES:
        response = page("login.html", next=target, problem="Mã này không dùng để xem bảng số liệu.")
        response.status_code = status.HTTP_403_FORBIDDEN
        return response
    landing = target or _landing(caller)
    if landing is None:
        response = page("login.html", signed_in_as=ROLE_NAMES[caller.role])
    else:
        response = RedirectResponse(landing, status_code=status.HTTP_303_SEE_OTHER)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        SESSION_COOKIE,
        credential,
        max_age=SIGNED_IN_FOR_S,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", dependencies=[Depends(public)])
async def logout() -> RedirectResponse:
    response = RedirectResponse(LOGIN_PATH, status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


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
