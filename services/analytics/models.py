"""analytics' fact tables (one row per counted fact, so a recount is a query) and API shapes."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt


class AnalyticsTable(SQLModel, registry=registry()):
    """Base of analytics' tables: their own metadata, so they live only in its database."""


class SellerOrderFact(AnalyticsTable, table=True):
    """What one seller sold in one order: the unit every sales KPI adds up."""

    __tablename__ = "seller_order_facts"
    order_id: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(primary_key=True, max_length=64)
    ward_code: str = Field(max_length=5, index=True)
    province_code: str = Field(max_length=2)
    day: date = Field(index=True)  # the Vietnam calendar day the order was placed
    placed_at: datetime
    livestream_id: str | None = Field(default=None, max_length=100)
    gmv_vnd: int = Field(sa_type=BigInt)
    weight_g: int = Field(sa_type=BigInt)


class ShipmentFact(AnalyticsTable, table=True):
    __tablename__ = "shipment_facts"
    shipment_id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64)
    seller_id: str = Field(max_length=64)
    ward_code: str = Field(max_length=5, index=True)
    carrier: str = Field(max_length=20)
    day: date = Field(index=True)
    weight_g: int = Field(sa_type=BigInt)


class DailyKpis(BaseModel):
    day: date
    orders: int
    gmv_vnd: int
    kg_sold: float


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
