"""catalog's tables and API shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AnyHttpUrl, StringConstraints
from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.catalog.domain import normalise_gtin
from vuonminh.shared.db import BigInt
from vuonminh.shared.events.catalog import MAX_STOCK, SellerKindV2
from vuonminh.shared.events.types import MAX_VND, Grams, Marketplace, ProvinceCode, ShortText, Sku, WardCode


class CatalogTable(SQLModel, registry=registry()):
    """Base of catalog's tables: their own metadata, so they live only in catalog's database."""


class ProvincialShop(CatalogTable, table=True):
    """One shop for many producers (the provincial-shop model), run by a coordinating seller."""

    __tablename__ = "provincial_shops"
    shop_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    province_code: str = Field(max_length=2)
    coordinator_seller_id: str | None = Field(default=None, max_length=64)
    created_at: datetime


class Seller(CatalogTable, table=True):
    __tablename__ = "sellers"
    seller_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    aggregates_others: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    province_code: str = Field(max_length=2)
    ward_code: str = Field(max_length=5, index=True)
    # Contact of a person: shown to the seller itself, officials and the operator, never on public pages.
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=20)
    provincial_shop_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime


class Product(CatalogTable, table=True):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("gtin", name="uq_products_gtin"),)
    sku: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(foreign_key="sellers.seller_id", index=True, max_length=64)
    name: str = Field(max_length=200)
    category: str = Field(default="khác", max_length=50, sa_column_kwargs={"server_default": "khác"})
    unit: str = Field(default="gói", max_length=20, sa_column_kwargs={"server_default": "gói"})
    unit_weight_g: int = Field(sa_type=BigInt)
    price_vnd: int | None = Field(default=None, sa_type=BigInt)
    gtin: str | None = Field(default=None, max_length=14)  # GTIN-14, zero-padded
    ocop_stars: int | None = None
    ocop_score: int | None = None
    ocop_certificate_no: str | None = Field(default=None, max_length=64)
    ocop_certificate_expires_on: date | None = None
    season_starts_on: date | None = None
    season_ends_on: date | None = None
    photo_urls: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default=text("'[]'"))
    )
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    version: int = Field(default=1, sa_column_kwargs={"server_default": text("1")})
    created_at: datetime
    updated_at: datetime | None = None


class StockLevel(CatalogTable, table=True):
    """Units of sale of one product: `available` to reserve, `reserved` held for orders not yet picked up."""

    __tablename__ = "stock_levels"
    sku: str = Field(primary_key=True, foreign_key="products.sku", max_length=64)
    available: int = Field(default=0, sa_type=BigInt)
    reserved: int = Field(default=0, sa_type=BigInt)
    updated_at: datetime


class StockMovement(CatalogTable, table=True):
    """The stock ledger: every change of a product's stock, in order, with why."""

    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_stock_movements_sku_id", "sku", "id"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    sku: str = Field(max_length=64)
    kind: str = Field(max_length=20)  # adjustment, reservation, release, shipment
    available_change: int = Field(sa_type=BigInt)
    reserved_change: int = Field(sa_type=BigInt)
    available_after: int = Field(sa_type=BigInt)
    reserved_after: int = Field(sa_type=BigInt)
    reason: str = Field(max_length=200)
    order_id: str | None = Field(default=None, max_length=64)
    shipment_id: str | None = Field(default=None, max_length=64)
    event_id: str | None = Field(default=None, max_length=64)
    at: datetime


class Reservation(CatalogTable, table=True):
    """Units of one SKU held for one order: held, then released (cancelled) or shipped (picked up)."""

    __tablename__ = "reservations"
    order_id: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(max_length=64)
    quantity: int = Field(sa_type=BigInt)
    status: str = Field(max_length=20)  # held, released, shipped
    reserved_at: datetime
    updated_at: datetime


class ReservationDecision(CatalogTable, table=True):
    """What catalog answered an order: a repeated order_placed for it gets the same answer."""

    __tablename__ = "reservation_decisions"
    order_id: str = Field(primary_key=True, max_length=64)
    outcome: str = Field(max_length=20)  # reserved, failed, released
    decided_at: datetime


class Listing(CatalogTable, table=True):
    """A product's ids on a marketplace."""

    __tablename__ = "listings"
    channel: str = Field(primary_key=True, max_length=20)
    platform_sku: str = Field(primary_key=True, max_length=64)
    platform_product_id: str = Field(max_length=64)
    sku: str = Field(foreign_key="products.sku", index=True, max_length=64)
    seller_sku: str | None = Field(default=None, max_length=64)
    active: bool = True
    published_at: datetime


class Lot(CatalogTable, table=True):
    __tablename__ = "lots"
    __table_args__ = (UniqueConstraint("gtin", "lot_code", name="uq_lots_gtin_lot_code"),)
    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(foreign_key="products.sku", index=True, max_length=64)
    gtin: str = Field(max_length=14)
    lot_code: str = Field(max_length=20)
    produced_on: date
    harvested_on: date | None = None
    best_before: date | None = None
    quantity: int = Field(sa_type=BigInt)
    # Who the lot came from: [{"seller_id"?, "household_name"?, "ward_code"?, "weight_g"}]. A household that
    # is not a registered seller is a private person: its name stays inside catalog.
    sources: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime


# --- API shapes ---------------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Gtin = Annotated[str, AfterValidator(normalise_gtin)]
# GS1 AI (10): up to 20 characters of GS1's URI-safe set; we keep to letters, digits and - . _
LotCode = Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9._-]+$")]
Unit = Literal["kg", "g", "bó", "cành", "chậu", "cây", "hộp", "gói", "túi", "chai", "lọ", "con", "quả"]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK)]


class ProvincialShopIn(SQLModel):
    shop_id: Id
    name: ShortText
    province_code: ProvinceCode
    coordinator_seller_id: str | None = Field(default=None, max_length=64)


class ProvincialShopOut(ProvincialShopIn):
    seller_ids: list[str]
    created_at: datetime


class SellerIn(SQLModel):
    seller_id: Id
    name: ShortText
    # `aggregator` is v1's name for a trader who sells other households' output (kept for old clients).
    kind: SellerKindV2 | Literal["aggregator"]
    aggregates_others: bool = False
    province_code: ProvinceCode
    ward_code: WardCode
    contact_name: ShortText | None = None
    contact_phone: str | None = Field(default=None, regex=r"^\+?[0-9 .-]{8,20}$")
    provincial_shop_id: str | None = Field(default=None, max_length=64)


class SellerOut(SQLModel):
    seller_id: str
    name: str
    kind: str
    aggregates_others: bool
    province_code: str
    ward_code: str
    ward_name: str
    province_name: str
    contact_name: str | None
    contact_phone: str | None
    provincial_shop_id: str | None
    created_at: datetime


class ProductIn(SQLModel):
    sku: Sku
    seller_id: str = Field(min_length=1, max_length=64)
    name: ShortText
    category: str = Field(default="khác", min_length=1, max_length=50)
    unit: Unit = "gói"
    unit_weight_g: Grams = Field(gt=0)
    price_vnd: int | None = Field(default=None, ge=0, le=MAX_VND)
    gtin: Gtin | None = None
    ocop_stars: int | None = Field(default=None, ge=3, le=5)
    ocop_score: int | None = Field(default=None, ge=0, le=100)
    ocop_certificate_no: str | None = Field(default=None, min_length=1, max_length=64)
    ocop_certificate_expires_on: date | None = None
    season_starts_on: date | None = None
    season_ends_on: date | None = None
    photo_urls: list[AnyHttpUrl] = Field(default_factory=list, max_length=10)
    # Units counted in when the product is created (a ledger entry); later changes go through /stock.
    initial_stock: Stock = 0


class ProductPatch(SQLModel):
    """An edit: `version` is the one the editor read; a stale one is refused (409)."""

    version: int = Field(ge=1)
    name: ShortText | None = None
    category: str | None = Field(default=None, min_length=1, max_length=50)
    unit: Unit | None = None
    unit_weight_g: Grams | None = Field(default=None, gt=0)
    price_vnd: int | None = Field(default=None, ge=0, le=MAX_VND)
    gtin: Gtin | None = None
    ocop_stars: int | None = Field(default=None, ge=3, le=5)
    ocop_score: int | None = Field(default=None, ge=0, le=100)
    ocop_certificate_no: str | None = Field(default=None, min_length=1, max_length=64)
    ocop_certificate_expires_on: date | None = None
    season_starts_on: date | None = None
    season_ends_on: date | None = None
    photo_urls: list[AnyHttpUrl] | None = Field(default=None, max_length=10)
    active: bool | None = None


class OcopOut(SQLModel):
    stars: int
    score: int | None
    certificate_no: str | None
    certificate_expires_on: date | None
    valid: bool  # false once the certificate has expired: the product is not shown as OCOP then


class ProductOut(SQLModel):
    sku: str
    seller_id: str
    name: str
    category: str
    unit: str
    unit_weight_g: int
    price_vnd: int | None
    gtin: str | None
    ocop_stars: int | None  # the stars shown: null when unrated or the certificate has expired
    ocop: OcopOut | None
    season_starts_on: date | None
    season_ends_on: date | None
    in_season: bool
    orderable: bool
    photo_urls: list[str]
    active: bool
    available: int
    reserved: int
    version: int
    created_at: datetime
    updated_at: datetime | None


class StockAdjustmentIn(SQLModel):
    # Stock is counted in whole units of sale (orders carry whole quantities), so a fraction is refused.
    change: int = Field(ge=-MAX_STOCK, le=MAX_STOCK)
    reason: ShortText


class StockMovementOut(SQLModel):
    id: int
    kind: str
    available_change: int
    reserved_change: int
    available_after: int
    reserved_after: int
    reason: str
    order_id: str | None
    shipment_id: str | None
    at: datetime


class StockOut(SQLModel):
    sku: str
    unit: str
    available: int
    reserved: int
    on_hand: int  # available + reserved: what the seller physically holds
    movements: list[StockMovementOut]
    next_after_id: int | None  # pass as `after_id` for the next page of the ledger


class ListingIn(SQLModel):
    channel: Marketplace
    platform_product_id: str = Field(min_length=1, max_length=64)
    platform_sku: str = Field(min_length=1, max_length=64)
    seller_sku: str | None = Field(default=None, min_length=1, max_length=64)
    active: bool = True


class ListingOut(ListingIn):
    sku: str
    published_at: datetime


class LotSourceIn(SQLModel):
    """One household the lot came from: a registered seller, or a named household that is not one."""

    seller_id: str | None = Field(default=None, min_length=1, max_length=64)
    household_name: ShortText | None = None
    ward_code: WardCode | None = None
    weight_g: int = Field(gt=0, le=10_000_000)


class LotIn(SQLModel):
    lot_code: LotCode
    produced_on: date
    harvested_on: date | None = None
    best_before: date | None = None
    quantity: int = Field(gt=0, le=MAX_STOCK)
    sources: list[LotSourceIn] = Field(default_factory=list, max_length=500)


class LotOut(SQLModel):
    sku: str
    gtin: str
    lot_code: str
    produced_on: date
    harvested_on: date | None
    best_before: date | None
    quantity: int
    sources: list[dict[str, Any]]
    digital_link: str
    created_at: datetime
