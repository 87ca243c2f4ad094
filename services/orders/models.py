"""orders' tables (its orders and its copy of the catalog) and API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt
from vuonminh.shared.events.orders import Buyer, OrderItem, PaymentMethod, RejectionReasonV2, SalesChannelV2
from vuonminh.shared.events.types import MAX_ORDER_ITEMS, ShortText, Sku, UtcDatetime
from vuonminh.shared.privacy import BuyerOut

OrderStatus = Literal[
    "awaiting_payment",
    "awaiting_catalog",
    "placed",
    "confirmed",
    "rejected",
    "cancelled",
    "shipped",
    "delivered",
    "returned",
]


class OrdersTable(SQLModel, registry=registry()):
    """Base of orders' tables: their own metadata, so they live only in orders' database."""


class Order(OrdersTable, table=True):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("channel", "shop_id", "external_order_id", name="uq_orders_shop_order"),)
    id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=20)
    shop_id: str = Field(max_length=100, index=True)
    external_order_id: str = Field(max_length=100)
    # awaiting_catalog (parked until a SKU or seller reaches orders' copy of the catalog),
    # placed (final) or rejected (a new version from the shop may still replace it).
    status: str = Field(max_length=20)
    placed_at: datetime
    received_at: datetime
    livestream_id: str | None = Field(default=None, max_length=100)
    payment_method: str = Field(max_length=20)
    buyer_name: str
    buyer_phone: str
    buyer_province_code: str = Field(max_length=2)
    buyer_ward_code: str = Field(max_length=5)
    buyer_address_line: str
    total_vnd: int = Field(sa_type=BigInt)
    total_weight_g: int = Field(sa_type=BigInt)
    rejection_reasons: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    # The items as the shop sent them: what a parked order is decided from, and what a later
    # version of the order is compared with.
    items: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default=text("'[]'"))
    )
    # Since when the order waits for the catalog (null unless awaiting_catalog).
    awaiting_since: datetime | None = None
    # The flow of the order's current version: the ce_id of the order_received it came from.
    correlation_id: str | None = Field(default=None, max_length=64)
    # Versions of the order the shop sent after it was placed, with other content: kept, not applied.
    conflicts: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default=text("'[]'"))
    )
    # Marketplace orders: the platform's last applied status (as it spells it, and mapped), and its time.
    platform_status: str | None = Field(default=None, max_length=40)
    platform_state: str | None = Field(default=None, max_length=20)
    platform_status_at: datetime | None = None
    buyer_legacy_district: str | None = Field(default=None, max_length=100)
    status_changed_at: datetime | None = Field(default=None, index=True)


class OrderStatusEntry(OrdersTable, table=True):
    """An order's history: every status it was told about, in the order told, applied or not (a stale
    platform status is kept here and moves nothing)."""

    __tablename__ = "order_status_history"
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=64)
    status: str = Field(max_length=20)  # our status after it (the same when not applied)
    source: str = Field(max_length=20)  # intake | platform | catalog | logistics | sweep
    platform_status: str | None = Field(default=None, max_length=40)
    occurred_at: datetime
    recorded_at: datetime
    applied: bool = True
    note: str | None = None


class PlatformListing(OrdersTable, table=True):
    """orders' copy of catalog's listings: a platform SKU id or seller SKU on a channel -> catalog SKU."""

    __tablename__ = "platform_listings"
    channel: str = Field(primary_key=True, max_length=20)
    kind: str = Field(primary_key=True, max_length=12)  # platform_sku | seller_sku
    ref: str = Field(primary_key=True, max_length=100)
    sku: str = Field(max_length=64)
    seller_id: str = Field(max_length=64)
    active: bool = True


class OrderLineRow(OrdersTable, table=True):
    __tablename__ = "order_lines"
    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=64)
    line_no: int = Field(primary_key=True)
    sku: str = Field(max_length=64)
    product_name: str
    seller_id: str = Field(max_length=64)
    seller_province_code: str = Field(max_length=2)
    seller_ward_code: str = Field(max_length=5)
    quantity: int
    unit_price_vnd: int = Field(sa_type=BigInt)
    unit_weight_g: int = Field(sa_type=BigInt)
    line_total_vnd: int = Field(sa_type=BigInt)
    line_weight_g: int = Field(sa_type=BigInt)


class OrderCatalogWait(OrdersTable, table=True):
    """What a parked order waits for: one row per missing SKU or seller."""

    __tablename__ = "order_catalog_waits"
    __table_args__ = (Index("ix_order_catalog_waits_ref", "kind", "ref"),)
    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=10)  # "sku" or "seller"
    ref: str = Field(primary_key=True, max_length=64)


class Shop(OrdersTable, table=True):
    """A shop allowed to post orders, with the secrets its webhooks are signed with.

    Secrets are stored encrypted (Fernet, VUONMINH_SECRETS_KEY); two may be active at once
    so that a shop can move to a new secret without a gap.
    """

    __tablename__ = "shops"
    channel: str = Field(primary_key=True, max_length=20)
    shop_id: str = Field(primary_key=True, max_length=100)
    # The seller or cooperative the shop belongs to, when known.
    seller_id: str | None = Field(default=None, max_length=64)
    secret_encrypted: str | None = Field(default=None, sa_type=Text)
    # The secret before the last rotation, still accepted until revoked.
    previous_secret_encrypted: str | None = Field(default=None, sa_type=Text)
    created_at: datetime
    rotated_at: datetime | None = None
    # Marketplace shops: the Open API tokens (encrypted like the secrets) and when they expire.
    access_token_encrypted: str | None = Field(default=None, sa_type=Text)
    refresh_token_encrypted: str | None = Field(default=None, sa_type=Text)
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    shop_cipher: str | None = Field(default=None, max_length=200)  # TikTok Shop


class Livestream(OrdersTable, table=True):
    """A seller's livestream session: orders placed on its shop within the window count for it."""

    __tablename__ = "livestreams"
    __table_args__ = (Index("ix_livestreams_shop_window", "channel", "shop_id", "starts_at"),)
    id: str = Field(primary_key=True, max_length=100)
    seller_id: str = Field(max_length=64)
    channel: str = Field(max_length=20)
    shop_id: str = Field(max_length=100)
    title: str
    starts_at: datetime
    ends_at: datetime
    featured_skus: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime


class KnownSeller(OrdersTable, table=True):
    """orders' copy of catalog's sellers, kept from catalog's events."""

    __tablename__ = "catalog_sellers"
    seller_id: str = Field(primary_key=True, max_length=64)
    name: str
    province_code: str = Field(max_length=2)
    ward_code: str = Field(max_length=5)


class KnownProduct(OrdersTable, table=True):
    """orders' copy of catalog's products, kept from catalog's events."""

    __tablename__ = "catalog_products"
    sku: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(max_length=64)
    name: str
    unit_weight_g: int = Field(sa_type=BigInt)


# -- the direct channel's webhook body -------------------------------------------------------------
class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: PaymentMethod


class DirectOrderWebhook(BaseModel):
    """POST /v1/webhooks/direct body: an order from a shop that sells directly."""

    model_config = ConfigDict(extra="forbid")
    shop_id: ShortText = PydanticField(max_length=100)
    order_id: ShortText = PydanticField(max_length=100)
    placed_at: UtcDatetime
    livestream_id: ShortText | None = PydanticField(default=None, max_length=100)
    buyer: Buyer
    items: list[OrderItem] = PydanticField(min_length=1, max_length=MAX_ORDER_ITEMS)
    payment: Payment


# -- API output -------------------------------------------------------------------------------------
class OrderLineOut(BaseModel):
    sku: str
    product_name: str
    seller_id: str
    seller_ward_code: str
    quantity: int
    unit_price_vnd: int
    unit_weight_g: int
    line_total_vnd: int
    line_weight_g: int


class AwaitingCatalogOut(BaseModel):
    since: datetime
    skus: list[str]  # SKUs orders' copy of the catalog does not have yet
    seller_ids: list[str]  # sellers of known SKUs that it does not have yet


class OrderConflictOut(BaseModel):
    """A version of a placed order with other content: recorded, not applied."""

    event_id: str
    received_at: datetime
    differs: list[str]  # the fields whose values differ from the placed order's, e.g. items[0].quantity


class FulfilmentOut(BaseModel):
    """One seller's part of an order: what logistics ships as one parcel (the provincial-shop model)."""

    seller_id: str
    seller_ward_code: str
    skus: list[str]
    total_vnd: int
    weight_g: int


class StatusEntryOut(BaseModel):
    status: str  # ours after the change (unchanged when not applied)
    source: str  # intake | platform | catalog | logistics
    platform_status: str | None
    occurred_at: datetime
    recorded_at: datetime
    applied: bool  # false: a stale or late status, kept but moving nothing
    note: str | None


class OrderOut(BaseModel):
    id: str
    channel: SalesChannelV2
    shop_id: str
    order_id: str  # the shop's own id
    status: OrderStatus
    placed_at: datetime
    received_at: datetime
    livestream_id: str | None
    payment_method: PaymentMethod
    platform_status: str | None = None  # marketplace orders: the platform's last applied status, as it spells it
    buyer: BuyerOut  # masked unless the caller is the operator or the selling seller
    buyer_legacy_district: str | None = None  # the pre-2025 district, when a platform gave it
    lines: list[OrderLineOut]
    fulfilments: list[FulfilmentOut] = []  # one per seller of the (visible) lines
    total_vnd: int
    total_weight_g: int
    rejection_reasons: list[RejectionReasonV2]
    awaiting_catalog: AwaitingCatalogOut | None = None
    conflicts: list[OrderConflictOut] = []
    status_history: list[StatusEntryOut] | None = None  # on GET /v1/orders/{id}


# -- operator and seller input ------------------------------------------------------------------------------
class ShopIn(BaseModel):
    """POST /v1/shops: a direct shop (a webhook secret is made and shown once) or a marketplace shop
    connected with its Open API tokens (stored encrypted, never shown again)."""

    model_config = ConfigDict(extra="forbid")
    channel: SalesChannelV2
    shop_id: ShortText = PydanticField(max_length=100)  # the platform's shop id (Lazada: seller id)
    seller_id: ShortText | None = PydanticField(default=None, max_length=64)
    access_token: str | None = PydanticField(default=None, min_length=1, max_length=4000)
    refresh_token: str | None = PydanticField(default=None, min_length=1, max_length=4000)
    access_expires_at: UtcDatetime | None = None
    refresh_expires_at: UtcDatetime | None = None
    shop_cipher: str | None = PydanticField(default=None, max_length=200)  # TikTok Shop


class ShopOut(BaseModel):
    channel: str
    shop_id: str
    seller_id: str | None
    created: bool
    webhook_secret: str | None = None  # direct shops: shown this once
    access_expires_at: datetime | None = None


class LivestreamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    livestream_id: ShortText = PydanticField(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    seller_id: ShortText = PydanticField(max_length=64)
    channel: SalesChannelV2
    shop_id: ShortText = PydanticField(max_length=100)
    title: ShortText
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    featured_skus: list[Sku] = PydanticField(default_factory=list, max_length=200)


class LivestreamOut(BaseModel):
    livestream_id: str
    seller_id: str
    channel: str
    shop_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    featured_skus: list[str]
    orders_counted: int  # orders already placed in its window on its shop, now tagged with it
