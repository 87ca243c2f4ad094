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
    Marketplace,
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


# -- the marketplaces (v2 of the order events: the channel list widened) ---------------------------------
# Widening a closed list is a breaking change for readers of the old type, so each order event that
# names a channel has a new version. Direct orders keep their v1 types (their readers are unchanged);
# marketplace orders use these. A v2 class accepts every v1 payload, so one handler reading
# `data_as(OrderPlacedV2)` serves both types.
SalesChannelV2 = Literal["direct", "tiktok_shop", "shopee", "lazada"]
# The order's state as a platform reports it, one map per platform onto these values.
PlatformOrderStatus = Literal["unpaid", "to_ship", "shipped", "delivered", "cancelled", "returned"]


class PlatformOrderNotified(EventPayload):
    """A platform's webhook said an order changed (its id and status, not the order), verified and
    deduplicated on the platform's identity; orders fetches the order from the platform next."""

    TYPE: ClassVar[str] = "vuonminh.orders.platform_order_notified.v1"
    TOPIC: ClassVar[str] = Topic.ORDER_NOTIFICATIONS

    channel: Marketplace
    shop_id: str  # the platform's shop id (Lazada: seller id)
    order_id: str  # the platform's order id
    platform_status: str | None = None  # as the webhook spells it, when it carries one
    status_at: UtcDatetime  # the platform's update time
    notification_id: str  # the platform identity the webhook is deduplicated on
    received_at: UtcDatetime
    attempts: int = Field(default=0, ge=0)  # failed fetches so far (on the retry topic)
    last_error: str | None = None
    retry_at: UtcDatetime | None = None  # on the retry topic: not fetched again before this

    def aggregate_id(self) -> str:
        return order_key(self.channel, self.shop_id, self.order_id)


class BuyerAddressV2(_Part):
    """A platform's address, normalised: 2025 codes when the names resolve, the legacy district kept."""

    province_code: ProvinceCode | None = None
    ward_code: WardCode | None = None
    legacy_district: str | None = None
    line: ShortText


class BuyerV2(_Part):
    name: ShortText
    phone: str = Field(min_length=1, max_length=40)  # platforms mask it (e.g. `(+84)90****678`)
    address: BuyerAddressV2


class PlatformItem(_Part):
    """One line of a platform order, the per-unit lines folded (quantity)."""

    sku: str = Field(min_length=1, max_length=100)  # the seller SKU, else the platform's SKU id
    platform_sku_id: str | None = None
    platform_product_id: str | None = None
    name: str | None = None
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price_vnd: Vnd


class OrderReceivedV2(EventPayload):
    """An order as a platform's Open API answered it, normalised (v2: the channel list widened, the
    platform's status, SKUs still as the platform names them). Direct orders stay `order_received.v1`."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_received.v2"
    TOPIC: ClassVar[str] = Topic.ORDERS_INTAKE

    channel: SalesChannelV2
    shop_id: str
    order_id: str  # the platform's own id
    placed_at: UtcDatetime
    livestream_id: str | None = None
    buyer: BuyerV2 | None = None  # platforms hide the address until the order is paid
    items: tuple[PlatformItem, ...]
    payment_method: PaymentMethod
    total_vnd: Vnd  # what the buyer pays, as the platform says
    status: PlatformOrderStatus
    platform_status: str
    status_at: UtcDatetime
    notification_id: str | None = None
    received_at: UtcDatetime

    def aggregate_id(self) -> str:
        return order_key(self.channel, self.shop_id, self.order_id)


class PlacedBuyer(_Part):
    """The buyer of a placed order: 2025 codes resolved; the phone as the platform gives it (masked)."""

    name: ShortText
    phone: str = Field(min_length=1, max_length=40)
    address: BuyerAddress


class OrderPlacedV2(OrderPlaced):
    """v2: `channel` also names the marketplaces; the buyer's phone may be masked by the platform and
    the legacy district is kept when the platform gave one. Published for marketplace orders (direct
    ones stay v1); a v1 payload reads as v2."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_placed.v2"
    TOPIC: ClassVar[str] = Topic.ORDERS

    channel: SalesChannelV2  # type: ignore[assignment]
    buyer: PlacedBuyer  # type: ignore[assignment]
    buyer_legacy_district: str | None = None


class OrderRejectedV3(OrderRejectedV2):
    """v3: `channel` also names the marketplaces. Published for marketplace orders (direct ones stay v2)."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_rejected.v3"
    TOPIC: ClassVar[str] = Topic.ORDERS

    channel: SalesChannelV2  # type: ignore[assignment]


OrderLifecycleStatus = Literal[
    "awaiting_payment", "placed", "confirmed", "shipped", "delivered", "returned", "cancelled", "rejected"
]


class OrderStatusChanged(EventPayload):
    """The order moved forward in its life after it was placed: shipped, delivered, returned (or
    awaiting payment before it), from a platform's status or from logistics' shipments. Placement,
    confirmation, rejection and cancellation have their own events."""

    TYPE: ClassVar[str] = "vuonminh.orders.order_status_changed.v1"
    TOPIC: ClassVar[str] = Topic.ORDERS

    order_id: str  # ours
    status: OrderLifecycleStatus
    previous_status: str
    source: Literal["platform", "logistics", "operator"]
    platform_status: str | None = None
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.order_id
