"""orders' tables (its orders and its copy of the catalog) and API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.events.orders import Buyer, OrderItem, PaymentMethod, RejectionReason, SalesChannel
from vuonminh.shared.events.types import ShortText, UtcDatetime


class OrdersTable(SQLModel, registry=registry()):
    """Base of orders' tables: their own metadata, so they live only in orders' database."""


class Order(OrdersTable, table=True):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("channel", "shop_id", "external_order_id", name="uq_orders_shop_order"),)
    id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=20)
    shop_id: str = Field(max_length=100, index=True)
    external_order_id: str = Field(max_length=100)
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
    total_vnd: int
    total_weight_g: int
    rejection_reasons: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime


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
    unit_price_vnd: int
    unit_weight_g: int
    line_total_vnd: int
    line_weight_g: int


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
    unit_weight_g: int


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
    items: list[OrderItem] = PydanticField(min_length=1, max_length=200)
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


class OrderOut(BaseModel):
    id: str
    channel: SalesChannel
    shop_id: str
    order_id: str  # the shop's own id
    status: Literal["placed", "rejected"]
    placed_at: datetime
    received_at: datetime
    livestream_id: str | None
    payment_method: PaymentMethod
    buyer: Buyer
    lines: list[OrderLineOut]
    total_vnd: int
    total_weight_g: int
    rejection_reasons: list[RejectionReason]
