"""Events published by orders: the accepted webhook (intake) and the order's outcome."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from vuonminh.shared.events.base import EventPayload
from vuonminh.shared.events.topics import Topic
from vuonminh.shared.events.types import (
    MAX_QUANTITY,
    Grams,
    ProvinceCode,
    ShortText,
    Sku,
    UtcDatetime,
    Vnd,
    WardCode,
)

SalesChannel = Literal["direct"]
PaymentMethod = Literal["cod", "prepaid"]


def order_key(channel: str, shop_id: str, order_id: str) -> str:
    """The key of a shop's order: `<channel>:<shop_id>:<order_id>`, each part percent-encoded.

    Encoding each part (":" becomes %3A, "%" becomes %25) keeps the key unambiguous: shop `a:b`
    with order `c` and shop `a` with order `b:c` get different keys. Parts made only of
    letters, digits and `-._~` are written as they are.
    """
    return ":".join(quote(part, safe="") for part in (channel, shop_id, order_id))


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BuyerAddress(_Part):
    province_code: ProvinceCode
    ward_code: WardCode
    line: ShortText


class Buyer(_Part):
    name: ShortText
    phone: str = Field(pattern=r"^\+?[0-9 .-]{8,20}$")
    address: BuyerAddress


class OrderItem(_Part):
    sku: Sku
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price_vnd: Vnd


class OrderReceived(EventPayload):
    """A shop's order as accepted at the webhook, before any check against the catalog."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_received.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS_INTAKE

    channel: SalesChannel
    shop_id: str
    order_id: str  # the shop's own id
    placed_at: UtcDatetime
    livestream_id: str | None = None
    buyer: Buyer
    items: tuple[OrderItem, ...]
    payment_method: PaymentMethod
    received_at: UtcDatetime

    def aggregate_id(self) -> str:
        return order_key(self.channel, self.shop_id, self.order_id)


class OrderLine(_Part):
    sku: Sku
    product_name: str
    seller_id: str
    seller_province_code: ProvinceCode
    seller_ward_code: WardCode
    quantity: int
    unit_price_vnd: Vnd
    unit_weight_g: Grams
    line_total_vnd: Vnd
    line_weight_g: Grams


class OrderPlaced(EventPayload):
    TYPE: ClassVar[str] = "vuonminh.orders.order_placed.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str  # ours
    channel: SalesChannel
    shop_id: str
    external_order_id: str
    placed_at: UtcDatetime
    livestream_id: str | None
    payment_method: PaymentMethod
    buyer: Buyer
    lines: tuple[OrderLine, ...]
    total_vnd: Vnd
    total_weight_g: Grams

    def aggregate_id(self) -> str:
        return self.order_id


class RejectionReason(_Part):
    code: Literal["unknown_sku", "unknown_seller", "empty_order"]
    message: str
    sku: str | None = None


class OrderRejected(EventPayload):
    """No longer published (see OrderRejectedV2); declared so that the events already on the
    topic stay readable."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_rejected.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str
    channel: SalesChannel
    shop_id: str
    external_order_id: str
    placed_at: UtcDatetime
    reasons: tuple[RejectionReason, ...]

    def aggregate_id(self) -> str:
        return self.order_id


class RejectionReasonV2(_Part):
    # An open set, so that a new reason is not a new version: readers take a code they do not
    # know as "rejected for another reason" (the message explains it).
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    message: str
    sku: str | None = None


class OrderRejectedV2(EventPayload):
    """v2: the reason codes are an open set (v1's closed list had no room for `over_limit`)."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_rejected.v2"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str
    channel: SalesChannel
    shop_id: str
    external_order_id: str
    placed_at: UtcDatetime
    reasons: tuple[RejectionReasonV2, ...]

    def aggregate_id(self) -> str:
        return self.order_id


class OrderConfirmed(EventPayload):
    """Stock is reserved for every line: the order may ship. Its content is the order_placed before it
    (same key, same partition, read first)."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_confirmed.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str  # ours
    confirmed_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.order_id


CancelledBy = Literal["buyer", "seller", "platform", "operator", "system"]


class OrderCancelled(EventPayload):
    """The order is cancelled: its reservation is released, and a shipment not yet picked up is cancelled."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_cancelled.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str  # ours
    cancelled_at: UtcDatetime
    cancelled_by: CancelledBy
    # An open set: `buyer_request`, `out_of_stock`, `unpaid`, `platform_cancelled`, ...
    reason_code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    message: str = ""

    def aggregate_id(self) -> str:
        return self.order_id


class LivestreamScheduled(EventPayload):
    """A seller's livestream session: orders placed on its shop within the window (or tagged with its id
    by the platform) count for it. A later event with the same id replaces the schedule."""

    TYPE: ClassVar[str] = "vuonminh.orders.livestream_scheduled.v1"
    TOPIC: ClassVar[str] = Topic.LIVESTREAMS

    livestream_id: str
    seller_id: str
    channel: str  # a sales channel, e.g. `tiktok_shop`
    shop_id: str
    title: ShortText
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    featured_skus: tuple[Sku, ...] = ()

    def aggregate_id(self) -> str:
        return self.livestream_id
