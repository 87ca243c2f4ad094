"""TikTok Shop: webhooks, the order-detail API (version 202507) and its status map.

Sources (../shared/reference/integrations.md §1): the webhook envelope and statuses from TikTok's
partner docs (order status change, type 1); the webhook signature, not in TikTok's public pages, as
hookdeck's skill documents it [U]: `Authorization` = hex HMAC-SHA256(app_secret, app_key + raw body);
the API request signature from TikTok's "sign your API request" guide. Replies: 200 with an empty body,
or 401; within 3 s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson

from vuonminh.orders.channels.base import (
    Notification,
    PlatformError,
    ShapeError,
    WebhookRejected,
    check_hex_signature,
    fold_units,
    hex_hmac_sha256,
    require,
    utc_from_unix,
    vnd,
)
from vuonminh.orders.platform_api import PlatformClient, ShopConnection, TokenGrant, query_string_for_signing
from vuonminh.orders.settings import PlatformSettings
from vuonminh.shared.addresses import resolve_names
from vuonminh.shared.events import BuyerAddressV2, BuyerV2, OrderReceivedV2, PlatformItem
from vuonminh.shared.timeutil import utc_now

ORDER_STATUS_CHANGE = 1
ORDERS_PATH = "/order/202507/orders"
# Body codes that mean the access token is refused (expired or revoked) [U: TikTok's error code list].
TOKEN_CODES = {105001, 105002}
# Body codes that mean "slow down" [U]; HTTP 429 is handled for every platform.
THROTTLE_CODES = {36009003, 36009004}


class TikTokShop:
    name: ClassVar[str] = "tiktok_shop"
    slug: ClassVar[str] = "tiktok-shop"
    deadline_s: ClassVar[float] = 3.0
    bad_signature_status: ClassVar[int] = 401
    # TikTok documents only 200 and 401 as replies; a body that does not parse is refused with 401 too.
    bad_body_status: ClassVar[int] = 401
    batch_size: ClassVar[int] = 50
    requests_per_s: ClassVar[float] = 50.0  # per app and shop
    status_map: ClassVar[Mapping[str, str]] = {
        "UNPAID": "unpaid",
        # ON_HOLD: paid, within the buyer's remorse window; stock is held, shipping waits for the platform.
        "ON_HOLD": "to_ship",
        "AWAITING_SHIPMENT": "to_ship",
        "PARTIALLY_SHIPPING": "to_ship",
        "AWAITING_COLLECTION": "to_ship",
        "IN_TRANSIT": "shipped",
        "DELIVERED": "delivered",
        "COMPLETED": "delivered",
        "CANCEL": "cancelled",  # the webhook's spelling
        "CANCELLED": "cancelled",  # the API's spelling
    }

    # -- webhook -------------------------------------------------------------------------------------------
    def verify(self, raw: bytes, headers: Mapping[str, str], settings: PlatformSettings) -> None:
        if not settings.tiktok_shop_app_key or not settings.tiktok_shop_app_secret:
            raise WebhookRejected(401, "not_configured", "TikTok Shop is not configured on this server")
        expected = hex_hmac_sha256(settings.tiktok_shop_app_secret, settings.tiktok_shop_app_key.encode() + raw)
        check_hex_signature(headers.get("authorization"), expected, status=401, header_name="Authorization")

    def read_notification(self, raw: bytes) -> Notification | None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise WebhookRejected(self.bad_body_status, "not_json", "the body is not JSON") from error
        try:
            kind = require(body, "type", int, where="body")
            notification_id = str(require(body, "tts_notification_id", str | int, where="body"))
            shop_id = str(require(body, "shop_id", str | int, where="body"))
            if kind != ORDER_STATUS_CHANGE:
                return None
            data = require(body, "data", dict, where="body")
            order_id = str(require(data, "order_id", str | int, where="data"))
            status = require(data, "order_status", str, where="data")
            status_at = utc_from_unix(data.get("update_time", body.get("timestamp")), field="data.update_time")
        except ShapeError as error:
            raise WebhookRejected(self.bad_body_status, "schema", str(error)) from error
        return Notification(
            shop_id=shop_id, order_id=order_id, platform_status=status, status_at=status_at, identity=notification_id
        )

    # -- Open API ------------------------------------------------------------------------------------------
    def sign_request(self, secret: str, path: str, query: Mapping[str, str], body: bytes = b"") -> str:
        base = path + query_string_for_signing(query, leave_out=("sign", "access_token")) + body.decode()
        return hex_hmac_sha256(secret, f"{secret}{base}{secret}".encode())

    async def fetch_orders(
        self, client: PlatformClient, shop: ShopConnection, order_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        settings = client.settings
        if not settings.tiktok_shop_app_key or not settings.tiktok_shop_app_secret:
            raise PlatformError("not_configured", "TIKTOK_SHOP_APP_KEY/APP_SECRET are not set", retryable=True)
        app_key, secret = settings.tiktok_shop_app_key, settings.tiktok_shop_app_secret

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            query = {"app_key": app_key, "timestamp": str(int(time.time())), "ids": ",".join(order_ids)}
            if shop.shop_cipher:
                query["shop_cipher"] = shop.shop_cipher
            query["sign"] = self.sign_request(secret, ORDERS_PATH, query)
            headers = {"x-tts-access-token": shop.access_token, "content-type": "application/json"}
            return settings.tiktok_shop_api_base.rstrip("/") + ORDERS_PATH, query, headers

        body = await client.get_json(
            self.name, shop.shop_id, rate_per_s=self.requests_per_s, request=request, check=self.check_body
        )
        orders = require(require(body, "data", dict, where="answer"), "orders", list, where="answer.data")
        return orders

    async def refresh(self, client: PlatformClient, shop_id: str, refresh_token: str) -> TokenGrant:
        """TikTok's token refresh (auth host): GET /api/v2/token/refresh; expiries are unix times."""
        settings = client.settings

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            query = {
                "app_key": settings.tiktok_shop_app_key or "",
                "app_secret": settings.tiktok_shop_app_secret or "",
                "refresh_token": refresh_token,
                "grant_type": "refresh_token",
            }
            return settings.tiktok_shop_auth_base.rstrip("/") + "/api/v2/token/refresh", query, {}

        body = await client.get_json(self.name, shop_id, rate_per_s=1.0, request=request, check=self.check_body)
        data = require(body, "data", dict, where="answer")
        return TokenGrant(
            access_token=require(data, "access_token", str, where="answer.data"),
            refresh_token=require(data, "refresh_token", str, where="answer.data"),
            access_expires_at=utc_from_unix(data.get("access_token_expire_in"), field="access_token_expire_in"),
            refresh_expires_at=utc_from_unix(data.get("refresh_token_expire_in"), field="refresh_token_expire_in"),
        )

    def check_body(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("code"), int):
            raise ShapeError("answer: expected an object with an integer `code`")
        code = body["code"]
        if code == 0:
            return
        message = str(body.get("message", ""))
        raise PlatformError(str(code), message, retryable=code in THROTTLE_CODES, auth=code in TOKEN_CODES)

    def order_id_of(self, detail: Mapping[str, Any]) -> str:
        return str(require(detail, "id", str | int, where="order"))

    # -- normalisation -------------------------------------------------------------------------------------
    def normalise(
        self, detail: Mapping[str, Any], *, shop_id: str, received_at: datetime | None = None
    ) -> OrderReceivedV2:
        where = f"order {detail.get('id')!r}"
        order_id = self.order_id_of(detail)
        platform_status = require(detail, "status", str, where=where)
        status = self.status_map.get(platform_status)
        if status is None:
            raise ShapeError(f"{where}.status: {platform_status!r} is not a documented TikTok Shop order status")
        payment = require(detail, "payment", dict, where=where)
        currency = payment.get("currency", "VND")
        if currency != "VND":
            raise ShapeError(f"{where}.payment.currency: {currency!r}, only VND orders are taken")
        units = []
        for index, item in enumerate(require(detail, "line_items", list, where=where)):
            at = f"{where}.line_items[{index}]"
            sku_id = str(require(item, "sku_id", str | int, where=at))
            seller_sku = item.get("seller_sku") or None
            price = vnd(item.get("sale_price"), field=f"{at}.sale_price")
            fields = {
                "sku": seller_sku or sku_id,
                "platform_sku_id": sku_id,
                "platform_product_id": str(item["product_id"]) if item.get("product_id") is not None else None,
                "name": item.get("product_name") or item.get("sku_name"),
            }
            units.append((f"{sku_id}|{seller_sku}", fields, price))
        if not units:
            raise ShapeError(f"{where}.line_items: an order without line items")
        return OrderReceivedV2(
            channel="tiktok_shop",
            shop_id=shop_id,
            order_id=order_id,
            placed_at=utc_from_unix(detail.get("create_time"), field=f"{where}.create_time"),
            buyer=self._buyer(detail.get("recipient_address"), where=where),
            items=tuple(PlatformItem(**line) for line in fold_units(units)),
            payment_method="cod" if detail.get("is_cod") else "prepaid",
            total_vnd=vnd(payment.get("total_amount"), field=f"{where}.payment.total_amount"),
            status=status,  # type: ignore[arg-type]
            platform_status=platform_status,
            status_at=utc_from_unix(detail.get("update_time", detail.get("create_time")), field=f"{where}.update_time"),
            received_at=received_at or utc_now(),
        )

    def _buyer(self, address: Any, *, where: str) -> BuyerV2 | None:
        if address is None:  # absent while UNPAID or ON_HOLD
            return None
        at = f"{where}.recipient_address"
        levels = {
            str(level.get("address_level", "")): str(level.get("address_name", ""))
            for level in address.get("district_info") or []
            if isinstance(level, dict)
        }
        # L0 country, L1 province, then the legacy district (L2) and the ward as the deepest level.
        below_province = [levels[name] for name in ("L2", "L3", "L4") if levels.get(name)]
        ward_name = below_province[-1] if below_province else None
        legacy_district = below_province[0] if len(below_province) > 1 else None
        province_code, ward_code = resolve_names(levels.get("L1"), ward_name)
        line = address.get("address_detail") or address.get("full_address")
        return BuyerV2(
            name=require(address, "name", str, where=at),
            phone=require(address, "phone_number", str, where=at),
            address=BuyerAddressV2(
                province_code=province_code,
                ward_code=ward_code,
                legacy_district=legacy_district,
                line=line if isinstance(line, str) and line.strip() else "-",
            ),
        )
