"""Signed unique demo orders, made just before they are sent (the signature ages out after 300 s)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vuonminh.orders.domain import order_id_for
from vuonminh.orders.webhooks import SIGNATURE_HEADER, sign
from vuonminh.wiring.demo import demo_order

WEBHOOK_PATH = "/v1/webhooks/direct"


@dataclass(frozen=True)
class SignedOrder:
    shop_id: str
    external_id: str
    body: bytes
    signature: str
    signed_at: int

    @property
    def order_id(self) -> str:
        """Our id of the order: what orders stores and analytics counts under."""
        return order_id_for("direct", self.shop_id, self.external_id)

    def resigned(self, secret: str, now: int | None = None) -> SignedOrder:
        """The same order with a fresh signature, for a retry that comes late."""
        now = int(time.time()) if now is None else now
        signature = sign(self.body, secret=secret, timestamp=now)
        return SignedOrder(self.shop_id, self.external_id, self.body, signature, now)


def signed_orders(count: int, *, secret: str, run_id: str, seed: int = 1) -> list[SignedOrder]:
    """`count` distinct demo orders (1-3 lines each), ids `<run_id>-<sequence>`, all signed now."""
    rng = random.Random(seed)
    now = int(time.time())
    orders = []
    for sequence in range(count):
        body = demo_order(sequence, rng=rng, run_id=run_id)
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        orders.append(SignedOrder(body["shop_id"], body["order_id"], raw, sign(raw, secret=secret, timestamp=now), now))
    return orders


def http_request(order: SignedOrder, *, host: str, path: str = WEBHOOK_PATH) -> bytes:
    """The whole HTTP/1.1 request, keep-alive, as the asyncio client writes it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{SIGNATURE_HEADER}: {order.signature}\r\nContent-Length: {len(order.body)}\r\n\r\n"
    )
    return head.encode() + order.body


def write_wrk_requests(path: Path, orders: Iterable[SignedOrder]) -> int:
    """One request per line for bench/signed.lua: `<signature>\\t<body>` (compact JSON has no newline)."""
    written = 0
    with path.open("wb") as out:
        for order in orders:
            if b"\n" in order.body or b"\t" in order.signature.encode():
                raise ValueError(f"order {order.external_id} cannot be written on one line")
            out.write(order.signature.encode() + b"\t" + order.body + b"\n")
            written += 1
    return written
