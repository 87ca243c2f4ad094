"""A marketplace simulator for the demo, tests and benchmarks: it plays TikTok Shop.

It serves TikTok Shop's order-detail API (`GET /order/202507/orders`, TikTok's answer format), checks
our signed requests as TikTok documents them (app key, timestamp, `sign`, `x-tts-access-token`), and
posts signed webhooks (`Authorization` = hex HMAC-SHA256(app_secret, app_key + body)) to orders at a
chosen rate with noise: repeated notifications, out-of-order statuses, cancellations; its API can
throttle (429) and fail (503) at chosen rates. Written from TikTok's documents, independently of
orders' client, so that each checks the other.
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

ORDERS_PATH = "/order/202507/orders"
DEFAULT_APP_KEY = "sim-app-key"
DEFAULT_APP_SECRET = "sim-app-secret"
DEFAULT_SHOP_ID = "7495-binh-lu"
DEFAULT_ACCESS_TOKEN = "sim-access-token"
DEFAULT_SHOP_CIPHER = "ROW_sim_cipher"
# Buyers' addresses as TikTok gives them: country, province, legacy district, 2025 ward (names).
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


@dataclass
class SimOrder:
    order_id: str
    create_time: int
    update_time: int
    status: str
    skus: list[tuple[str, str, int, int]]  # (seller_sku, sku_id, unit price, quantity)
    address: tuple[str, str, str]
    is_cod: bool = True

    def detail(self) -> dict[str, Any]:
        units = [
            {
                "id": f"{self.order_id}-{n}",
                "sku_id": sku_id,
                "product_id": f"P{sku_id}",
                "seller_sku": seller_sku,
                "sku_name": "Default",
                "product_name": seller_sku,
                "sale_price": str(price),
                "original_price": str(price),
            }
            for n, (seller_sku, sku_id, price, quantity) in enumerate(
                (s for s in self.skus for _ in range(s[3])), start=1
            )
        ]
        total = sum(price * quantity for _s, _i, price, quantity in self.skus)
        detail: dict[str, Any] = {
            "id": self.order_id,
            "status": self.status,
            "create_time": self.create_time,
            "update_time": self.update_time,
            "is_cod": self.is_cod,
            "payment_method_name": "Cash on delivery" if self.is_cod else "Card",
            "payment": {
                "currency": "VND",
                "sub_total": str(total),
                "shipping_fee": "0",
                "seller_discount": "0",
                "platform_discount": "0",
                "total_amount": str(total),
            },
            "line_items": units,
            "shipping_type": "SELLER",
        }
        if self.status not in ("UNPAID", "ON_HOLD"):  # TikTok hides the address until then
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
    app_key: str = DEFAULT_APP_KEY
    app_secret: str = DEFAULT_APP_SECRET
    shop_id: str = DEFAULT_SHOP_ID
    access_token: str = DEFAULT_ACCESS_TOKEN
    shop_cipher: str = DEFAULT_SHOP_CIPHER
    noise: Noise = field(default_factory=Noise)
    seed: int = 7
    orders: dict[str, SimOrder] = field(default_factory=dict)
    api_calls: int = 0
    api_refused: int = 0  # throttled, failed or badly signed
    webhooks_sent: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self._ids = itertools.count(576_000_000_000_000_001)
        self._notifications = itertools.count(1)

    # -- the Open API ------------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        app = FastAPI(title="TikTok Shop (simulated)")

        @app.get(ORDERS_PATH)
        async def get_orders(request: Request) -> JSONResponse:
            self.api_calls += 1
            query = dict(request.query_params)
            problem = self._check_request(query, request.headers.get("x-tts-access-token"))
            if problem:
                self.api_refused += 1
                return JSONResponse({"code": 106001, "message": problem, "data": None}, status_code=401)
            if self.api_calls <= self.noise.fail_first:
                self.api_refused += 1
                if self.api_calls % 2:
                    return JSONResponse({"code": 36009004, "message": "Too many requests"}, status_code=429)
                return JSONResponse({"code": 36009999, "message": "Internal error"}, status_code=503)
            if self.random.random() < self.noise.throttle_rate:
                self.api_refused += 1
                return JSONResponse({"code": 36009004, "message": "Too many requests", "data": None}, status_code=429)
            if self.random.random() < self.noise.error_rate:
                self.api_refused += 1
                return JSONResponse({"code": 36009999, "message": "Internal error"}, status_code=503)
            ids = [i for i in query.get("ids", "").split(",") if i]
            if not ids or len(ids) > 50:
                return JSONResponse({"code": 36009001, "message": "ids: 1 to 50 order ids", "data": None})
            found = [self.orders[i].detail() for i in ids if i in self.orders]
            return JSONResponse({"code": 0, "message": "Success", "request_id": "sim", "data": {"orders": found}})

        return app

    def _check_request(self, query: dict[str, str], token: str | None) -> str | None:
        if query.get("app_key") != self.app_key:
            return "unknown app_key"
        if token != self.access_token:
            return "access token invalid"
        if query.get("shop_cipher") != self.shop_cipher:
            return "shop_cipher does not match the shop"
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
            return "timestamp missing or expired"
        expected = tiktok_sign(self.app_secret, ORDERS_PATH, query)
        if not hmac.compare_digest(expected, query.get("sign", "")):
            return "sign does not match"
        return None

    # -- orders and webhooks -------------------------------------------------------------------------------
    def new_order(
        self, skus: list[tuple[str, str, int, int]], *, at: int, status: str = "AWAITING_SHIPMENT"
    ) -> SimOrder:
        order = SimOrder(
            order_id=str(next(self._ids)),
            create_time=at,
            update_time=at,
            status=status,
            skus=skus,
            address=self.random.choice(ADDRESSES),
        )
        self.orders[order.order_id] = order
        return order

    def webhook(
        self, order: SimOrder, status: str, *, at: int, notification_id: str | None = None
    ) -> tuple[bytes, dict]:
        body = json.dumps(
            {
                "type": 1,
                "tts_notification_id": notification_id or f"sim-{next(self._notifications)}",
                "shop_id": self.shop_id,
                "timestamp": at,
                "data": {
                    "order_id": order.order_id,
                    "order_status": status,
                    "is_on_hold_order": False,
                    "update_time": at,
                },
            }
        ).encode()
        signature = hmac.new(self.app_secret.encode(), self.app_key.encode() + body, hashlib.sha256).hexdigest()
        return body, {"Authorization": signature, "content-type": "application/json"}

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
            events.append((offset, order.order_id, "AWAITING_SHIPMENT"))
            if self.random.random() < self.noise.cancel_rate:
                events.append((offset + 30, order.order_id, "CANCEL"))
            if self.random.random() < self.noise.out_of_order_rate:
                events.append((offset + 31, order.order_id, "UNPAID"))  # an older status, late
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
        sent_ids: dict[tuple[str, str], str] = {}
        semaphore = asyncio.Semaphore(concurrency)

        async def post(offset: float, order_id: str, status: str) -> None:
            order = self.orders[order_id]
            if status == "CANCEL":
                order.status, order.update_time = "CANCELLED", start + int(offset)
            notification_id = sent_ids.get((order_id, status))  # a repeat carries the same identity
            body, headers = self.webhook(order, status, at=start + int(offset), notification_id=notification_id)
            sent_ids[(order_id, status)] = json.loads(body)["tts_notification_id"]
            async with semaphore:
                for _attempt in range(5):  # as TikTok does: a delivery not acknowledged is sent again
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

        tasks = []
        for offset, order_id, status in script:
            if speed:
                delay = offset / speed - (time.monotonic() - began)
                if delay > 0:
                    await asyncio.sleep(delay)
            if status == "CANCEL":
                await asyncio.gather(*tasks)  # the order's first notification before its cancellation
                tasks = []
            tasks.append(asyncio.create_task(post(offset, order_id, status)))
        await asyncio.gather(*tasks)
