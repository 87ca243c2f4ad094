"""orders' rules, free of I/O: identity of an order, and its check against the catalog."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from vuonminh.shared.events import OrderLine, OrderPlaced, OrderReceived, OrderRejected, RejectionReason

_ORDER_ID_NAMESPACE = uuid.UUID("6f1c2b1e-3f7a-4d55-9a8e-2b0d7c5e9a41")


def order_id_for(channel: str, shop_id: str, external_order_id: str) -> str:
    """Our id of a shop's order: the same shop order always maps to the same id."""
    return str(uuid.uuid5(_ORDER_ID_NAMESPACE, f"{channel}:{shop_id}:{external_order_id}"))


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


def decide(
    received: OrderReceived,
    *,
    products: dict[str, CatalogProduct],
    sellers: dict[str, CatalogSeller],
) -> OrderPlaced | OrderRejected:
    """Place the order when every line names a product we know, else reject it with reasons."""
    order_id = order_id_for(received.channel, received.shop_id, received.order_id)
    reasons: list[RejectionReason] = []
    lines: list[OrderLine] = []
    for item in received.items:
        product = products.get(item.sku)
        if product is None:
            reasons.append(
                RejectionReason(code="unknown_sku", message=f"SKU {item.sku} is not in the catalog", sku=item.sku)
            )
            continue
        seller = sellers.get(product.seller_id)
        if seller is None:
            reasons.append(
                RejectionReason(
                    code="unknown_seller",
                    message=f"seller {product.seller_id} of SKU {item.sku} is unknown",
                    sku=item.sku,
                )
            )
            continue
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
    if not received.items:
        reasons.append(RejectionReason(code="empty_order", message="the order has no items"))
    if reasons:
        return OrderRejected(
            order_id=order_id,
            channel=received.channel,
            shop_id=received.shop_id,
            external_order_id=received.order_id,
            placed_at=received.placed_at,
            reasons=tuple(reasons),
        )
    return OrderPlaced(
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
