"""orders' HTTP API: the direct channel's webhook and the order queries."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import intake, webhooks
from vuonminh.orders.models import DirectOrderWebhook, Order, OrderLineOut, OrderLineRow, OrderOut
from vuonminh.shared.addresses import check_address_codes
from vuonminh.shared.app import runtime_of, session_of
from vuonminh.shared.events.orders import Buyer, BuyerAddress
from vuonminh.shared.metrics import WEBHOOK_LATENCY, WEBHOOKS
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.transport import LogFull

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["orders"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("orders"))]
Session = Annotated[AsyncSession, Depends(session_of("orders"))]


def _reply(status_code: int, body: dict, *, started: float, headers: dict[str, str] | None = None) -> JSONResponse:
    WEBHOOKS.labels("direct", str(status_code)).inc()
    WEBHOOK_LATENCY.labels("direct").observe(time.perf_counter() - started)
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post(
    "/webhooks/direct",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Take an order from a shop that sells directly (signed, see X-VuonMinh-Signature)",
    responses={
        401: {"description": "bad signature"},
        413: {"description": "body over 256 KiB"},
        422: {"description": "malformed order"},
        503: {"description": "log unavailable, retry"},
    },
    # The body is read raw (the signature covers its exact bytes) and validated after the
    # signature check, so FastAPI is only told its shape for the docs.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DirectOrderWebhook"}}},
        }
    },
)
async def direct_order_webhook(request: Request, runtime: Runtime) -> JSONResponse:
    started = time.perf_counter()
    raw_body = await request.body()
    secret = runtime.settings.direct_secret
    if not secret:
        return _reply(
            503, {"detail": "the direct channel has no secret configured (VUONMINH_DIRECT_SECRET)"}, started=started
        )
    try:
        webhooks.verify(
            request.headers.get(webhooks.SIGNATURE_HEADER),
            raw_body,
            secret=secret,
            now=int(time.time()),
            tolerance_s=runtime.settings.signature_tolerance_s,
        )
    except webhooks.SignatureError as error:
        return _reply(401, {"detail": str(error)}, started=started)
    try:
        webhook = DirectOrderWebhook.model_validate_json(raw_body)
    except ValidationError as error:
        return _reply(
            422, {"detail": jsonable_encoder(error.errors(include_url=False, include_input=False))}, started=started
        )
    address = webhook.buyer.address
    problem = check_address_codes(address.province_code, address.ward_code)
    if problem:
        return _reply(
            422,
            {"detail": [{"loc": ["buyer", "address", "ward_code"], "msg": problem, "type": "address"}]},
            started=started,
        )
    envelope = intake.intake_envelope(intake.order_received(webhook), raw_body)
    try:
        await intake.accept(runtime.producer, envelope)
    except Exception as error:  # the log is unavailable: nothing was accepted, the shop retries
        log.error("orders.intake_unavailable", error=repr(error))
        detail = "order log full, retry later" if isinstance(error, LogFull) else "order log unavailable, retry later"
        return _reply(503, {"detail": detail}, started=started, headers={"Retry-After": "5"})
    return _reply(202, {"status": "accepted", "event_id": envelope.id, "key": envelope.subject}, started=started)


async def _orders_out(session: AsyncSession, orders: Sequence[Order]) -> list[OrderOut]:
    """The orders with their lines, fetched in one query for the whole page."""
    lines_by_order: dict[str, list[OrderLineRow]] = defaultdict(list)
    if orders:
        query = (
            select(OrderLineRow)
            .where(col(OrderLineRow.order_id).in_([order.id for order in orders]))
            .order_by(col(OrderLineRow.order_id), col(OrderLineRow.line_no))
        )
        for line in (await session.exec(query)).all():
            lines_by_order[line.order_id].append(line)
    return [_order_out(order, lines_by_order[order.id]) for order in orders]


def _order_out(order: Order, lines: list[OrderLineRow]) -> OrderOut:
    return OrderOut(
        id=order.id,
        channel=order.channel,  # type: ignore[arg-type]
        shop_id=order.shop_id,
        order_id=order.external_order_id,
        status=order.status,  # type: ignore[arg-type]
        placed_at=order.placed_at,
        received_at=order.received_at,
        livestream_id=order.livestream_id,
        payment_method=order.payment_method,  # type: ignore[arg-type]
        buyer=Buyer(
            name=order.buyer_name,
            phone=order.buyer_phone,
            address=BuyerAddress(
                province_code=order.buyer_province_code, ward_code=order.buyer_ward_code, line=order.buyer_address_line
            ),
        ),
        lines=[OrderLineOut.model_validate(line, from_attributes=True) for line in lines],
        total_vnd=order.total_vnd,
        total_weight_g=order.total_weight_g,
        rejection_reasons=order.rejection_reasons,  # type: ignore[arg-type]
    )


@router.get("/orders", response_model=list[OrderOut], summary="Orders, by shop and the shop's order id")
async def list_orders(
    session: Session,
    shop_id: str | None = None,
    order_id: Annotated[str | None, Query(description="the shop's own order id")] = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(placed|rejected)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[OrderOut]:
    query = select(Order).order_by(col(Order.placed_at).desc(), col(Order.id)).limit(limit).offset(offset)
    if shop_id:
        query = query.where(Order.shop_id == shop_id)
    if order_id:
        query = query.where(Order.external_order_id == order_id)
    if status_:
        query = query.where(Order.status == status_)
    return await _orders_out(session, (await session.exec(query)).all())


@router.get("/orders/{id}", response_model=OrderOut)
async def get_order(id: str, session: Session) -> OrderOut:  # noqa: A002 - the API's name for it
    order = await session.get(Order, id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {id!r} not found")
    return (await _orders_out(session, [order]))[0]
