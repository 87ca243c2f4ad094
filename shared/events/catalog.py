"""Events published by catalog."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

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
    WardCode,
)

MAX_STOCK = 10_000_000  # units of one product a seller can hold or adjust at once

SellerKind = Literal["household", "cooperative", "aggregator", "enterprise"]
# v2: `trader` joins, and aggregating other households' output is a flag of any kind, not a kind.
SellerKindV2 = Literal["household", "trader", "cooperative", "enterprise"]


class SellerRegistered(EventPayload):
    TYPE: ClassVar[str] = "vuonminh.catalog.seller_registered.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_SELLERS

    seller_id: str
    name: ShortText
    kind: SellerKind
    province_code: ProvinceCode
    ward_code: WardCode

    def aggregate_id(self) -> str:
        return self.seller_id


class SellerRegisteredV2(EventPayload):
    """v2: the kinds are household, trader, cooperative, enterprise (v1's closed list had no `trader`);
    `aggregates_others` says the seller sells other households' output (v1's `aggregator`)."""

    TYPE: ClassVar[str] = "vuonminh.catalog.seller_registered.v2"
    TOPIC: ClassVar[str] = Topic.CATALOG_SELLERS

    seller_id: str
    name: ShortText
    kind: SellerKindV2
    aggregates_others: bool = False
    province_code: ProvinceCode
    ward_code: WardCode
    provincial_shop_id: str | None = None  # the provincial shop the seller sells through, if any

    def aggregate_id(self) -> str:
        return self.seller_id


class ProductListed(EventPayload):
    TYPE: ClassVar[str] = "vuonminh.catalog.product_listed.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_PRODUCTS

    sku: Sku
    seller_id: str
    name: ShortText
    unit_weight_g: Grams
    ocop_stars: int | None = Field(default=None, ge=1, le=5)
    # Added within v1 (optional): the last day the OCOP certificate is valid; an expired one stops
    # the product counting as OCOP. None: not known (the stars are taken as current).
    ocop_certificate_expires_on: date | None = None

    def aggregate_id(self) -> str:
        return self.sku


class StockAdjusted(EventPayload):
    """A seller changed a product's stock by hand (a harvest counted in, spoiled units written off).
    Reservations, releases and shipments change stock too; those are told by the saga's events."""

    TYPE: ClassVar[str] = "vuonminh.catalog.stock_adjusted.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_PRODUCTS

    sku: Sku
    seller_id: str
    change: int = Field(ge=-MAX_STOCK, le=MAX_STOCK)  # units of sale, + in, - out
    available: int = Field(ge=0)  # units free to reserve after the change
    reserved: int = Field(ge=0)  # units held for orders, unchanged by an adjustment
    reason: ShortText
    adjusted_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.sku


# The stock step of an order's saga: orders publishes order_placed; catalog answers with
# stock_reserved (every line reserved) or stock_reservation_failed (nothing reserved); orders then
# confirms or rejects the order. Cancellation releases a reservation; a picked-up shipment consumes it.


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ReservedLine(_Part):
    sku: Sku
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class StockReserved(EventPayload):
    """Every line of the order is reserved: the units are held for it until released or shipped."""

    TYPE: ClassVar[str] = "vuonminh.catalog.stock_reserved.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_RESERVATIONS

    order_id: str  # ours
    lines: tuple[ReservedLine, ...]
    reserved_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.order_id


class ReservationProblem(_Part):
    # An open set, so that a new reason is not a new version: `out_of_stock`, `not_orderable`
    # (out of season, withdrawn), ... A reader takes an unknown code as "refused" (the message says why).
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    message: str  # Vietnamese, shown to sellers
    sku: Sku
    requested: int = Field(ge=0)
    available: int = Field(ge=0)


class StockReservationFailed(EventPayload):
    """At least one line could not be reserved; nothing of the order is held."""

    TYPE: ClassVar[str] = "vuonminh.catalog.stock_reservation_failed.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_RESERVATIONS

    order_id: str  # ours
    problems: tuple[ReservationProblem, ...]
    failed_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.order_id


class ListingPublished(EventPayload):
    """A product's ids on a marketplace, so that orders can map a platform SKU to a catalog product.
    `active` false withdraws the listing (the latest event per listing wins)."""

    TYPE: ClassVar[str] = "vuonminh.catalog.listing_published.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_PRODUCTS

    sku: Sku  # the catalog product
    seller_id: str
    channel: Marketplace
    platform_product_id: str  # TikTok product_id, Shopee item_id, Lazada item_id
    platform_sku: str  # TikTok sku_id, Shopee model_id (or item_id), Lazada SkuId
    seller_sku: str | None = None  # the seller SKU the platform carries, when set
    active: bool = True
    published_at: UtcDatetime

    def aggregate_id(self) -> str:
        return self.sku
