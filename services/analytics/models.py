"""analytics' projections (one row per fact, flags set by later events, so a recount is a query)
and API shapes. No buyer personal data is kept: names, phones and addresses never reach a table."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt


class AnalyticsTable(SQLModel, registry=registry()):
    """Base of analytics' tables: their own metadata, so they live only in its database."""


class SellerOrderFact(AnalyticsTable, table=True):
    """What one seller sold in one order: the unit every sales KPI adds up.

    A later event sets a flag and never deletes the row: `cancelled` (order cancelled or
    rejected) and `returned` (the seller's parcel came back) take it out of the sales totals.
    Flags commute, so the totals do not depend on the order in which topics are read."""

    __tablename__ = "seller_order_facts"
    __table_args__ = (
        Index("ix_seller_order_facts_province_day", "province_code", "day"),
        Index("ix_seller_order_facts_seller_day", "seller_id", "day"),
        Index("ix_seller_order_facts_livestream", "livestream_id"),
    )
    order_id: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(primary_key=True, max_length=64)
    ward_code: str = Field(max_length=5, index=True)
    province_code: str = Field(max_length=2)
    day: date = Field(index=True)  # the Vietnam calendar day the order was placed
    placed_at: datetime
    livestream_id: str | None = Field(default=None, max_length=100)
    gmv_vnd: int = Field(sa_type=BigInt)
    weight_g: int = Field(sa_type=BigInt)
    channel: str = Field(default="direct", max_length=20)
    shop_id: str = Field(default="", max_length=100)
    items: int = Field(default=0)
    confirmed_at: datetime | None = None
    cancelled: bool = Field(default=False)
    returned: bool = Field(default=False)


class OrderLineFact(AnalyticsTable, table=True):
    """One line of an order: per-product KPIs (kg of khoai sâm, a livestream's best sellers).
    Whether it counts follows its seller's SellerOrderFact."""

    __tablename__ = "order_line_facts"
    __table_args__ = (Index("ix_order_line_facts_ward_day", "ward_code", "day"),)
    order_id: str = Field(primary_key=True, max_length=64)
    line_no: int = Field(primary_key=True)
    seller_id: str = Field(max_length=64)
    sku: str = Field(max_length=64, index=True)
    product_name: str = Field(max_length=200)
    ward_code: str = Field(max_length=5)
    province_code: str = Field(max_length=2)
    day: date
    quantity: int
    gmv_vnd: int = Field(sa_type=BigInt)
    weight_g: int = Field(sa_type=BigInt)


class ShipmentFact(AnalyticsTable, table=True):
    """One parcel: dispatch, then each milestone's time as the carrier reports it."""

    __tablename__ = "shipment_facts"
    __table_args__ = (Index("ix_shipment_facts_order_seller", "order_id", "seller_id"),)
    shipment_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64)
    seller_id: str = Field(max_length=64)
    # Null until shipment_dispatched is read (a status may come first after a replay of one topic).
    ward_code: str | None = Field(default=None, max_length=5, index=True)
    carrier: str = Field(max_length=20)
    day: date | None = Field(default=None, index=True)  # the Vietnam day it was dispatched
    weight_g: int = Field(default=0, sa_type=BigInt)
    dispatched_at: datetime | None = None
    cod_amount_vnd: int = Field(default=0, sa_type=BigInt)
    status: str = Field(default="created", max_length=20)
    status_at: datetime | None = None  # occurred_at of the event that set `status`
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    returned_at: datetime | None = None
    shipping_fee_vnd: int | None = Field(default=None, sa_type=BigInt)
    cod_collected_vnd: int | None = Field(default=None, sa_type=BigInt)


class SellerRow(AnalyticsTable, table=True):
    """A seller as catalog registered it (a business, not a buyer)."""

    __tablename__ = "sellers"
    seller_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    province_code: str = Field(max_length=2)
    ward_code: str = Field(max_length=5, index=True)


class ProductRow(AnalyticsTable, table=True):
    __tablename__ = "products"
    sku: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    ocop_stars: int | None = None
    ocop_certificate_expires_on: date | None = None  # unknown: the stars are taken as current


class ListingRow(AnalyticsTable, table=True):
    """A product's listing on a marketplace; the latest event (by published_at) wins."""

    __tablename__ = "listings"
    sku: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=20)
    platform_sku: str = Field(primary_key=True, max_length=100)
    active: bool
    published_at: datetime


class LivestreamRow(AnalyticsTable, table=True):
    __tablename__ = "livestreams"
    livestream_id: str = Field(primary_key=True, max_length=100)
    seller_id: str = Field(max_length=64)
    channel: str = Field(max_length=20)
    shop_id: str = Field(max_length=100)
    title: str = Field(max_length=200)
    starts_at: datetime
    ends_at: datetime


class CommuneTarget(AnalyticsTable, table=True):
    """A commune's target of core sellers ("double the core sellers by end of 2026")."""

    __tablename__ = "commune_targets"
    ward_code: str = Field(primary_key=True, max_length=5)
    core_sellers_target: int
    due_on: date


# -- API shapes -----------------------------------------------------------------------------

Granularity = Literal["day", "week", "month"]


class DailyKpis(BaseModel):
    day: date
    orders: int
    gmv_vnd: int
    kg_sold: float


class SalesPoint(BaseModel):
    """Sales in one period; `period` is its first day (a Monday for weeks, the 1st for months)."""

    period: date
    orders: int
    items: int
    gmv_vnd: int
    kg_sold: float
    active_sellers: int


class SalesTotals(BaseModel):
    orders: int
    items: int
    gmv_vnd: int
    kg_sold: float
    tonnes_sold: float
    active_sellers: int
    cancelled_orders: int
    returned_orders: int


class CommuneKpis(BaseModel):
    ward_code: str
    ward_name: str
    province_code: str
    province_name: str
    from_: date = PydanticField(serialization_alias="from")
    to: date
    orders: int
    gmv_vnd: int
    kg_sold: float
    active_sellers: int
    shipments: int
    daily: list[DailyKpis]
    # Added with the dashboard; the fields above keep their meaning.
    items: int = 0
    tonnes_sold: float = 0.0
    cancelled_orders: int = 0
    returned_orders: int = 0
    granularity: Granularity = "day"
    series: list[SalesPoint] = []


class SellerKpis(BaseModel):
    seller_id: str
    seller_name: str
    ward_code: str
    province_code: str
    from_: date = PydanticField(serialization_alias="from")
    to: date
    granularity: Granularity
    totals: SalesTotals
    series: list[SalesPoint]
    top_products: list[ProductSales]


class ProductKpis(BaseModel):
    sku: str
    name: str
    seller_id: str
    ocop_stars: int | None
    from_: date = PydanticField(serialization_alias="from")
    to: date
    granularity: Granularity
    totals: SalesTotals
    series: list[SalesPoint]


class ProductSales(BaseModel):
    sku: str
    name: str
    orders: int
    items: int
    gmv_vnd: int
    kg_sold: float


class CommuneRank(BaseModel):
    rank: int
    ward_code: str
    ward_name: str
    orders: int
    items: int
    gmv_vnd: int
    kg_sold: float
    active_sellers: int


class ProvinceKpis(BaseModel):
    province_code: str
    province_name: str
    from_: date = PydanticField(serialization_alias="from")
    to: date
    granularity: Granularity
    totals: SalesTotals
    series: list[SalesPoint]
    communes: list[CommuneRank]


class CoreSeller(BaseModel):
    seller_id: str
    seller_name: str
    days_at_threshold: int
    orders_in_window: int


class CoreSellers(BaseModel):
    ward_code: str
    on: date
    min_orders_per_day: int
    window_days: int
    min_days: int
    core_sellers: int
    sellers: list[CoreSeller]
    target: int | None
    target_due_on: date | None
    progress: float | None  # core_sellers / target


class CoreSellerTargetIn(BaseModel):
    core_sellers_target: int = PydanticField(ge=1, le=100_000)
    due_on: date


class OcopShare(BaseModel):
    ward_code: str
    on: date
    ocop_products: int  # with a valid certificate on `on`
    online: int  # of those, with at least one active listing
    share: float | None
    offline_skus: list[str]


class ChannelShare(BaseModel):
    channel: str
    orders: int
    gmv_vnd: int
    share_of_orders: float


class ChannelMix(BaseModel):
    from_: date = PydanticField(serialization_alias="from")
    to: date
    channels: list[ChannelShare]


class Fulfilment(BaseModel):
    from_: date = PydanticField(serialization_alias="from")
    to: date
    shipments: int
    picked_up: int
    delivered: int
    returned: int
    hours_to_pickup_p50: float | None
    hours_to_pickup_p90: float | None
    hours_to_delivery_p50: float | None
    hours_to_delivery_p90: float | None
    delivery_success_rate: float | None  # delivered / (delivered + returned + lost)
    shipping_fee_vnd: int
    shipping_fee_share: float | None  # of the value of the orders shipped
    cod_outstanding_vnd: int  # COD of parcels still on their way


class LivestreamMinute(BaseModel):
    minute: datetime
    orders: int


class LivestreamKpis(BaseModel):
    livestream_id: str
    title: str
    seller_id: str
    channel: str
    starts_at: datetime | None
    ends_at: datetime | None
    live: bool
    orders: int
    gmv_vnd: int
    kg_sold: float
    minutes: float
    orders_per_minute: float
    peak_minute: datetime | None
    peak_minute_orders: int
    per_minute: list[LivestreamMinute]
    best_sellers: list[ProductSales]


SellerKpis.model_rebuild()
