"""orders' rules, free of I/O: identity of an order, its limits, its check against the catalog,
and what differs between two versions of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vuonminh.shared.events import (
    OrderItem,
    OrderLine,
    OrderPlaced,
    OrderPlacedV2,
    OrderReceived,
    OrderRejectedV2,
    OrderRejectedV3,
    RejectionReasonV2,
)
from vuonminh.shared.events.orders import order_key
from vuonminh.shared.events.types import MAX_GRAMS, MAX_ORDER_ITEMS, MAX_QUANTITY, MAX_VND

_ORDER_ID_NAMESPACE = uuid.UUID("6f1c2b1e-3f7a-4d55-9a8e-2b0d7c5e9a41")


def order_id_for(channel: str, shop_id: str, external_order_id: str) -> str:
    """Our id of a shop's order: the same shop order always maps to the same id.

    A UUIDv5 of the order's key, whose parts are percent-encoded (see `order_key`). For ids made
    only of letters, digits and `-._~` this is the id orders gave before the encoding existed;
    stored orders are found by (channel, shop, shop's order id) anyway, never by this id alone.
    """
    return str(uuid.uuid5(_ORDER_ID_NAMESPACE, order_key(channel, shop_id, external_order_id)))


# -- limits ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LimitProblem:
    loc: tuple[str | int, ...]  # where in the webhook body, as pydantic names fields
    message: str


def limit_problems(items: Sequence[OrderItem]) -> list[LimitProblem]:
    """What makes an order's amounts exceed what the events and columns hold (empty when none).

    Each line total (quantity x unit price) and the order total must stay within MAX_VND.
    Weights come from the catalog, so they are checked when the order is decided.
    """
    problems: list[LimitProblem] = []
    if len(items) > MAX_ORDER_ITEMS:
        problems.append(LimitProblem(("items",), f"an order has at most {MAX_ORDER_ITEMS:,} items"))
    total = 0
    for index, item in enumerate(items):
        if item.quantity > MAX_QUANTITY:
            problems.append(LimitProblem(("items", index, "quantity"), f"quantity is at most {MAX_QUANTITY:,} units"))
        line_total = item.quantity * item.unit_price_vnd
        total += line_total
        if line_total > MAX_VND:
            problems.append(
                LimitProblem(
                    ("items", index, "unit_price_vnd"),
                    f"line total {item.quantity:,} x {item.unit_price_vnd:,} = {line_total:,} VND "
                    f"exceeds {MAX_VND:,} VND",
                )
            )
    if total > MAX_VND:
        problems.append(LimitProblem(("items",), f"order total {total:,} VND exceeds {MAX_VND:,} VND"))
    return problems


# -- the catalog check --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogProduct:
    sku: str
    name: str
    seller_id: str
    unit_weight_g: int


@dataclass(frozen=True)
class CatalogSeller:
    seller_id: str
    province_code: str
    ward_code: str


@dataclass(frozen=True)
class AwaitingCatalog:
    """Not decided yet: orders' copy of the catalog lacks these SKUs or sellers.

    Catalog's events travel on their own topics, so an order can arrive before the product or
    seller it names; it waits for them (see handlers and the sweep) instead of being rejected.
    """

    missing_skus: tuple[str, ...]
    missing_seller_ids: tuple[str, ...]


Decision = OrderPlaced | OrderRejectedV2 | AwaitingCatalog


def decide(
    received: OrderReceived,
    *,
    order_id: str,
    products: dict[str, CatalogProduct],
    sellers: dict[str, CatalogSeller],
    waited_s: float | None = None,
) -> Decision:
    """Place the order when every line names a product and seller we know.

    An empty or over-limit order is rejected: amounts over MAX_VND, or a weight over MAX_GRAMS
    (10 t: more than one order's shipments carry). An order naming unknown SKUs or sellers waits
    for the catalog; once `waited_s` is given (the wait is over), it is rejected for them.
    """

    # Direct orders keep the types their readers know; marketplace orders need the widened channel list.
    direct = received.channel == "direct"
    placed_type = OrderPlaced if direct else OrderPlacedV2
    rejected_type = OrderRejectedV2 if direct else OrderRejectedV3

    def rejected(reasons: list[RejectionReasonV2]) -> OrderRejectedV2:
        return rejected_type(
            order_id=order_id,
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            placed_at=received.placed_at,
            reasons=tuple(reasons),
        )

    if not received.items:
        return rejected([RejectionReasonV2(code="empty_order", message="the order has no items")])
    # Intake refuses these since limits are checked there; events accepted before still decide cleanly.
    over_limit = limit_problems(received.items)
    if over_limit:
        return rejected([_over_limit_reason(received, problem) for problem in over_limit])
    missing_skus = _unique(item.sku for item in received.items if item.sku not in products)
    missing_sellers = _unique(
        products[item.sku].seller_id
        for item in received.items
        if item.sku in products and products[item.sku].seller_id not in sellers
    )
    if missing_skus or missing_sellers:
        if waited_s is None:
            return AwaitingCatalog(missing_skus=missing_skus, missing_seller_ids=missing_sellers)
        waited = f"after waiting {waited_s:.0f} s for the catalog"
        reasons = []
        for item in received.items:
            product = products.get(item.sku)
            if product is None:
                message = f"SKU {item.sku} is not in the catalog {waited}"
                reasons.append(RejectionReasonV2(code="unknown_sku", message=message, sku=item.sku))
            elif product.seller_id not in sellers:
                message = f"seller {product.seller_id} of SKU {item.sku} is unknown {waited}"
                reasons.append(RejectionReasonV2(code="unknown_seller", message=message, sku=item.sku))
        return rejected(reasons)
    weights = [item.quantity * products[item.sku].unit_weight_g for item in received.items]
    if sum(weights) > MAX_GRAMS:
        heaviest = max(range(len(weights)), key=weights.__getitem__)
        return rejected(
            [
                RejectionReasonV2(
                    code="over_limit",
                    message=f"total_weight_g: the order weighs {sum(weights):,} g, over the {MAX_GRAMS:,} g "
                    f"(10 t) one order may weigh; its heaviest line is {received.items[heaviest].sku}",
                    sku=received.items[heaviest].sku,
                )
            ]
        )
    lines: list[OrderLine] = []
    for item in received.items:
        product = products[item.sku]
        seller = sellers[product.seller_id]
        lines.append(
            OrderLine(
                sku=item.sku,
                product_name=product.name,
                seller_id=seller.seller_id,
                seller_province_code=seller.province_code,
                seller_ward_code=seller.ward_code,
                quantity=item.quantity,
                unit_price_vnd=item.unit_price_vnd,
                unit_weight_g=product.unit_weight_g,
                line_total_vnd=item.quantity * item.unit_price_vnd,
                line_weight_g=item.quantity * product.unit_weight_g,
            )
        )
    extra = {} if direct else {"buyer_legacy_district": getattr(received, "buyer_legacy_district", None)}
    return placed_type(
        **extra,
        order_id=order_id,
        channel=received.channel,
        shop_id=received.shop_id,
        external_order_id=received.order_id,
        placed_at=received.placed_at,
        livestream_id=received.livestream_id,
        payment_method=received.payment_method,
        buyer=received.buyer,
        lines=tuple(lines),
        total_vnd=sum(line.line_total_vnd for line in lines),
        total_weight_g=sum(line.line_weight_g for line in lines),
    )


def _over_limit_reason(received: OrderReceived, problem: LimitProblem) -> RejectionReasonV2:
    index = problem.loc[1] if len(problem.loc) > 1 else None
    return RejectionReasonV2(
        code="over_limit",
        message=f"{'.'.join(str(part) for part in problem.loc)}: {problem.message}",
        sku=received.items[index].sku if isinstance(index, int) else None,
    )


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# -- versions of one order ------------------------------------------------------------------------------
def order_content(received: OrderReceived) -> dict[str, Any]:
    """What the shop said about the order: two versions with equal content are the same order.

    When the webhook accepted it (received_at) is not content; times compare as instants.
    """
    return {
        "placed_at": received.placed_at,
        "livestream_id": received.livestream_id,
        "payment_method": received.payment_method,
        "buyer": received.buyer.model_dump(),
        "items": [item.model_dump() for item in received.items],
    }


def differences(stored: Any, incoming: Any, path: str = "") -> list[str]:
    """The fields whose values differ between two contents, e.g. ["buyer.phone", "items[1].quantity"]."""
    if isinstance(stored, dict) and isinstance(incoming, dict):
        found: list[str] = []
        for name in dict.fromkeys([*stored, *incoming]):
            found += differences(stored.get(name), incoming.get(name), f"{path}.{name}" if path else name)
        return found
    if isinstance(stored, list) and isinstance(incoming, list):
        if len(stored) != len(incoming):
            return [path]
        found = []
        for index, (old, new) in enumerate(zip(stored, incoming, strict=True)):
            found += differences(old, new, f"{path}[{index}]")
        return found
    return [] if stored == incoming else [path]


# -- the order's life after intake ------------------------------------------------------------------------
# Placed or later: the order is final, another content for it is a conflict (409 at intake, recorded by
# the consumer), never applied.
FINAL_FOR_INTAKE = ("placed", "confirmed", "shipped", "delivered", "returned", "cancelled")
# Our statuses in the order they follow each other; cancelled and rejected end an order's life.
LIFECYCLE_RANK = {
    "awaiting_payment": 0,
    "awaiting_catalog": 0,
    "placed": 1,
    "confirmed": 2,
    "shipped": 3,
    "delivered": 4,
    "returned": 5,
}
FINAL = frozenset({"cancelled", "rejected"})
# A platform's state (each platform's own statuses map onto these, see channels/) in its order.
PLATFORM_RANK = {"unpaid": 0, "to_ship": 1, "shipped": 2, "delivered": 3, "returned": 4, "cancelled": 5}
# What a platform state moves our order to, once it is placed.
FROM_PLATFORM = {"shipped": "shipped", "delivered": "delivered", "returned": "returned"}
# What logistics' shipment states move the order to.
FROM_SHIPMENT = {
    "picked_up": "shipped",
    "in_transit": "shipped",
    "out_for_delivery": "shipped",
    "delivered": "delivered",
    "returned": "returned",
}


def is_stale_platform_state(
    current: str | None, current_at: datetime | None, incoming: str, incoming_at: datetime
) -> bool:
    """A platform status older than the one applied, or earlier in the order's life: kept in the
    history, never moving the order back."""
    if current is None:
        return False
    if current == "cancelled":
        return True
    if current_at is not None and incoming_at < current_at:
        return True
    return PLATFORM_RANK[incoming] < PLATFORM_RANK[current]


def moves_forward(current: str, target: str) -> bool:
    """Whether our order may go from `current` to `target` (never backwards, never out of an end)."""
    if current in FINAL or target not in LIFECYCLE_RANK:
        return False
    return LIFECYCLE_RANK[target] > LIFECYCLE_RANK[current]


def may_cancel(current: str) -> bool:
    """Cancelled before dispatch: a shipped order is not cancelled (its return is)."""
    return current in ("awaiting_payment", "awaiting_catalog", "placed", "confirmed")
