"""Lazada: trade-order pushes (message_type 0), `/order/get` + `/orders/items/get` and its status map.

Sources (../shared/reference/integrations.md §3): `Authorization` = hex HMAC-SHA256(app_secret, app_key +
raw body); ack 200 within 500 ms; message identity = trade_order_id + trade_order_line_id (with the status
and its time, as one line changes status several times). API requests signed as Lazada documents:
uppercase hex HMAC-SHA256(app_secret, api path + the sorted parameters as key+value), `sign_method=sha256`,
timestamp in milliseconds. Prices are strings like "290000.00"; one item per unit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
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

TRADE_ORDER = 0
ORDER_PATH = "/order/get"
# GetMultipleOrderItems: the items of up to 50 orders in one call (`order_ids` as a JSON list).
MULTIPLE_ITEMS_PATH = "/orders/items/get"
TOKEN_PATH = "/auth/token/refresh"
RETRYABLE_CODES = {"ApiCallLimit", "ServiceTimeout", "ISP.ServiceUnavailable", "SYSTEM_ERROR"}
TOKEN_CODES = {"IllegalAccessToken", "MissingAccessToken", "AccessTokenExpired"}


class Lazada:
    name: ClassVar[str] = "lazada"
    slug: ClassVar[str] = "lazada"
    deadline_s: ClassVar[float] = 0.5
    bad_signature_status: ClassVar[int] = 401
    bad_body_status: ClassVar[int] = 400
    # /order/get takes one order, but /orders/items/get takes 50: a batch costs its orders plus one call.
    batch_size: ClassVar[int] = 50
    requests_per_s: ClassVar[float] = 10.0
    status_map: ClassVar[Mapping[str, str]] = {
        "unpaid": "unpaid",
        "pending": "to_ship",
        "packed": "to_ship",
        "ready_to_ship": "to_ship",
        "ready_to_ship_pending": "to_ship",
        "topack": "to_ship",
        "toship": "to_ship",
        "shipped": "shipped",
        "failed_delivery": "shipped",
        "lost_by_3pl": "shipped",
        "damaged_by_3pl": "shipped",
        "delivered": "delivered",
        "confirmed": "delivered",
        "canceled": "cancelled",
        "returned": "returned",
    }

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: PlatformSettings) -> None:
        if not settings.lazada_app_key or not settings.lazada_app_secret:
            raise WebhookRejected(401, "not_configured", "Lazada is not configured on this server")
        expected = hex_hmac_sha256(settings.lazada_app_secret, settings.lazada_app_key.encode() + raw)
        check_hex_signature(headers.get("authorization"), expected, status=401, header_name="Authorization")

    def read_notification(self, raw: bytes) -> Notification | None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise WebhookRejected(self.bad_body_status, "not_json", "the body is not JSON") from error
        try:
            kind = require(body, "message_type", int, where="body")
            seller_id = str(require(body, "seller_id", str | int, where="body"))
            if kind != TRADE_ORDER:
                return None
            data = require(body, "data", dict, where="body")
            order_id = str(require(data, "trade_order_id", str | int, where="data"))
            line_id = str(data.get("trade_order_line_id", ""))
            status = require(data, "order_status", str, where="data")
            update_time = data.get("status_update_time")
            status_at = utc_from_unix(update_time, field="data.status_update_time")
        except ShapeError as error:
            raise WebhookRejected(self.bad_body_status, "schema", str(error)) from error
        return Notification(
            shop_id=seller_id,
            order_id=order_id,
            platform_status=status,
            status_at=status_at,
            identity=f"{order_id}:{line_id}:{status}:{update_time}",
        )

    def sign_request(self, secret: str, path: str, query: Mapping[str, str]) -> str:
        return hex_hmac_sha256(secret, (path + query_string_for_signing(query, leave_out=("sign",))).encode()).upper()

    async def fetch_orders(
        self, client: PlatformClient, shop: ShopConnection, order_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        settings = client.settings
        if not settings.lazada_app_key or not settings.lazada_app_secret:
            raise PlatformError("not_configured", "LAZADA_APP_KEY/APP_SECRET are not set", retryable=True)
        items_of = await self._items_of(client, shop, order_ids)
        details = []
        for order_id in order_ids:
            order = await self._call(client, shop, ORDER_PATH, {"order_id": order_id})
            if not isinstance(order, dict):
                raise ShapeError("answer.data: expected an order object")
            if order_id not in items_of:
                raise ShapeError(f"answer.data: /orders/items/get returned no items for order {order_id}")
            details.append({**order, "items": items_of[order_id]})
        return details

    async def _items_of(
        self, client: PlatformClient, shop: ShopConnection, order_ids: Sequence[str]
    ) -> dict[str, list[Any]]:
        data = await self._call(client, shop, MULTIPLE_ITEMS_PATH, {"order_ids": f"[{','.join(order_ids)}]"})
        if not isinstance(data, list):
            raise ShapeError("answer.data: expected a list of orders with their order_items")
        items_of: dict[str, list[Any]] = {}
        for entry in data:
            if not isinstance(entry, dict) or not isinstance(entry.get("order_items"), list):
                raise ShapeError("answer.data[]: expected {order_id, order_items: [...]}")
            items_of[str(entry.get("order_id"))] = entry["order_items"]
        return items_of

    async def _call(self, client: PlatformClient, shop: ShopConnection, path: str, params: Mapping[str, str]) -> Any:
        settings = client.settings
        assert settings.lazada_app_key and settings.lazada_app_secret

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            query = {
                "app_key": settings.lazada_app_key or "",
                "timestamp": str(int(time.time() * 1000)),
                "sign_method": "sha256",
                "access_token": shop.access_token,
                **params,
            }
            query["sign"] = self.sign_request(settings.lazada_app_secret or "", path, query)
            return settings.lazada_api_base.rstrip("/") + path, query, {}

        body = await client.get_json(
            self.name, shop.shop_id, rate_per_s=self.requests_per_s, request=request, check=self.check_body
        )
        return body.get("data")

    async def refresh(self, client: PlatformClient, shop_id: str, refresh_token: str) -> TokenGrant:
        """Lazada's /auth/token/refresh on its auth host, signed like every call; expiries in seconds."""
        settings = client.settings

        def request() -> tuple[str, dict[str, str], dict[str, str]]:
            query = {
                "app_key": settings.lazada_app_key or "",
                "timestamp": str(int(time.time() * 1000)),
                "sign_method": "sha256",
                "refresh_token": refresh_token,
            }
            query["sign"] = self.sign_request(settings.lazada_app_secret or "", TOKEN_PATH, query)
            return settings.lazada_auth_base.rstrip("/") + TOKEN_PATH, query, {}

        body = await client.get_json(self.name, shop_id, rate_per_s=1.0, request=request, check=self.check_body)
        now = utc_now()
        return TokenGrant(
            access_token=require(body, "access_token", str, where="answer"),
            refresh_token=require(body, "refresh_token", str, where="answer"),
            access_expires_at=now + timedelta(seconds=require(body, "expires_in", int, where="answer")),
            refresh_expires_at=now + timedelta(seconds=int(body.get("refresh_expires_in") or 0)),
        )

    def check_body(self, body: Any) -> None:
        if not isinstance(body, dict) or "code" not in body:
            raise ShapeError("answer: expected an object with a `code`")
        code = str(body["code"])
        if code == "0":
            return
        raise PlatformError(
            code, str(body.get("message", "")), retryable=code in RETRYABLE_CODES, auth=code in TOKEN_CODES
        )

    def order_id_of(self, detail: Mapping[str, Any]) -> str:
        return str(require(detail, "order_id", int | str, where="order"))

    def normalise(
        self, detail: Mapping[str, Any], *, shop_id: str, received_at: datetime | None = None
    ) -> OrderReceivedV2:
        where = f"order {detail.get('order_id')!r}"
        statuses = require(detail, "statuses", list, where=where)
        if not statuses or not all(isinstance(s, str) for s in statuses):
            raise ShapeError(f"{where}.statuses: expected the order's statuses")
        platform_status = statuses[0]
        status = self.status_map.get(platform_status)
        if status is None:
            raise ShapeError(f"{where}.statuses: {platform_status!r} is not a documented Lazada order status")
        units = []
        for index, item in enumerate(require(detail, "items", list, where=where)):
            at = f"{where}.items[{index}]"
            platform_sku = str(item.get("sku_id") or item.get("shop_sku") or "")
            seller_sku = item.get("sku") or None
            if not (platform_sku or seller_sku):
                raise ShapeError(f"{at}: an item without sku, shop_sku or sku_id")
            fields = {
                "sku": seller_sku or platform_sku,
                "platform_sku_id": platform_sku or None,
                "platform_product_id": str(item["product_id"]) if item.get("product_id") is not None else None,
                "name": item.get("name"),
            }
            units.append(
                (f"{platform_sku}|{seller_sku}", fields, vnd(item.get("item_price"), field=f"{at}.item_price"))
            )
        if not units:
            raise ShapeError(f"{where}.items: an order without items")
        return OrderReceivedV2(
            channel="lazada",
            shop_id=shop_id,
            order_id=self.order_id_of(detail),
            placed_at=_lazada_time(detail.get("created_at"), field=f"{where}.created_at"),
            buyer=self._buyer(detail.get("address_shipping"), where=where),
            items=tuple(PlatformItem(**line) for line in fold_units(units)),
            payment_method="cod" if str(detail.get("payment_method", "")).upper() == "COD" else "prepaid",
            total_vnd=vnd(detail.get("price"), field=f"{where}.price"),
            status=status,  # type: ignore[arg-type]
            platform_status=platform_status,
            status_at=_lazada_time(detail.get("updated_at") or detail.get("created_at"), field=f"{where}.updated_at"),
            received_at=received_at or utc_now(),
        )

    def _buyer(self, address: Any, *, where: str) -> BuyerV2 | None:
        if not isinstance(address, dict):
            return None
        at = f"{where}.address_shipping"
        # Lazada VN: address3 province, address4 (legacy) district, address5 ward [U for 2025 addresses].
        province_code, ward_code = resolve_names(address.get("address3"), address.get("address5"))
        name = " ".join(part for part in (address.get("first_name"), address.get("last_name")) if part)
        line = address.get("address1")
        return BuyerV2(
            name=name or require(address, "first_name", str, where=at),
            phone=require(address, "phone", str, where=at),
            address=BuyerAddressV2(
                province_code=province_code,
                ward_code=ward_code,
                legacy_district=address.get("address4") or None,
                line=line if isinstance(line, str) and line.strip() else "-",
            ),
        )


def _lazada_time(value: Any, *, field: str) -> datetime:
    """Lazada's times: "2025-11-20 09:15:00 +0700"; unix seconds accepted too."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return utc_from_unix(value, field=field)
    if not isinstance(value, str):
        raise ShapeError(f"{field}: expected a time, got {value!r}")
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
    except ValueError as error:
        raise ShapeError(f"{field}: {value!r} is not a Lazada time") from error
