"""analytics' HTTP API: KPIs per commune."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import distinct, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.analytics import domain
from vuonminh.analytics.models import CommuneKpis, DailyKpis, SellerOrderFact, ShipmentFact
from vuonminh.shared.addresses import find_province, find_ward, province_code_of
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, session_of
from vuonminh.shared.auth import Caller, Role, require

router = APIRouter(prefix="/v1", tags=["analytics"])
Session = Annotated[AsyncSession, Depends(session_of("analytics"))]
# Officials read their communes' (or provinces') KPIs.
Official = Annotated[Caller, Depends(require(Role.commune_official, Role.province_official))]


@router.get(
    "/kpis/communes/{ward_code}",
    response_model=CommuneKpis,
    summary="Sales KPIs of one commune/ward's sellers over Vietnam calendar days [from, to]",
    responses={404: NOT_FOUND_OR_NOT_YOURS},
)
async def commune_kpis(
    ward_code: str,
    session: Session,
    caller: Official,
    from_: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    to: Annotated[date, Query(description="last day (included), YYYY-MM-DD")],
) -> CommuneKpis:
    ward = find_ward(ward_code)
    # Another commune's KPIs answer as if it did not exist.
    if ward is None or not caller.may_see_place(ward_code=ward_code, province_code=province_code_of(ward)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no 2025 commune/ward has code {ward_code!r}")
    problem = domain.check_range(from_, to)
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
    facts = SellerOrderFact
    in_commune = (facts.ward_code == ward_code, col(facts.day) >= from_, col(facts.day) <= to)
    orders, gmv, grams, sellers = (
        await session.exec(
            select(
                func.count(distinct(facts.order_id)),
                func.coalesce(func.sum(facts.gmv_vnd), 0),
                func.coalesce(func.sum(facts.weight_g), 0),
                func.count(distinct(facts.seller_id)),
            ).where(*in_commune)
        )
    ).one()
    daily_rows = (
        await session.exec(
            select(facts.day, func.count(distinct(facts.order_id)), func.sum(facts.gmv_vnd), func.sum(facts.weight_g))
            .where(*in_commune)
            .group_by(facts.day)
            .order_by(facts.day)
        )
    ).all()
    shipments = (
        await session.exec(
            select(func.count()).where(
                ShipmentFact.ward_code == ward_code, col(ShipmentFact.day) >= from_, col(ShipmentFact.day) <= to
            )
        )
    ).one()
    province_code = province_code_of(ward)
    province = find_province(province_code)
    return CommuneKpis(
        ward_code=ward_code,
        ward_name=ward.name,
        province_code=province_code,
        province_name=province.name if province else "",
        from_=from_,
        to=to,
        orders=orders,
        gmv_vnd=int(gmv),
        kg_sold=domain.grams_to_kg(int(grams)),
        active_sellers=sellers,
        shipments=shipments,
        daily=[
            DailyKpis(day=day, orders=n, gmv_vnd=int(g), kg_sold=domain.grams_to_kg(int(w)))
            for day, n, g, w in daily_rows
        ],
    )
