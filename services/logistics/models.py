"""logistics' tables and API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt
from vuonminh.shared.privacy import BuyerOut


class LogisticsTable(SQLModel, registry=registry()):
    """Base of logistics' tables: their own metadata, so they live only in its database."""


class Shipment(LogisticsTable, table=True):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("order_id", "seller_id", name="uq_shipments_order_seller"),)
    id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(max_length=64, index=True)
    seller_id: str = Field(max_length=64)
    carrier: str = Field(max_length=20)
    status: str = Field(max_length=20)
    origin_province_code: str = Field(max_length=2)
    origin_ward_code: str = Field(max_length=5)
    destination_province_code: str = Field(max_length=2)
    destination_ward_code: str = Field(max_length=5)
    recipient_name: str
    recipient_phone: str
    destination_line: str
    weight_g: int = Field(sa_type=BigInt)
    cod_amount_vnd: int = Field(sa_type=BigInt)
    items: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime


class ShipmentOut(BaseModel):
    id: str
    order_id: str
    seller_id: str
    carrier: str
    status: str
    origin_province_code: str
    origin_ward_code: str
    destination_province_code: str
    destination_ward_code: str
    weight_g: int
    cod_amount_vnd: int
    items: list[dict[str, Any]]
    created_at: datetime
    # Masked unless the caller is the operator, the selling seller or the carrier delivering it.
    recipient: BuyerOut
