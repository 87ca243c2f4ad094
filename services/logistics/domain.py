"""logistics' rules, free of I/O: one shipment per seller, the shipment's states, what a carrier is
told about a parcel. Which carrier takes it: policy.py."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from vuonminh.logistics.carriers.base import Parcel
from vuonminh.shared.addresses import find_province, find_ward
from vuonminh.shared.events import OrderLine, OrderPlaced
from vuonminh.shared.events.logistics import ShipmentItem

_SHIPMENT_ID_NAMESPACE = uuid.UUID("a4d3f7e2-5b8c-4e61-9d2f-7c3b1a0e6f58")


def shipment_id_for(order_id: str, seller_id: str) -> str:
    """One order has one shipment per seller; the id follows from that pair."""
    return str(uuid.uuid5(_SHIPMENT_ID_NAMESPACE, f"{order_id}:{seller_id}"))


@dataclass(frozen=True)
class ShipmentPlan:
    shipment_id: str
    seller_id: str
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
# A shipment no carrier could take (needs_attention) has not left either.
CANCELLABLE = frozenset({"needs_attention", "created", "pickup_assigned"})


def cancellable(status: str) -> bool:
    return status in CANCELLABLE


# -- the shipment's states ---------------------------------------------------------------------------------
# Forward only: a report moves a shipment to a state further along, never back. The four ends are final.
PROGRESS: dict[str, int] = {
    "needs_attention": -1,  # logistics' own holding state: no carrier could take it yet
    "created": 0,
    "pickup_assigned": 1,
    "picked_up": 2,
    "in_transit": 3,
    "out_for_delivery": 4,
    "delivery_failed": 5,
    "returning": 6,
    "delivered": 7,
    "returned": 7,
    "cancelled": 7,
    "lost": 7,
}
FINAL = frozenset({"delivered", "returned", "cancelled", "lost"})


def why_not_move(current: str, proposed: str, *, current_at: datetime | None, proposed_at: datetime) -> str | None:
    """None when a carrier's report of `proposed` (at `proposed_at`) moves a shipment now in `current`
    (since `current_at`); else why it does not (the report is kept, the state stays)."""
    if proposed == current:
        return f"already {current}"
    if current in FINAL:
        return f"{current} is final"
    if proposed == "cancelled" and not cancellable(current):
        return f"a {current} shipment cannot be cancelled (it has left the seller)"
    if proposed == "lost":
        return None
    # A failed delivery is attempted again: the only step back, and only when it is newer.
    if current == "delivery_failed" and proposed == "out_for_delivery":
        return None if current_at is None or proposed_at >= current_at else "an older delivery attempt"
    if PROGRESS[proposed] <= PROGRESS[current]:
        return f"{proposed} is behind {current}"
    return None


def place_names(province_code: str, ward_code: str) -> tuple[str, str]:
    """(province, ward) names of the 2025 units, for carriers that want names; the codes when unknown."""
    province, ward = find_province(province_code), find_ward(ward_code)
    return (province.name if province else province_code, ward.name if ward else ward_code)


def parcel_of(order: OrderPlaced, plan: ShipmentPlan) -> Parcel:
    """What the carrier's create-order request says about one shipment of `order`."""
    buyer = order.buyer
    sender_province, sender_ward = place_names(plan.origin_province_code, plan.origin_ward_code)
    recipient_province, recipient_ward = place_names(buyer.address.province_code, buyer.address.ward_code)
    lines = [line for line in order.lines if line.seller_id == plan.seller_id]
    return Parcel(
        reference=plan.shipment_id,
        weight_g=plan.weight_g,
        cod_amount_vnd=plan.cod_amount_vnd,
        order_value_vnd=sum(line.line_total_vnd for line in lines),
        # Logistics knows the seller by id and commune; its name and phone come with the carrier account.
        sender_name=plan.seller_id,
        sender_phone="",
        sender_province=sender_province,
        sender_ward=sender_ward,
        sender_province_code=plan.origin_province_code,
        sender_ward_code=plan.origin_ward_code,
        recipient_name=buyer.name,
        recipient_phone=buyer.phone,
        recipient_line=buyer.address.line,
        recipient_province=recipient_province,
        recipient_ward=recipient_ward,
        recipient_province_code=buyer.address.province_code,
        recipient_ward_code=buyer.address.ward_code,
        recipient_legacy_district=getattr(order, "buyer_legacy_district", None),
        items=tuple((line.sku, line.product_name, line.quantity, line.unit_weight_g) for line in lines),
    )
