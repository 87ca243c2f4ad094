"""logistics' rules, free of I/O: one shipment per seller, and a first carrier choice."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from vuonminh.shared.events import OrderLine, OrderPlaced
from vuonminh.shared.events.logistics import Carrier, ShipmentItem

_SHIPMENT_ID_NAMESPACE = uuid.UUID("a4d3f7e2-5b8c-4e61-9d2f-7c3b1a0e6f58")


def shipment_id_for(order_id: str, seller_id: str) -> str:
    """One order has one shipment per seller; the id follows from that pair."""
    return str(uuid.uuid5(_SHIPMENT_ID_NAMESPACE, f"{order_id}:{seller_id}"))


def choose_carrier(*, origin_province_code: str, destination_province_code: str) -> Carrier:
    """A first, simple choice until zones, weights, fees and capacity are modelled:
    GHTK for deliveries within the seller's province, Viettel Post (widest rural reach) beyond.
    """
    return "ghtk" if origin_province_code == destination_province_code else "viettel_post"


@dataclass(frozen=True)
class ShipmentPlan:
    shipment_id: str
    seller_id: str
    carrier: Carrier
    origin_province_code: str
    origin_ward_code: str
    items: tuple[ShipmentItem, ...]
    weight_g: int
    cod_amount_vnd: int


def plan_shipments(order: OrderPlaced) -> list[ShipmentPlan]:
    lines_by_seller: dict[str, list[OrderLine]] = defaultdict(list)
    for line in order.lines:
        lines_by_seller[line.seller_id].append(line)
    plans = []
    for seller_id, lines in sorted(lines_by_seller.items()):
        origin = lines[0]
        plans.append(
            ShipmentPlan(
                shipment_id=shipment_id_for(order.order_id, seller_id),
                seller_id=seller_id,
                carrier=choose_carrier(
                    origin_province_code=origin.seller_province_code,
                    destination_province_code=order.buyer.address.province_code,
                ),
                origin_province_code=origin.seller_province_code,
                origin_ward_code=origin.seller_ward_code,
                items=tuple(ShipmentItem(sku=line.sku, quantity=line.quantity) for line in lines),
                weight_g=sum(line.line_weight_g for line in lines),
                # Cash on delivery: each parcel collects what its seller is owed.
                cod_amount_vnd=sum(line.line_total_vnd for line in lines) if order.payment_method == "cod" else 0,
            )
        )
    return plans


# A shipment can be cancelled until the courier has it: after pickup it has to be returned instead.
CANCELLABLE = frozenset({"created", "pickup_assigned"})


def cancellable(status: str) -> bool:
    return status in CANCELLABLE
