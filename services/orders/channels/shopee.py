"""Shopee Open Platform v2: push code 3 (order status), `get_order_detail` and its status map.

Sources (../shared/reference/integrations.md §2): push mechanism and `Authorization` = hex
HMAC-SHA256(partner_key, callback_url + "|" + raw body) from Shopee's guide (don't re-serialise the
JSON); code-3 bodies from live samples; OrderStatus and get_order_detail fields from Shopee's data
definitions. Reply 2xx with an empty body. Shopee documents no rejection status: 401 for a bad signature,
400 for a body that is not a push. Which address field holds the 2025 ward is [U]: the adapter tries
`town`, then `district`, and keeps the legacy district (`city` or `district`) it finds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson

from vuonminh.orders.channels.base import (
    Notification,
    PlatformError,
    ShapeError,
    WebhookRejected,
    check_hex_signature,
    hex_hmac_sha256,
    require,
    utc_from_unix,
    vnd,
)
from vuonminh.orders.platform_api import PlatformClient, ShopConnection, TokenGrant
from vuonminh.orders.settings import PlatformSettings
from vuonminh.shared.addresses import resolve_names
from vuonminh.shared.events import BuyerAddressV2, BuyerV2, OrderReceivedV2, PlatformItem
from vuonminh.shared.timeutil import utc_now

ORDER_STATUS_PUSH = 3
DETAIL_PATH = "/api/v2/order/get_order_detail"
TOKEN_PATH = "/api/v2/auth/access_token/get"
OPTIONAL_FIELDS = "buyer_username,recipient_address,item_list,pay_time,payment_method,total_amount,cancel_by"
# [U] Shopee's error strings: these mean "try later"; these mean the token is refused.
RETRYABLE_ERRORS = ("error_busy", "error_server", "too_many", "rate_limit", "error_inner")
TOKEN_ERRORS = ("invalid_access_token", "error_auth", "invalid_acceess_token")
LEGACY_DISTRICT_PREFIXES = ("quận ", "huyện ", "thị xã ")


class Shopee:
    name: ClassVar[str] = "shopee"
    slug: ClassVar[str] = "shopee"
    deadline_s: ClassVar[float] = 3.0
    bad_signature_status: ClassVar[int] = 401
    bad_body_status: ClassVar[int] = 400
    batch_size: ClassVar[int] = 50
    requests_per_s: ClassVar[float] = 10.0
    status_map: ClassVar[Mapping[str, str]] = {
        "UNPAID": "unpaid",
        "READY_TO_SHIP": "to_ship",
        "PROCESSED": "to_ship",
        "RETRY_SHIP": "to_ship",
        "IN_CANCEL": "to_ship",  # the buyer asked to cancel; the seller has not agreed yet
        "INVOICE_PENDING": "to_ship",
        "SHIPPED": "shipped",
        "TO_CONFIRM_RECEIVE": "delivered",
        "COMPLETED": "delivered",
        "CANCELLED": "cancelled",
        "TO_RETURN": "returned",
    }

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: PlatformSettings) -> None:
        if not settings.shopee_partner_key or not settings.shopee_callback_url:
            raise WebhookRejected(401, "not_configured", "Shopee is not configured on this server")
        expected = hex_hmac_sha256(settings.shopee_partner_key, settings.shopee_callback_url.encode() + b"|" + raw)
        check_hex_signature(headers.get("authorization"), expected, status=401, header_name="Authorization")

    def read_notification(self, raw: bytes) -> Notification | None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise WebhookRejected(self.bad_body_status, "not_json", "the body is not JSON") from error
        try:
            code = require(body, "code", int, where="body")
            shop_id = str(require(body, "shop_id", int | str, where="body"))
            if code != ORDER_STATUS_PUSH:
                return None
            data = require(body, "data", dict, where="body")
            order_sn = require(data, "ordersn", str, where="data")
            status = require(data, "status", str, where="data")
            update_time = data.get("update_time", body.get("timestamp"))
            status_at = utc_from_unix(update_time, field="data.update_time")
        except ShapeError as error:
            raise WebhookRejected(self.bad_body_status, "schema", str(error)) from error
        identity = body.get("msg_id") or f"{shop_id}:{order_sn}:{status}:{update_time}"
        return Notification(
            shop_id=shop_id, order_id=order_sn, platform_status=status, status_at=status_at, identity=str(identity)
        )

    def sign_request(
        self, partner_key: str, partner_id: int, path: str, timestamp: int, token: str, shop_id: str
    ) -> str:
        return hex_hmac_sha256(partner_key, f"{partner_id}{path}{timestamp}{token}{shop_id}".encode())

    async def fetch_orders(
        self, client: PlatformClient, shop: ShopConnection, order_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        settings = client.settings
        if settings.shopee_partner_id is None or not settings.shopee_partner_key:
            raise PlatformError("not_configured", "SHOPEE_PARTNER_ID/PARTNER_KEY are not set", retryable=True)
        partner_id, key = settings.shopee_partner_id, settings.shopee_partner_key

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            timestamp = int(time.time())
            query = {
                "partner_id": str(partner_id),
                "timestamp": str(timestamp),
                "access_token": shop.access_token,
                "shop_id": shop.shop_id,
                "sign": self.sign_request(key, partner_id, DETAIL_PATH, timestamp, shop.access_token, shop.shop_id),
                "order_sn_list": ",".join(order_ids),
                "response_optional_fields": OPTIONAL_FIELDS,
            }
            return settings.shopee_api_base.rstrip("/") + DETAIL_PATH, query, {}

        body = await client.get_json(
            self.name, shop.shop_id, rate_per_s=self.requests_per_s, request=request, check=self.check_body
        )
        response = require(body, "response", dict, where="answer")
        return require(response, "order_list", list, where="answer.response")

    async def refresh(self, client: PlatformClient, shop_id: str, refresh_token: str) -> TokenGrant:
        """Shopee's POST /api/v2/auth/access_token/get (signed with partner id, path and timestamp)."""
        settings = client.settings
        partner_id, key = settings.shopee_partner_id or 0, settings.shopee_partner_key or ""

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            timestamp = int(time.time())
            sign = hex_hmac_sha256(key, f"{partner_id}{TOKEN_PATH}{timestamp}".encode())
            query = {"partner_id": str(partner_id), "timestamp": str(timestamp), "sign": sign}
            return settings.shopee_api_base.rstrip("/") + TOKEN_PATH, query, {}

        body = await client.get_json(
            self.name,
            shop_id,
            rate_per_s=1.0,
            request=request,
            check=self.check_body,
            method="POST",
            json_body={"refresh_token": refresh_token, "partner_id": partner_id, "shop_id": int(shop_id)},
        )
        expire_in = require(body, "expire_in", int, where="answer")
        return TokenGrant(
            access_token=require(body, "access_token", str, where="answer"),
            refresh_token=require(body, "refresh_token", str, where="answer"),
            access_expires_at=utc_now() + timedelta(seconds=expire_in),
        )

    def check_body(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ShapeError("answer: expected an object")
        error = body.get("error") or ""
        if not error:
            return
        lowered = str(error).lower()
        raise PlatformError(
            str(error),
            str(body.get("message", "")),
            retryable=any(part in lowered for part in RETRYABLE_ERRORS),
            auth=any(part in lowered for part in TOKEN_ERRORS),
        )

    def order_id_of(self, detail: Mapping[str, Any]) -> str:
        return require(detail, "order_sn", str, where="order")

    def normalise(
        self, detail: Mapping[str, Any], *, shop_id: str, received_at: datetime | None = None
    ) -> OrderReceivedV2:
        where = f"order {detail.get('order_sn')!r}"
        platform_status = require(detail, "order_status", str, where=where)
        status = self.status_map.get(platform_status)
        if status is None:
            raise ShapeError(f"{where}.order_status: {platform_status!r} is not a documented Shopee order status")
        lines = []
        for index, item in enumerate(require(detail, "item_list", list, where=where)):
            at = f"{where}.item_list[{index}]"
            quantity = require(item, "model_quantity_purchased", int, where=at)
            model_id = item.get("model_id")
            platform_sku = str(model_id) if model_id not in (None, 0) else str(require(item, "item_id", int, where=at))
            lines.append(
                PlatformItem(
                    sku=item.get("model_sku") or item.get("item_sku") or platform_sku,
                    platform_sku_id=platform_sku,
                    platform_product_id=str(item.get("item_id")) if item.get("item_id") is not None else None,
                    name=item.get("item_name"),
                    quantity=quantity,
                    unit_price_vnd=vnd(item.get("model_discounted_price"), field=f"{at}.model_discounted_price"),
                )
            )
        if not lines:
            raise ShapeError(f"{where}.item_list: an order without items")
        return OrderReceivedV2(
            channel="shopee",
            shop_id=shop_id,
            order_id=self.order_id_of(detail),
            placed_at=utc_from_unix(detail.get("create_time"), field=f"{where}.create_time"),
            buyer=self._buyer(detail.get("recipient_address"), where=where),
            items=tuple(lines),
            payment_method="cod" if detail.get("cod") else "prepaid",
            total_vnd=vnd(detail.get("total_amount"), field=f"{where}.total_amount"),
            status=status,  # type: ignore[arg-type]
            platform_status=platform_status,
            status_at=utc_from_unix(detail.get("update_time", detail.get("create_time")), field=f"{where}.update_time"),
            received_at=received_at or utc_now(),
        )

    def _buyer(self, address: Any, *, where: str) -> BuyerV2 | None:
        if not isinstance(address, dict) or not address.get("name"):
            return None  # hidden while unpaid
        at = f"{where}.recipient_address"
        province = address.get("state")
        province_code, ward_code = None, None
        for candidate in (address.get("town"), address.get("district")):
            if candidate:
                province_code, ward_code = resolve_names(province, candidate)
                if ward_code:
                    break
        legacy = next(
            (
                str(value)
                for value in (address.get("city"), address.get("district"))
                if isinstance(value, str) and value.casefold().startswith(LEGACY_DISTRICT_PREFIXES)
            ),
            None,
        )
        line = address.get("full_address")
        return BuyerV2(
            name=require(address, "name", str, where=at),
            phone=require(address, "phone", str, where=at),
            address=BuyerAddressV2(
                province_code=province_code,
                ward_code=ward_code,
                legacy_district=legacy,
                line=line if isinstance(line, str) and line.strip() else "-",
            ),
        )
