"""orders' HTTP API: the direct channel's webhook and the order queries."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import orjson
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from sqlalchemy import ColumnElement, false
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from vuonminh.orders import commands, intake, queries, shops, webhooks
from vuonminh.orders.channels import MARKETPLACES
from vuonminh.orders.channels.base import Marketplace, WebhookRejected
from vuonminh.orders.metrics import ORDER_CONFLICTS, WEBHOOKS_REJECTED
from vuonminh.orders.models import (
    AwaitingCatalogOut,
    DirectOrderWebhook,
    FulfilmentOut,
    LivestreamIn,
    LivestreamOut,
    Order,
    OrderCatalogWait,
    OrderConflictOut,
    OrderLineOut,
    OrderLineRow,
    OrderOut,
    OrderStatusEntry,
    ShopIn,
    ShopOut,
    StatusEntryOut,
)
from vuonminh.orders.settings import platform_settings
from vuonminh.shared.addresses import check_address_codes
from vuonminh.shared.app import NOT_FOUND_OR_NOT_YOURS, runtime_of, session_of
from vuonminh.shared.audit import audit_write
from vuonminh.shared.auth import Caller, Role, require
from vuonminh.shared.events import PlatformOrderNotified
from vuonminh.shared.metrics import WEBHOOK_LATENCY, WEBHOOKS
from vuonminh.shared.paging import Offset
from vuonminh.shared.privacy import buyer_out
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport import LogFull

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["orders"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of("orders"))]
Session = Annotated[AsyncSession, Depends(session_of("orders"))]
# Who reads orders: a platform integration its shops', a seller those it sells in, officials
# those of their communes' or provinces' sellers.
Reader = Annotated[Caller, Depends(require(Role.platform, Role.seller, Role.commune_official, Role.province_official))]
Operator = Annotated[Caller, Depends(require(Role.operator))]
Seller = Annotated[Caller, Depends(require(Role.seller))]  # a seller for its own sellers, or the operator


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


def _reply(
    channel: str,
    status_code: int,
    body: dict | None,
    *,
    started: float,
    headers: dict[str, str] | None = None,
    reason: str | None = None,
) -> Response:
    WEBHOOKS.labels(channel, str(status_code)).inc()
    WEBHOOK_LATENCY.labels(channel).observe(time.perf_counter() - started)
    if reason is not None:
        WEBHOOKS_REJECTED.labels(channel, reason).inc()
    if body is None:  # what the platforms expect: the status, an empty body
        return Response(status_code=status_code, headers=headers)
    return Response(orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json")


@router.post(
    "/webhooks/direct",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Take an order from a shop that sells directly (Standard Webhooks, signed with the shop's secret)",
    description="Signed per Standard Webhooks: `webhook-id` (the dedupe key), `webhook-timestamp`, "
    "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the shop's `whsec_` secret. "
    "Deprecated: `X-VuonMinh-Signature: t=<unix s>,v1=<hex>` is still accepted when those headers are absent.",
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
async def direct_order_webhook(request: Request, runtime: Runtime) -> Response:
    started = time.perf_counter()
    raw_body = await request.body()
    # The one parse of the body: it names the shop whose secrets check the signature.
    try:
        parsed = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        parsed = None
    claimed = parsed.get("shop_id") if isinstance(parsed, dict) else None
    claimed_shop = claimed.strip() if isinstance(claimed, str) else None
    try:
        webhook_id = await shops.verify_webhook(
            runtime,
            channel="direct",
            shop_id=claimed_shop,
            headers=request.headers,
            body=raw_body,
            now=int(time.time()),
        )
    except webhooks.SignatureError as error:
        return _reply("direct", 401, {"detail": str(error)}, started=started, reason="signature")
    except shops.ShopsUnavailable as error:
        return _reply("direct", 503, {"detail": str(error)}, started=started, headers={"Retry-After": "5"})
    if parsed is None:
        detail = [{"loc": [], "msg": "the body is not valid JSON", "type": "json_invalid"}]
        return _reply("direct", 422, {"detail": detail}, started=started, reason="not_json")
    try:
        webhook = DirectOrderWebhook.model_validate(parsed)
    except ValidationError as error:
        detail = jsonable_encoder(error.errors(include_url=False, include_input=False))
        return _reply("direct", 422, {"detail": detail}, started=started, reason="schema")
    address = webhook.buyer.address
    problem = check_address_codes(address.province_code, address.ward_code)
    if problem:
        detail = [{"loc": ["buyer", "address", "ward_code"], "msg": problem, "type": "address"}]
        return _reply("direct", 422, {"detail": detail}, started=started, reason="address")
    over_limits = intake.limit_errors(webhook)
    if over_limits:
        return _reply("direct", 422, {"detail": over_limits}, started=started, reason="limits")
    received = intake.order_received(webhook)
    conflict = await intake.lookup_of(runtime).conflict(received)
    if conflict:
        order_id, differs = conflict
        ORDER_CONFLICTS.labels("direct", "intake").inc()
        return _reply(
            "direct",
            409,
            {
                "detail": f"order {webhook.order_id!r} of shop {webhook.shop_id!r} is already placed with other "
                "content; a placed order is not changed by sending it again",
                "order_id": order_id,
                "differs": differs,
            },
            started=started,
            reason="conflict",
        )
    envelope = intake.intake_envelope(received, raw_body, webhook_id=webhook_id)
    try:
        await intake.accept(runtime.producer, envelope, timeout_s=runtime.settings.intake_timeout_s)
    except Exception as error:  # the log is unavailable: nothing was accepted, the shop retries
        log.error("orders.intake_unavailable", error=repr(error), event_id=envelope.id)
        detail = "order log full, retry later" if isinstance(error, LogFull) else "order log unavailable, retry later"
        return _reply("direct", 503, {"detail": detail}, started=started, headers={"Retry-After": "5"})
    return _reply(
        "direct", 202, {"status": "accepted", "event_id": envelope.id, "key": envelope.subject}, started=started
    )


def _marketplace_route(channel: Marketplace) -> None:
    """POST /v1/webhooks/<slug>: verify the platform's signature over the raw bytes (before parsing),
    read the notification, append it to the log, answer what the platform expects (200, empty body)."""

    async def platform_webhook(request: Request, runtime: Runtime) -> Response:
        started = time.perf_counter()
        raw_body = await request.body()
        try:
            channel.verify(raw_body, request.headers, platform_settings(runtime))
            notification = channel.read_notification(raw_body)
        except WebhookRejected as error:
            return _reply(channel.name, error.status, None, started=started, reason=error.reason)
        if notification is None:  # another kind of push (product, auth...): acknowledged, not ours to act on
            return _reply(channel.name, 200, None, started=started)
        event = PlatformOrderNotified(
            channel=channel.name,  # type: ignore[arg-type]
            shop_id=notification.shop_id,
            order_id=notification.order_id,
            platform_status=notification.platform_status,
            status_at=notification.status_at,
            notification_id=notification.identity,
            received_at=utc_now(),
        )
        envelope = intake.notification_envelope(event, slug=channel.slug)
        try:
            # Well inside the platform's deadline: it retries what we do not acknowledge in time.
            timeout_s = min(runtime.settings.intake_timeout_s, channel.deadline_s * 0.8)
            await intake.accept(runtime.producer, envelope, timeout_s=timeout_s)
        except Exception as error:
            log.error("orders.intake_unavailable", channel=channel.name, error=repr(error), event_id=envelope.id)
            return _reply(channel.name, 503, None, started=started, headers={"Retry-After": "5"})
        return _reply(channel.name, 200, None, started=started)

    router.add_api_route(
        f"/webhooks/{channel.slug}",
        platform_webhook,
        methods=["POST"],
        name=f"{channel.name}_webhook",
        summary=f"{channel.name} order notifications (signed by the platform; 200 with an empty body)",
        response_class=Response,
        responses={
            200: {"description": "verified and appended (or a push kind orders does not act on)"},
            channel.bad_signature_status: {"description": "missing or wrong signature"},
            channel.bad_body_status: {"description": "not JSON, or not the platform's documented shape"},
            413: {"description": "body over 256 KiB"},
            503: {"description": "log unavailable, the platform retries"},
        },
    )


for _channel in MARKETPLACES.values():
    _marketplace_route(_channel)


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
        platform_status=order.platform_status,
        buyer=buyer_out(
            name=order.buyer_name,
            phone=order.buyer_phone,
            province_code=order.buyer_province_code,
            ward_code=order.buyer_ward_code,
            line=order.buyer_address_line,
            reveal=reveal,
        ),
        buyer_legacy_district=order.buyer_legacy_district,
        lines=[OrderLineOut.model_validate(line, from_attributes=True) for line in lines],
        fulfilments=_fulfilments(lines),
        total_vnd=order.total_vnd,
        total_weight_g=order.total_weight_g,
        rejection_reasons=order.rejection_reasons,  # type: ignore[arg-type]
        awaiting_catalog=awaiting,
        conflicts=[OrderConflictOut.model_validate(conflict) for conflict in order.conflicts],
    )


def _fulfilments(lines: list[OrderLineRow]) -> list[FulfilmentOut]:
    by_seller: dict[str, list[OrderLineRow]] = defaultdict(list)
    for line in lines:
        by_seller[line.seller_id].append(line)
    return [
        FulfilmentOut(
            seller_id=seller_id,
            seller_ward_code=own[0].seller_ward_code,
            skus=[line.sku for line in own],
            total_vnd=sum(line.line_total_vnd for line in own),
            weight_g=sum(line.line_weight_g for line in own),
        )
        for seller_id, own in by_seller.items()
    ]


@router.get(
    "/orders",
    response_model=list[OrderOut],
    summary="Orders, newest first, filtered; the next page's cursor is in the X-Next-Cursor header",
)
async def list_orders(
    response: Response,
    session: Session,
    caller: Reader,
    shop_id: str | None = None,
    seller_id: Annotated[str | None, Query(description="orders with a line of this seller")] = None,
    channel: Annotated[str | None, Query(pattern="^(direct|tiktok_shop|shopee|lazada)$")] = None,
    order_id: Annotated[str | None, Query(description="the shop's or platform's own order id")] = None,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            pattern="^(awaiting_payment|awaiting_catalog|placed|confirmed|rejected|cancelled|shipped|delivered|returned)$",
        ),
    ] = None,
    livestream_id: str | None = None,
    placed_from: Annotated[datetime | None, Query(description="placed at or after, with an offset")] = None,
    placed_to: Annotated[datetime | None, Query(description="placed before, with an offset")] = None,
    cursor: Annotated[str | None, Query(description="X-Next-Cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[OrderOut]:
    for name, moment in (("placed_from", placed_from), ("placed_to", placed_to)):
        if moment is not None and moment.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset, e.g. 2026-11-23T09:00:00+07:00")
    if placed_from and placed_to and placed_to <= placed_from:
        raise HTTPException(422, "placed_to must be after placed_from")
    filters = queries.OrderFilters(
        shop_id=shop_id,
        seller_id=seller_id,
        channel=channel,
        status=status_,
        livestream_id=livestream_id,
        order_id=order_id,
        placed_from=placed_from,
        placed_to=placed_to,
    )
    try:
        page, next_cursor = await queries.order_page(
            session, filters, scope=visible_orders(caller), limit=limit, offset=offset, cursor=cursor
        )
    except queries.BadCursor as error:
        raise HTTPException(422, str(error)) from error
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
    return await _orders_out(session, page, caller)


@router.post(
    "/shops",
    response_model=ShopOut,
    status_code=status.HTTP_201_CREATED,
    summary="Connect a shop: a direct shop gets a webhook secret (shown once); a marketplace shop its API tokens",
)
async def connect_shop(body: ShopIn, runtime: Runtime, caller: Operator) -> ShopOut:
    try:
        box = shops.SecretBox(runtime.settings.secrets_key)
        async with runtime.unit_of_work() as uow:
            out = await commands.connect_shop(uow, box, body)
            audit_write(
                uow, caller, "connect_shop", target=("shop", f"{body.channel}:{body.shop_id}"), outcome="created"
            )
    except commands.CommandError as error:
        raise HTTPException(422, str(error)) from error
    except shops.SecretsKeyMissing as error:
        raise HTTPException(503, str(error)) from error
    await shops.registry_of(runtime).reload_within(runtime.settings.intake_lookup_timeout_s)
    return out


@router.post(
    "/livestreams",
    response_model=LivestreamOut,
    status_code=status.HTTP_201_CREATED,
    summary="Schedule (or change) a livestream; orders placed on its shop within the window count for it",
)
async def schedule_livestream(body: LivestreamIn, runtime: Runtime, caller: Seller) -> LivestreamOut:
    if caller.role is Role.seller and body.seller_id not in caller.seller_ids:
        raise HTTPException(404, f"seller {body.seller_id!r} not found")
    try:
        async with runtime.unit_of_work() as uow:
            live = await commands.schedule_livestream(uow, body)
            audit_write(uow, caller, "schedule_livestream", target=("livestream", body.livestream_id), outcome="saved")
            return live
    except commands.CommandError as error:
        raise HTTPException(422, str(error)) from error


@router.get("/orders/{id}", response_model=OrderOut, responses={404: NOT_FOUND_OR_NOT_YOURS})
async def get_order(id: str, session: Session, caller: Reader) -> OrderOut:  # noqa: A002 - the API's name for it
    query = select(Order).where(Order.id == id)
    if (scope := visible_orders(caller)) is not None:
        query = query.where(scope)
    order = (await session.exec(query)).first()
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {id!r} not found")
    out = (await _orders_out(session, [order], caller))[0]
    history = select(OrderStatusEntry).where(OrderStatusEntry.order_id == id).order_by(col(OrderStatusEntry.id))
    out.status_history = [
        StatusEntryOut.model_validate(entry, from_attributes=True) for entry in (await session.exec(history)).all()
    ]
    return out
