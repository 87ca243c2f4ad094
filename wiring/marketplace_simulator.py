"""A marketplace simulator for the demo, tests and benchmarks: it plays TikTok Shop, Shopee or Lazada.

It serves each platform's order-detail API in that platform's answer format (TikTok
`GET /order/202507/orders`; Shopee `GET /api/v2/order/get_order_detail`; Lazada `GET /rest/order/get`,
`/rest/order/items/get` and `/rest/orders/items/get`), checks our signed requests as each platform
documents them, and posts signed webhooks to orders at a chosen rate with noise: repeated
notifications, out-of-order statuses, cancellations; its API can throttle (429) and fail (503).
Written from the platforms' documents, independently of orders' client, so that each checks the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TIKTOK_ORDERS_PATH = "/order/202507/orders"
SHOPEE_DETAIL_PATH = "/api/v2/order/get_order_detail"
PLATFORMS = ("tiktok_shop", "shopee", "lazada")
DEFAULT_APP_KEY = "sim-app-key"
DEFAULT_APP_SECRET = "sim-app-secret"
DEFAULT_SHOP_ID = "7495001"
DEFAULT_ACCESS_TOKEN = "sim-access-token"
DEFAULT_SHOP_CIPHER = "ROW_sim_cipher"
DEFAULT_PARTNER_ID = 2_001_234
# Our generic states, spelled by each platform (in its webhook, in its API).
SPELLING = {
    "tiktok_shop": {
        "unpaid": ("UNPAID", "UNPAID"),
        "to_ship": ("AWAITING_SHIPMENT", "AWAITING_SHIPMENT"),
        "cancelled": ("CANCEL", "CANCELLED"),
    },
    "shopee": {
        "unpaid": ("UNPAID", "UNPAID"),
        "to_ship": ("READY_TO_SHIP", "READY_TO_SHIP"),
        "cancelled": ("CANCELLED", "CANCELLED"),
    },
    "lazada": {
        "unpaid": ("unpaid", "unpaid"),
        "to_ship": ("pending", "pending"),
        "cancelled": ("canceled", "canceled"),
    },
}
# Buyers' addresses by name: province, legacy district, 2025 ward.
ADDRESSES = (
    ("Thành phố Hà Nội", "Quận Hoàn Kiếm", "Phường Hoàn Kiếm"),
    ("Thành phố Hà Nội", "Quận Ba Đình", "Phường Ba Đình"),
    ("Tỉnh Lai Châu", "Huyện Tam Đường", "Xã Bình Lư"),
)


def tiktok_sign(secret: str, path: str, query: dict[str, str], body: str = "") -> str:
    """TikTok's request signature ("sign your API request"): HMAC-SHA256 keyed with the app secret over
    secret + path + the sorted query (but sign and access_token) as key+value + body + secret."""
    params = "".join(f"{key}{query[key]}" for key in sorted(query) if key not in ("sign", "access_token"))
    base = f"{secret}{path}{params}{body}{secret}"
    return hmac.new(secret.encode(), base.encode(), hashlib.sha256).hexdigest()


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class SimOrder:
    order_id: str
    create_time: int
    update_time: int
    status: str  # unpaid | to_ship | cancelled, spelled per platform in its answers
    skus: list[tuple[str, str, int, int]]  # (seller_sku, sku_id, unit price, quantity)
    address: tuple[str, str, str]
    is_cod: bool = True
    platform: str = "tiktok_shop"

    def spelled(self) -> str:
        return SPELLING[self.platform][self.status][1]

    def units(self) -> list[tuple[str, str, int]]:
        return [(sku, sku_id, price) for sku, sku_id, price, quantity in self.skus for _ in range(quantity)]

    @property
    def total(self) -> int:
        return sum(price * quantity for _s, _i, price, quantity in self.skus)

    def detail(self) -> dict[str, Any]:
        return {"shopee": self.shopee_detail, "lazada": self.lazada_detail}.get(self.platform, self.tiktok_detail)()

    def tiktok_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "id": self.order_id,
            "status": self.spelled(),
            "create_time": self.create_time,
            "update_time": self.update_time,
            "is_cod": self.is_cod,
            "payment_method_name": "Cash on delivery" if self.is_cod else "Card",
            "payment": {
                "currency": "VND",
                "sub_total": str(self.total),
                "shipping_fee": "0",
                "seller_discount": "0",
                "platform_discount": "0",
                "total_amount": str(self.total),
            },
            "line_items": [
                {
                    "id": f"{self.order_id}-{n}",
                    "sku_id": sku_id,
                    "product_id": f"P{sku_id}",
                    "seller_sku": sku,
                    "sku_name": "Default",
                    "product_name": sku,
                    "sale_price": str(price),
                    "original_price": str(price),
                }
                for n, (sku, sku_id, price) in enumerate(self.units(), start=1)
            ],
            "shipping_type": "SELLER",
        }
        if self.status != "unpaid":  # TikTok hides the address until the order is paid
            province, district, ward = self.address
            detail["recipient_address"] = {
                "name": "Nguyễn Thu Hà",
                "phone_number": "(+84)91*****678",
                "full_address": f"12 Phan Đình Phùng, {ward}, {district}, {province}",
                "address_detail": "12 Phan Đình Phùng",
                "postal_code": "",
                "district_info": [
                    {"address_level": "L0", "address_level_name": "Country", "address_name": "Vietnam"},
                    {"address_level": "L1", "address_level_name": "Province", "address_name": province},
                    {"address_level": "L2", "address_level_name": "District", "address_name": district},
                    {"address_level": "L3", "address_level_name": "Ward", "address_name": ward},
                ],
            }
        return detail

    def shopee_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "order_sn": self.order_id,
            "order_status": self.spelled(),
            "create_time": self.create_time,
            "update_time": self.update_time,
            "cod": self.is_cod,
            "payment_method": "Cash on Delivery" if self.is_cod else "Credit Card",
            "total_amount": float(self.total),
            "item_list": [
                {
                    "item_id": int(sku_id) + 10_000,
                    "item_name": sku,
                    "item_sku": sku,
                    "model_id": int(sku_id),
                    "model_sku": sku,
                    "model_quantity_purchased": quantity,
                    "model_discounted_price": float(price),
                    "weight": 0.5,
                }
                for sku, sku_id, price, quantity in self.skus
            ],
        }
        if self.status != "unpaid":
            province, district, ward = self.address
            detail["recipient_address"] = {
                "name": "Nguyễn Thu Hà",
                "phone": "84912****78",
                "town": ward,
                "district": district,
                "city": district,
                "state": province,
                "region": "VN",
                "zipcode": "",
                "full_address": f"12 Phan Đình Phùng, {ward}, {district}, {province}",
            }
        return detail

    def lazada_detail(self) -> dict[str, Any]:
        def vn_time(unix: int) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S +0700", time.gmtime(unix + 7 * 3600))

        province, district, ward = self.address
        return {
            "order_id": int(self.order_id),
            "created_at": vn_time(self.create_time),
            "updated_at": vn_time(self.update_time),
            "price": f"{self.total}.00",
            "statuses": [self.spelled()],
            "payment_method": "COD" if self.is_cod else "MIXEDCARD",
            "address_shipping": {
                "first_name": "Nguyễn Thu Hà",
                "last_name": "",
                "phone": "84912****78",
                "address1": "12 Phan Đình Phùng",
                "address3": province,
                "address4": district,
                "address5": ward,
                "post_code": "",
            },
            "items": [
                {
                    "order_item_id": n,
                    "sku": sku,
                    "shop_sku": f"{sku_id}_VNAMZ",
                    "sku_id": sku_id,
                    "product_id": int(sku_id) + 10_000,
                    "name": sku,
                    "item_price": f"{price}.00",
                    "paid_price": f"{price}.00",
                    "status": self.spelled(),
                }
                for n, (sku, sku_id, price) in enumerate(self.units(), start=1)
            ],
        }


@dataclass
class Noise:
    repeat_rate: float = 0.1  # a notification sent twice
    out_of_order_rate: float = 0.05  # an older status sent again after a newer one
    cancel_rate: float = 0.05  # orders the buyer cancels
    throttle_rate: float = 0.0  # API answers 429
    error_rate: float = 0.0  # API answers 503
    fail_first: int = 0  # the first N API calls answer 429 and 503 in turn (a platform having a bad minute)


@dataclass
class MarketplaceSimulator:
    platform: str = "tiktok_shop"
    app_key: str = DEFAULT_APP_KEY  # TikTok, Lazada
    app_secret: str = DEFAULT_APP_SECRET  # TikTok, Lazada; Shopee's partner key
    partner_id: int = DEFAULT_PARTNER_ID  # Shopee
    callback_url: str = "http://vuonminh.test/v1/webhooks/shopee"  # Shopee signs it
    shop_id: str = DEFAULT_SHOP_ID
    access_token: str = DEFAULT_ACCESS_TOKEN
    shop_cipher: str = DEFAULT_SHOP_CIPHER
    noise: Noise = field(default_factory=Noise)
    seed: int = 7
    orders: dict[str, SimOrder] = field(default_factory=dict)
    api_calls: int = 0
    api_refused: int = 0  # throttled, failed or badly signed
    webhooks_sent: int = 0
    served: dict[str, str] = field(default_factory=dict)  # order id -> the state last served by the API
    refresh_token: str = "sim-refresh-token"
    token_refreshes: int = 0

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}; expected one of {', '.join(PLATFORMS)}")
        self.random = random.Random(self.seed)
        self._ids = itertools.count(576_000_000_000_001)
        self._notifications = itertools.count(1)
        self.valid_tokens = {self.access_token}

    # -- the Open APIs ------------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        app = FastAPI(title="Marketplace simulator")

        @app.get(TIKTOK_ORDERS_PATH)
        async def tiktok_orders(request: Request) -> JSONResponse:
            self.api_calls += 1
            query = dict(request.query_params)
            problem = self._tiktok_problem(query, request.headers.get("x-tts-access-token"))
            if problem:
                self.api_refused += 1
                return JSONResponse({"code": 106001, "message": problem, "data": None}, status_code=401)
            noisy = self._noise()
            if noisy:
                return noisy
            ids = [i for i in query.get("ids", "").split(",") if i]
            if not ids or len(ids) > 50:
                return JSONResponse({"code": 36009001, "message": "ids: 1 to 50 order ids", "data": None})
            found = [self._served(self.orders[i]) for i in ids if i in self.orders]
            return JSONResponse({"code": 0, "message": "Success", "request_id": "sim", "data": {"orders": found}})

        @app.get(SHOPEE_DETAIL_PATH)
        async def shopee_detail(request: Request) -> JSONResponse:
            self.api_calls += 1
            query = dict(request.query_params)
            base = (
                f"{self.partner_id}{SHOPEE_DETAIL_PATH}{query.get('timestamp')}"
                f"{query.get('access_token')}{query.get('shop_id')}"
            )
            if (
                query.get("partner_id") != str(self.partner_id)
                or query.get("access_token") not in self.valid_tokens
                or not hmac.compare_digest(_hmac_hex(self.app_secret, base.encode()), query.get("sign", ""))
            ):
                self.api_refused += 1
                body = {"error": "error_sign", "message": "Wrong sign.", "request_id": "sim"}
                return JSONResponse(body, status_code=403)
            noisy = self._noise()
            if noisy:
                return noisy
            wanted = [i for i in query.get("order_sn_list", "").split(",") if i]
            if not wanted or len(wanted) > 50:
                return JSONResponse({"error": "error_param", "message": "order_sn_list: 1 to 50", "request_id": "sim"})
            found = [self._served(self.orders[i]) for i in wanted if i in self.orders]
            return JSONResponse({"error": "", "message": "", "response": {"order_list": found}, "request_id": "sim"})

        async def lazada(request: Request, path: str) -> JSONResponse:
            self.api_calls += 1
            query = dict(request.query_params)
            params = "".join(f"{k}{query[k]}" for k in sorted(query) if k != "sign")
            expected = _hmac_hex(self.app_secret, f"{path}{params}".encode()).upper()
            if (
                query.get("app_key") != self.app_key
                or query.get("access_token") not in self.valid_tokens
                or not hmac.compare_digest(expected, query.get("sign", ""))
            ):
                self.api_refused += 1
                return JSONResponse({"code": "IncompleteSignature", "message": "sign mismatch", "request_id": "sim"})
            noisy = self._noise()
            if noisy:
                return noisy
            if path == "/orders/items/get":  # GetMultipleOrderItems: order_ids=[1,2,...], at most 50
                try:
                    wanted = [str(i) for i in json.loads(query.get("order_ids", ""))]
                except (ValueError, TypeError):
                    wanted = []
                if not 1 <= len(wanted) <= 50:
                    return JSONResponse(
                        {"code": "MISSING_PARAMETER", "message": "order_ids: 1 to 50", "request_id": "sim"}
                    )
                found = [
                    {"order_id": int(i), "order_number": int(i), "order_items": self.orders[i].detail()["items"]}
                    for i in wanted
                    if i in self.orders
                ]
                return JSONResponse({"code": "0", "data": found})
            order = self.orders.get(query.get("order_id", ""))
            if order is None:
                return JSONResponse({"code": "ORDER_NOT_FOUND", "message": "no such order", "request_id": "sim"})
            detail = self._served(order) if path == "/order/get" else order.detail()
            items = detail.pop("items")
            return JSONResponse({"code": "0", "data": items if path == "/order/items/get" else detail})

        @app.get("/api/v2/token/refresh")  # TikTok (auth host)
        async def tiktok_refresh(request: Request) -> JSONResponse:
            query = dict(request.query_params)
            grant = self._refresh(query.get("refresh_token"), ok=query.get("app_secret") == self.app_secret)
            if grant is None:
                return JSONResponse({"code": 105002, "message": "refresh token invalid", "data": None})
            now = int(time.time())
            data = {
                "access_token": grant[0],
                "access_token_expire_in": now + 7 * 86400,
                "refresh_token": grant[1],
                "refresh_token_expire_in": now + 30 * 86400,
            }
            return JSONResponse({"code": 0, "message": "success", "data": data})

        @app.post("/api/v2/auth/access_token/get")  # Shopee
        async def shopee_refresh(request: Request) -> JSONResponse:
            query = dict(request.query_params)
            base = f"{self.partner_id}/api/v2/auth/access_token/get{query.get('timestamp')}"
            signed = hmac.compare_digest(_hmac_hex(self.app_secret, base.encode()), query.get("sign", ""))
            body = await request.json()
            grant = self._refresh(body.get("refresh_token"), ok=signed)
            if grant is None:
                return JSONResponse({"error": "error_auth", "message": "invalid refresh_token"}, status_code=403)
            return JSONResponse(
                {
                    "error": "",
                    "access_token": grant[0],
                    "refresh_token": grant[1],
                    "expire_in": 14400,
                    "request_id": "sim",
                }
            )

        @app.get("/rest/auth/token/refresh")  # Lazada (auth host)
        async def lazada_refresh(request: Request) -> JSONResponse:
            query = dict(request.query_params)
            params = "".join(f"{k}{query[k]}" for k in sorted(query) if k != "sign")
            expected = _hmac_hex(self.app_secret, f"/auth/token/refresh{params}".encode()).upper()
            grant = self._refresh(query.get("refresh_token"), ok=hmac.compare_digest(expected, query.get("sign", "")))
            if grant is None:
                return JSONResponse({"code": "IllegalRefreshToken", "message": "invalid refresh token"})
            return JSONResponse(
                {
                    "code": "0",
                    "access_token": grant[0],
                    "refresh_token": grant[1],
                    "expires_in": 604800,
                    "refresh_expires_in": 2592000,
                }
            )

        @app.get("/rest/order/get")
        async def lazada_order(request: Request) -> JSONResponse:
            return await lazada(request, "/order/get")

        @app.get("/rest/order/items/get")
        async def lazada_items(request: Request) -> JSONResponse:
            return await lazada(request, "/order/items/get")

        @app.get("/rest/orders/items/get")
        async def lazada_multiple_items(request: Request) -> JSONResponse:
            return await lazada(request, "/orders/items/get")

        return app

    def _refresh(self, refresh_token: str | None, *, ok: bool) -> tuple[str, str] | None:
        """New (access, refresh) tokens for a valid refresh token; the old access token keeps working."""
        if not ok or refresh_token != self.refresh_token:
            return None
        self.token_refreshes += 1
        self.access_token = f"sim-access-token-{self.token_refreshes}"
        self.refresh_token = f"sim-refresh-token-{self.token_refreshes}"
        self.valid_tokens.add(self.access_token)
        return self.access_token, self.refresh_token

    def _served(self, order: SimOrder) -> dict[str, Any]:
        self.served[order.order_id] = order.status
        return order.detail()

    def all_fetched(self) -> bool:
        """Whether the API served every order in its current state (the platform caught up)."""
        return all(self.served.get(order_id) == order.status for order_id, order in self.orders.items())

    def _noise(self) -> JSONResponse | None:
        """A throttling or failing answer, as the noise says (None: answer normally)."""
        throttled = {"code": 36009004, "error": "too_many_request", "message": "Too many requests"}
        failed = {"code": 36009999, "error": "error_server", "message": "Internal error"}
        if self.api_calls <= self.noise.fail_first:
            self.api_refused += 1
            return JSONResponse(throttled, status_code=429) if self.api_calls % 2 else JSONResponse(failed, 503)
        if self.random.random() < self.noise.throttle_rate:
            self.api_refused += 1
            return JSONResponse(throttled, status_code=429)
        if self.random.random() < self.noise.error_rate:
            self.api_refused += 1
            return JSONResponse(failed, status_code=503)
        return None

    def _tiktok_problem(self, query: dict[str, str], token: str | None) -> str | None:
        if query.get("app_key") != self.app_key:
            return "unknown app_key"
        if token not in self.valid_tokens:
            return "access token invalid"
        if query.get("shop_cipher") != self.shop_cipher:
            return "shop_cipher does not match the shop"
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
            return "timestamp missing or expired"
        if not hmac.compare_digest(tiktok_sign(self.app_secret, TIKTOK_ORDERS_PATH, query), query.get("sign", "")):
            return "sign does not match"
        return None

    # -- orders and webhooks -------------------------------------------------------------------------------
    def new_order(self, skus: list[tuple[str, str, int, int]], *, at: int, status: str = "to_ship") -> SimOrder:
        order = SimOrder(
            order_id=str(next(self._ids)),
            create_time=at,
            update_time=at,
            status=status,
            skus=skus,
            address=self.random.choice(ADDRESSES),
            platform=self.platform,
        )
        self.orders[order.order_id] = order
        return order

    def webhook(
        self, order: SimOrder, status: str, *, at: int, notification_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The platform's push for `order` now in `status` (generic), signed as the platform signs it."""
        spelled = SPELLING[self.platform][status][0]
        identity = notification_id or f"sim-{next(self._notifications)}"
        if self.platform == "shopee":
            data = {"ordersn": order.order_id, "status": spelled, "completed_scenario": None, "items": []}
            payload: dict[str, Any] = {
                "msg_id": identity,
                "data": {**data, "update_time": at},
                "shop_id": int(self.shop_id) if self.shop_id.isdigit() else self.shop_id,
                "code": 3,
                "timestamp": at,
            }
            body = json.dumps(payload).encode()
            signed = self.callback_url.encode() + b"|" + body
        elif self.platform == "lazada":
            payload = {
                "seller_id": self.shop_id,
                "message_type": 0,
                "data": {
                    "order_status": spelled,
                    "trade_order_id": order.order_id,
                    "trade_order_line_id": f"{order.order_id}1",
                    "status_update_time": at,
                },
                "timestamp": at * 1000,
                "site": "lazada_vn",
            }
            body = json.dumps(payload).encode()
            signed = self.app_key.encode() + body
        else:
            data = {"order_id": order.order_id, "order_status": spelled, "is_on_hold_order": False, "update_time": at}
            payload = {
                "type": 1,
                "tts_notification_id": identity,
                "shop_id": self.shop_id,
                "timestamp": at,
                "data": data,
            }
            body = json.dumps(payload).encode()
            signed = self.app_key.encode() + body
        return body, {"Authorization": _hmac_hex(self.app_secret, signed), "content-type": "application/json"}

    def script(
        self, *, orders: int, minutes: float, skus: list[tuple[str, str, int]], start: int
    ) -> list[tuple[float, str, str]]:
        """A livestream as (offset s, order id, status) webhooks: orders spread over the session, with
        cancellations, repeats and out-of-order statuses as the noise says."""
        events: list[tuple[float, str, str]] = []
        for n in range(orders):
            offset = minutes * 60 * n / max(orders, 1)
            count = 1 + (self.random.random() < 0.3)
            chosen = self.random.sample(skus, k=min(count, len(skus)))
            lines = [(sku, sku_id, price, self.random.choice((1, 1, 2, 3))) for sku, sku_id, price in chosen]
            order = self.new_order(lines, at=start + int(offset))
            events.append((offset, order.order_id, "to_ship"))
            if self.random.random() < self.noise.cancel_rate:
                events.append((offset + 30, order.order_id, "cancelled"))
            if self.random.random() < self.noise.out_of_order_rate:
                events.append((offset + 31, order.order_id, "unpaid"))  # an older status, late
        repeats = [e for e in events if self.random.random() < self.noise.repeat_rate]
        return sorted(events + repeats)

    async def play(
        self,
        client: httpx.AsyncClient,
        url: str,
        script: list[tuple[float, str, str]],
        *,
        start: int,
        speed: float | None,
        concurrency: int = 16,
        progress: Any = None,
    ) -> None:
        """Posts the script's webhooks to `url`; `speed` times faster than real time, None: at once."""
        began = time.monotonic()
        sent: dict[tuple[str, str], bytes] = {}
        semaphore = asyncio.Semaphore(concurrency)

        async def post(offset: float, order_id: str, status: str) -> None:
            order = self.orders[order_id]
            if status == "cancelled":
                order.status, order.update_time = "cancelled", start + int(offset)
            # A repeat is the same delivery again: same bytes, same identity.
            body, headers = (
                (sent[(order_id, status)], None)
                if (order_id, status) in sent
                else self.webhook(order, status, at=start + int(offset))
            )
            if headers is None:
                headers = {"Authorization": self._signature(body), "content-type": "application/json"}
            sent[(order_id, status)] = body
            async with semaphore:
                for _attempt in range(5):  # as the platforms do: a delivery not acknowledged is sent again
                    try:
                        response = await client.post(url, content=body, headers=headers)
                        if response.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)
            self.webhooks_sent += 1
            if progress is not None:
                progress.update(1)

        tasks: list[asyncio.Task[None]] = []
        for offset, order_id, status in script:
            if speed:
                delay = offset / speed - (time.monotonic() - began)
                if delay > 0:
                    await asyncio.sleep(delay)
            if status == "cancelled":
                await asyncio.gather(*tasks)  # the order's first notification before its cancellation
                tasks = []
            tasks.append(asyncio.create_task(post(offset, order_id, status)))
        await asyncio.gather(*tasks)

    def _signature(self, body: bytes) -> str:
        prefix = self.callback_url.encode() + b"|" if self.platform == "shopee" else self.app_key.encode()
        return _hmac_hex(self.app_secret, prefix + body)
