"""Events published by logistics: what partners consume to pick up parcels."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from vuonminh.shared.events.base import EventPayload
from vuonminh.shared.events.orders import Buyer, PlacedBuyer
from vuonminh.shared.events.topics import Topic
from vuonminh.shared.events.types import Grams, ProvinceCode, Sku, UtcDatetime, Vnd, WardCode

Carrier = Literal["viettel_post", "ghn", "ghtk", "vnpost"]


class ShipmentItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    sku: Sku
    quantity: int


class ShipmentDispatched(EventPayload):
    """A parcel handed to a carrier for first-mile pickup at the seller's commune."""

    TYPE: ClassVar[str] = "vuonminh.logistics.shipment_dispatched.v1"
    TOPIC: ClassVar[str] = Topic.SHIPMENTS

    shipment_id: str
    order_id: str
    seller_id: str
    carrier: Carrier
    origin_province_code: ProvinceCode
    origin_ward_code: WardCode
    recipient: Buyer
    items: tuple[ShipmentItem, ...]
    weight_g: Grams
    cod_amount_vnd: Vnd
    dispatched_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.shipment_id


class ShipmentDispatchedV2(ShipmentDispatched):
    """v2: the recipient is a placed order's buyer as the platform gives it (the phone often masked).
    Published for marketplace orders (direct ones stay v1); a v1 payload reads as v2."""

    TYPE: ClassVar[str] = "vuonminh.logistics.shipment_dispatched.v2"
    TOPIC: ClassVar[str] = Topic.SHIPMENTS

    recipient: PlacedBuyer  # type: ignore[assignment]


# One state machine for every carrier's statuses (each carrier's codes map onto it). A state never
# goes backwards: a late or repeated callback is kept as raw history but moves nothing.
ShipmentStatus = Literal[
    "created",
    "pickup_assigned",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "delivery_failed",
    "returning",
    "returned",
    "cancelled",
    "lost",
]


class ShipmentStatusChanged(EventPayload):
    """A shipment moved to a new state (from a carrier callback, a pickup assignment or a cancellation)."""

    TYPE: ClassVar[str] = "vuonminh.logistics.shipment_status_changed.v1"
    TOPIC: ClassVar[str] = Topic.SHIPMENTS

    shipment_id: str
    order_id: str
    seller_id: str
    carrier: Carrier
    status: ShipmentStatus
    previous_status: ShipmentStatus
    occurred_at: UtcDatetime  # when it happened, as the carrier reports it
    recorded_at: UtcDatetime  # when logistics applied it
    shipping_fee_vnd: Vnd | None = None  # the carrier's fee, once known
    cod_collected_vnd: Vnd | None = None  # cash the carrier collected, on delivery

    def aggregate_id(self) -> str:
        return self.shipment_id


class DispatchRequested(EventPayload):
    """A request for one carrier to create its order for a shipment, in that carrier's own
    create-order format (`create_order`), so the carrier's partner can submit it as is.

    One class and one topic per carrier (below); this base is not an event type itself."""

    shipment_id: str
    order_id: str
    seller_id: str
    carrier: Carrier
    reference: str  # our reference, sent to the carrier (GHN client_order_code, GHTK order.id, VTP ORDER_NUMBER)
    create_order: dict[str, Any]  # the body of the carrier's create-order request
    requested_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.shipment_id


class GhnDispatchRequested(DispatchRequested):
    TYPE: ClassVar[str] = "vuonminh.logistics.ghn_dispatch_requested.v1"
    TOPIC: ClassVar[str] = Topic.DISPATCH_GHN


class GhtkDispatchRequested(DispatchRequested):
    TYPE: ClassVar[str] = "vuonminh.logistics.ghtk_dispatch_requested.v1"
    TOPIC: ClassVar[str] = Topic.DISPATCH_GHTK


class ViettelPostDispatchRequested(DispatchRequested):
    TYPE: ClassVar[str] = "vuonminh.logistics.viettel_post_dispatch_requested.v1"
    TOPIC: ClassVar[str] = Topic.DISPATCH_VIETTEL_POST


class VnpostDispatchRequested(DispatchRequested):
    TYPE: ClassVar[str] = "vuonminh.logistics.vnpost_dispatch_requested.v1"
    TOPIC: ClassVar[str] = Topic.DISPATCH_VNPOST


DISPATCH_REQUESTED: dict[str, type[DispatchRequested]] = {
    "ghn": GhnDispatchRequested,
    "ghtk": GhtkDispatchRequested,
    "viettel_post": ViettelPostDispatchRequested,
    "vnpost": VnpostDispatchRequested,
}
