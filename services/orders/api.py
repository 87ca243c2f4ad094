"""orders' HTTP API: the direct channel's webhook and the order queries."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import ColumnElement, false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import intake, shops, webhooks
from vuonminh.orders.metrics import ORDER_CONFLICTS
from vuonminh.orders.models import (
    AwaitingCatalogOut,
    DirectOrderWebhook,
    Order,
    OrderCatalogWait,
    OrderConflictOut,
    OrderLineOut,
    OrderLineRow,
    OrderOut,
)
from vuonminh.shared.addresses import check_address_codes
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, runtime_of, session_of
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.metrics import WEBHOOK_LATENCY, WEBHOOKS
from vuonminh.shared.paging import Limit, Offset
from vuonminh.shared.privacy import buyer_out
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.transport import LogFull

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["orders"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("orders"))]
Session = Annotated[AsyncSession, Depends(session_of("orders"))]
# Who reads orders: a platform integration its shops', a seller those it sells in, officials
# those of their communes' or provinces' sellers.
Reader = Annotated[Caller, Depends(require(Role.platform, Role.seller, Role.commune_official, Role.province_official))]


def _lines_where(caller: Caller) -> ColumnElement[bool] | None:
    """The order lines `caller` may see (None: all of them)."""
    if caller.role is Role.seller:
        return col(OrderLineRow.seller_id).in_(caller.seller_ids)
    if caller.role is Role.commune_official:
        return col(OrderLineRow.seller_ward_code).in_(caller.ward_codes)
    if caller.role is Role.province_official:
        return col(OrderLineRow.seller_province_code).in_(caller.province_codes)
    return None


def visible_orders(caller: Caller) -> ColumnElement[bool] | None:
    """The orders `caller` may see, as a condition on Order (None: all of them)."""
    if caller.is_operator:
        return None
    if caller.role is Role.platform:
        return col(Order.shop_id).in_(caller.shop_ids)
    lines = _lines_where(caller)
    if lines is None:
        return false()
    return col(Order.id).in_(select(OrderLineRow.order_id).where(lines))


def _reply(status_code: int, body: dict, *, started: float, headers: dict[str, str] | None = None) -> JSONResponse:
    WEBHOOKS.labels("direct", str(status_code)).inc()
    WEBHOOK_LATENCY.labels("direct").observe(time.perf_counter() - started)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _claimed_shop(raw_body: bytes) -> str | None:
    """The shop_id the body names, read before the signature is checked (it says whose secret
    to check it with); None when the body is not a JSON object naming one."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        return None
    shop_id = body.get("shop_id") if isinstance(body, dict) else None
    return shop_id.strip() if isinstance(shop_id, str) else None


@router.post(
    "/webhooks/direct",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Take an order from a shop that sells directly (signed with the shop's secret, see X-VuonMinh-Signature)",
    responses={
        401: {"description": "bad signature, or a shop that is not registered"},
        409: {"description": "the order is already placed with other content; `differs` names the fields"},
        413: {"description": "body over 256 KiB"},
        422: {"description": "malformed order, or amounts over the limits"},
        503: {"description": "log (or the shops' secrets) unavailable, retry"},
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
    claimed_shop = _claimed_shop(raw_body)
    try:
        await shops.verify_webhook(
            runtime,
            channel="direct",
            shop_id=claimed_shop,
            header=request.headers.get(webhooks.SIGNATURE_HEADER),
            body=raw_body,
            now=int(time.time()),
        )
    except webhooks.SignatureError as error:
        return _reply(401, {"detail": str(error)}, started=started)
    except shops.ShopsUnavailable as error:
        return _reply(503, {"detail": str(error)}, started=started, headers={"Retry-After": "5"})
    try:
        webhook = DirectOrderWebhook.model_validate_json(raw_body)
    except ValidationError as error:
        return _reply(
            422, {"detail": jsonable_encoder(error.errors(include_url=False, include_input=False))}, started=started
        )
    if webhook.shop_id != claimed_shop:  # e.g. a duplicated key read two ways: never trust it
        return _reply(401, {"detail": "the body's shop_id is ambiguous"}, started=started)
    address = webhook.buyer.address
    problem = check_address_codes(address.province_code, address.ward_code)
    if problem:
        return _reply(
            422,
            {"detail": [{"loc": ["buyer", "address", "ward_code"], "msg": problem, "type": "address"}]},
            started=started,
        )
    over_limits = intake.limit_errors(webhook)
    if over_limits:
        return _reply(422, {"detail": over_limits}, started=started)
    received = intake.order_received(webhook)
    conflict = await intake.lookup_of(runtime).conflict(received)
    if conflict:
        order_id, differs = conflict
        ORDER_CONFLICTS.labels("direct", "intake").inc()
        return _reply(
            409,
            {
                "detail": f"order {webhook.order_id!r} of shop {webhook.shop_id!r} is already placed with other "
                "content; a placed order is not changed by sending it again",
                "order_id": order_id,
                "differs": differs,
            },
            started=started,
        )
    envelope = intake.intake_envelope(received, raw_body)
    try:
        await intake.accept(runtime.producer, envelope, timeout_s=runtime.settings.intake_timeout_s)
    except Exception as error:  # the log is unavailable: nothing was accepted, the shop retries
        log.error("orders.intake_unavailable", error=repr(error), event_id=envelope.id)
        detail = "order log full, retry later" if isinstance(error, LogFull) else "order log unavailable, retry later"
        return _reply(503, {"detail": detail}, started=started, headers={"Retry-After": "5"})
    return _reply(202, {"status": "accepted", "event_id": envelope.id, "key": envelope.subject}, started=started)


async def _orders_out(session: AsyncSession, orders: Sequence[Order], caller: Caller) -> list[OrderOut]:
    """The orders with their lines and what the parked ones wait for, in one query each for the page.

    A seller sees its own lines of an order, an official those of its communes' sellers. Buyers'
    personal data is shown to the operator and the selling seller only (masked for the others)."""
    ids = [order.id for order in orders]
    lines_by_order: dict[str, list[OrderLineRow]] = defaultdict(list)
    waits_by_order: dict[str, list[OrderCatalogWait]] = defaultdict(list)
    if ids:
        query = (
            select(OrderLineRow)
            .where(col(OrderLineRow.order_id).in_(ids))
            .order_by(col(OrderLineRow.order_id), col(OrderLineRow.line_no))
        )
        if (lines_scope := _lines_where(caller)) is not None:
            query = query.where(lines_scope)
        for line in (await session.exec(query)).all():
            lines_by_order[line.order_id].append(line)
        if any(order.status == "awaiting_catalog" for order in orders):
            waits = select(OrderCatalogWait).where(col(OrderCatalogWait.order_id).in_(ids))
            for wait in (await session.exec(waits.order_by(col(OrderCatalogWait.ref)))).all():
                waits_by_order[wait.order_id].append(wait)
    reveal = caller.role in (Role.operator, Role.seller)  # a seller sees only orders it sells in
    return [_order_out(order, lines_by_order[order.id], waits_by_order[order.id], reveal) for order in orders]


def _order_out(order: Order, lines: list[OrderLineRow], waits: list[OrderCatalogWait], reveal: bool) -> OrderOut:
    awaiting = None
    if order.status == "awaiting_catalog":
        awaiting = AwaitingCatalogOut(
            since=order.awaiting_since or order.received_at,
            skus=[wait.ref for wait in waits if wait.kind == "sku"],
            seller_ids=[wait.ref for wait in waits if wait.kind == "seller"],
        )
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
        buyer=buyer_out(
            name=order.buyer_name,
            phone=order.buyer_phone,
            province_code=order.buyer_province_code,
            ward_code=order.buyer_ward_code,
            line=order.buyer_address_line,
            reveal=reveal,
        ),
        lines=[OrderLineOut.model_validate(line, from_attributes=True) for line in lines],
        total_vnd=order.total_vnd,
        total_weight_g=order.total_weight_g,
        rejection_reasons=order.rejection_reasons,  # type: ignore[arg-type]
        awaiting_catalog=awaiting,
        conflicts=[OrderConflictOut.model_validate(conflict) for conflict in order.conflicts],
    )


@router.get("/orders", response_model=list[OrderOut], summary="Orders, by shop and the shop's order id")
async def list_orders(
    session: Session,
    caller: Reader,
    shop_id: str | None = None,
    order_id: Annotated[str | None, Query(description="the shop's own order id")] = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(placed|rejected|awaiting_catalog)$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[OrderOut]:
    query = select(Order).order_by(col(Order.placed_at).desc(), col(Order.id)).limit(limit).offset(offset)
    if (scope := visible_orders(caller)) is not None:
        query = query.where(scope)
    if shop_id:
        query = query.where(Order.shop_id == shop_id)
    if order_id:
        query = query.where(Order.external_order_id == order_id)
    if status_:
        query = query.where(Order.status == status_)
    return await _orders_out(session, (await session.exec(query)).all(), caller)


@router.get("/orders/{id}", response_model=OrderOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_order(id: str, session: Session, caller: Reader) -> OrderOut:  # noqa: A002 - the API's name for it
    query = select(Order).where(Order.id == id)
    if (scope := visible_orders(caller)) is not None:
        query = query.where(scope)
    order = (await session.exec(query)).first()
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {id!r} not found")
    return (await _orders_out(session, [order], caller))[0]
