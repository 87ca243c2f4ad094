"""Events published by catalog."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vuonminh.shared.events.base import EventPayload
from vuonminh.shared.events.topics import Topic
from vuonminh.shared.events.types import Grams, ProvinceCode, ShortText, Sku, WardCode

SellerKind = Literal["household", "cooperative", "aggregator", "enterprise"]


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


class ProductListed(EventPayload):
    TYPE: ClassVar[str] = "vuonminh.catalog.product_listed.v1"
    TOPIC: ClassVar[str] = Topic.CATALOG_PRODUCTS

    sku: Sku
    seller_id: str
    name: ShortText
    unit_weight_g: Grams
    ocop_stars: int | None = Field(default=None, ge=1, le=5)

    def aggregate_id(self) -> str:
        return self.sku
