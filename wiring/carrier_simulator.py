"""A carrier simulator for the demo, tests and benchmarks: it plays GHN, GHTK, Viettel Post and VNPost.

It takes create-order requests two ways: from the dispatch topics (`logistics.dispatch.<carrier>`, as a
partner's consumer would; `consume`) or over HTTP at each carrier's own create-order path (`app`). Each
parcel then lives a realistic life, told to VuonMinh as the carrier's own callbacks
(`POST /v1/carriers/<carrier>/callbacks`) in the carrier's documented format and with its credential:
picked up, in transit, out for delivery, delivered; sometimes a failed delivery and a return; sometimes
a callback sent twice or two sent out of order. Written from the carriers' documents (and, for VNPost,
from the shape our docs define), not from logistics' parsers, so that each checks the other.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = structlog.get_logger(__name__)
VIETNAM = timedelta(hours=7)
CARRIERS = ("ghn", "ghtk", "viettel_post", "vnpost")
DISPATCH_TOPICS = tuple(f"logistics.dispatch.{carrier}" for carrier in CARRIERS)
# Each carrier's codes for the steps of a parcel's life (integrations.md section 5; VNPost: docs/logistics.md).
STEPS: dict[str, dict[str, str | int]] = {
    "ghn": {
        "picking": "picking",
        "picked": "picked",
        "transit": "transporting",
        "delivering": "delivering",
        "delivered": "delivered",
        "failed": "delivery_fail",
        "returning": "returning",
        "returned": "returned",
    },
    "ghtk": {
        "picking": 12,
        "picked": 3,
        "transit": 3,
        "delivering": 4,
        "delivered": 5,
        "failed": 9,
        "returning": 20,
        "returned": 21,
    },
    "viettel_post": {
        "picking": 104,
        "picked": 200,
        "transit": 300,
        "delivering": 500,
        "delivered": 501,
        "failed": 506,
        "returning": 505,
        "returned": 504,
    },
    "vnpost": {
        "picking": 20,
        "picked": 30,
        "transit": 40,
        "delivering": 50,
        "delivered": 100,
        "failed": 110,
        "returning": 161,
        "returned": 170,
    },
}
DELIVERED_LIFE = ("picking", "picked", "transit", "delivering", "delivered")
RETURNED_LIFE = ("picking", "picked", "transit", "delivering", "failed", "returning", "returned")


@dataclass
class Noise:
    fail_rate: float = 0.1  # delivery fails and the parcel goes back
    duplicate_rate: float = 0.1  # a callback sent twice
    swap_rate: float = 0.1  # two consecutive callbacks sent in the wrong order


@dataclass
class Parcel:
    carrier: str
    reference: str
    tracking_code: str
    cod_vnd: int
    weight_g: int
    fee_vnd: int
    life: tuple[str, ...]
    sent: list[tuple[str, datetime]] = field(default_factory=list)  # (step, when it happened)

    @property
    def final_step(self) -> str:
        return self.life[-1]


@dataclass
class CarrierSecrets:
    ghn: str = "sim-ghn-token"
    ghtk: str = "sim-ghtk-hash"
    viettel_post: str = "sim-vtp-token"
    vnpost: str = "sim-vnpost-token"

    def env(self) -> dict[str, str]:
        """The environment logistics needs to accept these callbacks."""
        return {
            "GHN_CALLBACK_TOKEN": self.ghn,
            "GHTK_CALLBACK_HASH": self.ghtk,
            "VIETTELPOST_CALLBACK_TOKEN": self.viettel_post,
            "VNPOST_CALLBACK_TOKEN": self.vnpost,
        }


class CarrierSimulator:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secrets: CarrierSecrets | None = None,
        noise: Noise | None = None,
        step_s: float = 0.5,
        seed: int = 7,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client  # pointed at VuonMinh (base_url), for the callbacks
        self.secrets = secrets or CarrierSecrets()
        self.noise = noise or Noise()
        self.step_s = step_s
        self.random = random.Random(seed)
        self.clock = clock
        self.parcels: dict[str, Parcel] = {}  # by our reference
        self.callbacks_sent = 0
        self.answers: dict[int, int] = {}  # status code -> count
        self._serial = itertools.count(1)
        self._lives: set[asyncio.Task[None]] = set()

    # -- taking orders ---------------------------------------------------------------------------------
    def accept(self, carrier: str, create_order: dict[str, Any]) -> Parcel:
        """A create-order request in the carrier's format: the parcel (the same one when repeated)."""
        reference, cod, weight = _read_order(carrier, create_order)
        if reference in self.parcels:
            return self.parcels[reference]
        life = RETURNED_LIFE if self.random.random() < self.noise.fail_rate else DELIVERED_LIFE
        parcel = Parcel(
            carrier=carrier,
            reference=reference,
            tracking_code=_tracking_code(carrier, next(self._serial)),
            cod_vnd=cod,
            weight_g=weight,
            fee_vnd=18000 + weight // 500 * 2500,
            life=life,
        )
        self.parcels[reference] = parcel
        task = asyncio.create_task(self._live(parcel))
        self._lives.add(task)
        task.add_done_callback(self._lives.discard)
        return parcel

    async def consume(self, transport: Any, *, group_id: str = "carrier-simulator") -> None:
        """Reads the dispatch topics as a partner's consumer would, until cancelled."""
        consumer = transport.consumer(group_id=group_id, topics=list(DISPATCH_TOPICS))
        await consumer.start()
        try:
            while True:
                records = await consumer.poll(max_records=200, timeout_s=0.5)
                positions = {}
                for record in records:
                    event = json.loads(record.value or b"{}")
                    if isinstance(event, dict) and event.get("carrier") in CARRIERS and "create_order" in event:
                        self.accept(event["carrier"], event["create_order"])
                    positions[(record.topic, record.partition)] = record.offset + 1
                if positions:
                    await consumer.commit(positions)
        finally:
            await consumer.stop()

    def app(self) -> FastAPI:
        """Each carrier's create-order endpoint, at its own path, answering in its own shape."""
        app = FastAPI(title="Carrier simulator")

        @app.post("/shiip/public-api/v2/shipping-order/create")
        async def ghn(request: Request) -> JSONResponse:
            parcel = self.accept("ghn", await request.json())
            data = {"order_code": parcel.tracking_code, "total_fee": parcel.fee_vnd}
            return JSONResponse({"code": 200, "message": "Success", "data": data})

        @app.post("/services/shipment/order")
        async def ghtk(request: Request) -> JSONResponse:
            parcel = self.accept("ghtk", await request.json())
            order = {"partner_id": parcel.reference, "label": parcel.tracking_code, "fee": parcel.fee_vnd}
            return JSONResponse({"success": True, "message": "", "order": order})

        @app.post("/v2/order/createOrder")
        async def viettel_post(request: Request) -> JSONResponse:
            parcel = self.accept("viettel_post", await request.json())
            data = {"ORDER_NUMBER": parcel.tracking_code, "MONEY_TOTAL": parcel.fee_vnd}
            return JSONResponse({"status": 200, "error": False, "message": "OK", "data": data})

        @app.post("/customer-partner/CreateOrder")
        async def vnpost(request: Request) -> JSONResponse:
            parcel = self.accept("vnpost", await request.json())
            return JSONResponse({"ItemCode": parcel.tracking_code, "Fee": parcel.fee_vnd})

        return app

    async def settle(self, timeout_s: float = 120.0) -> None:
        """Waits until every parcel has told its whole life."""
        async with asyncio.timeout(timeout_s):
            while self._lives:
                await asyncio.gather(*list(self._lives), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._lives):
            task.cancel()
        await asyncio.gather(*list(self._lives), return_exceptions=True)

    # -- a parcel's life -------------------------------------------------------------------------------
    async def _live(self, parcel: Parcel) -> None:
        start = self.clock()
        steps = [(step, start + timedelta(hours=6 * i)) for i, step in enumerate(parcel.life)]
        order = list(range(len(steps)))
        # Noise: two consecutive reports swapped, one repeated (the repeat after the original).
        if len(order) > 2 and self.random.random() < self.noise.swap_rate:
            i = self.random.randrange(1, len(order) - 1)
            order[i], order[i + 1] = order[i + 1], order[i]
        if self.random.random() < self.noise.duplicate_rate:
            i = self.random.randrange(len(order))
            order.insert(i + 1, order[i])
        for index in order:
            await asyncio.sleep(self.step_s * self.random.uniform(0.5, 1.5))
            step, at = steps[index]
            await self._send(parcel, step, at)

    async def _send(self, parcel: Parcel, step: str, at: datetime) -> None:
        url, kwargs = self.callback(parcel, step, at)
        for attempt in range(5):  # carriers resend on anything but 200 (GHN 10 times, 5 s apart)
            try:
                answer = await self.client.post(url, **kwargs)
            except httpx.HTTPError:
                await asyncio.sleep(self.step_s * (attempt + 1))
                continue
            self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
            if answer.status_code < 500:
                break
            await asyncio.sleep(self.step_s * (attempt + 1))
        self.callbacks_sent += 1
        parcel.sent.append((step, at))

    def callback(self, parcel: Parcel, step: str, at: datetime) -> tuple[str, dict[str, Any]]:
        """The URL and request of the carrier's callback for `step`, in its format and with its credential."""
        code = STEPS[parcel.carrier][step]
        delivered = step == "delivered"
        base = f"/v1/carriers/{parcel.carrier}/callbacks"
        if parcel.carrier == "ghn":
            body = {
                "CODAmount": parcel.cod_vnd,
                "ClientOrderCode": parcel.reference,
                "OrderCode": parcel.tracking_code,
                "ShopID": 885,
                "Status": code,
                "Time": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "Type": "switch_status",
                "Reason": "Khách không nghe máy" if step == "failed" else "",
                "TotalFee": parcel.fee_vnd,
                "Weight": parcel.weight_g,
            }
            return f"{base}?{urlencode({'token': self.secrets.ghn})}", {"json": body}
        if parcel.carrier == "ghtk":
            form = {
                "label_id": parcel.tracking_code,
                "partner_id": parcel.reference,
                "status_id": str(code),
                "action_time": (at.astimezone(UTC) + VIETNAM).replace(tzinfo=None).isoformat() + "+07:00",
                "reason_code": "",
                "reason": "",
                "weight": f"{parcel.weight_g / 1000:g}",
                "fee": str(parcel.fee_vnd),
                "pick_money": str(parcel.cod_vnd),
                "return_part_package": "0",
            }
            headers = {"content-type": "application/x-www-form-urlencoded"}
            return f"{base}?{urlencode({'hash': self.secrets.ghtk})}", {"content": urlencode(form), "headers": headers}
        if parcel.carrier == "viettel_post":
            data = {
                "ORDER_NUMBER": parcel.tracking_code,
                "ORDER_REFERENCE": parcel.reference,
                "ORDER_STATUSDATE": (at.astimezone(UTC) + VIETNAM).strftime("%d/%m/%Y %H:%M:%S"),
                "ORDER_STATUS": code,
                "STATUS_NAME": "Phát thành công" if delivered else step,
                "LOCALION_CURRENTLY": "Bưu cục",
                "NOTE": "",
                "MONEY_COLLECTION": parcel.cod_vnd,
                "MONEY_FEECOD": 0,
                "MONEY_TOTAL": parcel.fee_vnd,
                "PRODUCT_WEIGHT": parcel.weight_g,
                "ORDER_SERVICE": "VCN",
            }
            return base, {"json": {"DATA": data, "TOKEN": self.secrets.viettel_post}}
        body = {
            "OrderCode": parcel.reference,
            "ItemCode": parcel.tracking_code,
            "StatusCode": code,
            "StatusName": step,
            "StatusTime": (at.astimezone(UTC) + VIETNAM).replace(tzinfo=None).isoformat() + "+07:00",
            "Note": "",
            "CodAmount": parcel.cod_vnd,
            "Fee": parcel.fee_vnd,
            "Weight": parcel.weight_g,
        }
        return base, {"json": body, "headers": {"authorization": f"Bearer {self.secrets.vnpost}"}}


def _read_order(carrier: str, body: dict[str, Any]) -> tuple[str, int, int]:
    """(our reference, COD, grams) from a create-order body in the carrier's format."""
    if carrier == "ghn":
        return str(body["client_order_code"]), int(body.get("cod_amount") or 0), int(body["weight"])
    if carrier == "ghtk":
        order = body["order"]
        grams = round(sum(p["weight"] * 1000 * p.get("quantity", 1) for p in body.get("products", [])))
        return str(order["id"]), int(order.get("pick_money") or 0), grams
    if carrier == "viettel_post":
        return str(body["ORDER_NUMBER"]), int(body.get("MONEY_COLLECTION") or 0), int(body["PRODUCT_WEIGHT"])
    return str(body["OrderCode"]), int(body.get("CodAmount") or 0), int(body["Weight"])


def _tracking_code(carrier: str, serial: int) -> str:
    return {
        "ghn": f"GHN{serial:07d}",
        "ghtk": f"S1.A1.{17000000 + serial}",
        "viettel_post": f"{1752300000000 + serial}",
        "vnpost": f"EB{serial:09d}VN",
    }[carrier]
