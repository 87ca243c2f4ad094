"""catalog's tables and API shapes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt
from vuonminh.shared.events.catalog import SellerKind
from vuonminh.shared.events.types import Grams, ProvinceCode, ShortText, Sku, WardCode


class CatalogTable(SQLModel, registry=registry()):
    """Base of catalog's tables: their own metadata, so they live only in catalog's database."""


class Seller(CatalogTable, table=True):
    __tablename__ = "sellers"
    seller_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    province_code: str = Field(max_length=2)
    ward_code: str = Field(max_length=5, index=True)
    created_at: datetime


class Product(CatalogTable, table=True):
    __tablename__ = "products"
    sku: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(foreign_key="sellers.seller_id", index=True, max_length=64)
    name: str = Field(max_length=200)
    unit_weight_g: int = Field(sa_type=BigInt)
    ocop_stars: int | None = None
    created_at: datetime


class SellerIn(SQLModel):
    seller_id: str = Field(min_length=1, max_length=64, regex=r"^[A-Za-z0-9._-]+$")
    name: ShortText
    kind: SellerKind
    province_code: ProvinceCode
    ward_code: WardCode


class SellerOut(SellerIn):
    ward_name: str
    province_name: str
    created_at: datetime


class ProductIn(SQLModel):
    sku: Sku
    seller_id: str = Field(min_length=1, max_length=64)
    name: ShortText
    unit_weight_g: Grams = Field(gt=0)
    ocop_stars: int | None = Field(default=None, ge=1, le=5)


class ProductOut(ProductIn):
    created_at: datetime
