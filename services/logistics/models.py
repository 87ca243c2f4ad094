"""logistics' tables and API shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from vuonminh.shared.db import BigInt
from vuonminh.shared.events import ShipmentStatusChanged
from vuonminh.shared.events.types import UtcDatetime
from vuonminh.shared.privacy import BuyerOut


class LogisticsTable(SQLModel, registry=registry()):
    """Base of logistics' tables: their own metadata, so they live only in its database."""


class AwaitingConfirmation(LogisticsTable, table=True):
    """A placed order's content, kept until orders confirms it (stock reserved) or cancels it.

    Logistics ships only confirmed orders; `order_confirmed` carries only the id, and the
    `order_placed` before it on the same partition carries what to ship."""

    __tablename__ = "awaiting_confirmation"

    order_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=200)
    payload: str  # the order_placed payload as published (JSON)
    status: str = Field(max_length=20)  # awaiting | shipped | cancelled
    received_at: datetime


class Shipment(LogisticsTable, table=True):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("order_id", "seller_id", name="uq_shipments_order_seller"),
        # The carrier choice counts each carrier's pickups of the day at a commune.
        Index("ix_shipments_origin_ward_created", "origin_ward_code", "created_at"),
    )
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
    # -- with the carrier ------------------------------------------------------------------------------
    reference: str | None = Field(default=None, max_length=64, index=True)  # ours, sent in the carrier's create-order
    tracking_code: str | None = Field(default=None, max_length=64, index=True)  # the carrier's, from a callback
    status_at: datetime | None = None  # when the carrier says the current state began
    shipping_fee_vnd: int | None = Field(default=None, sa_type=BigInt)  # the carrier's fee, once it says it
    cod_collected_vnd: int = Field(
        default=0, sa_type=BigInt, sa_column_kwargs={"server_default": "0"}
    )  # cash the carrier collected on delivery
    cod_remitted_vnd: int = Field(
        default=0, sa_type=BigInt, sa_column_kwargs={"server_default": "0"}
    )  # of that, paid over to the seller's account
    cod_remitted_at: datetime | None = None
    # -- the carrier choice (policy.py) ----------------------------------------------------------------
    quoted_fee_vnd: int | None = Field(default=None, sa_type=BigInt)  # the winner's fee from the fee table
    choice: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # candidates, why
    pickup_id: str | None = Field(default=None, max_length=64, index=True)  # the first-mile pickup it is in

    def move_to(self, status: str, *, occurred_at: datetime, recorded_at: datetime) -> ShipmentStatusChanged:
        """Moves the shipment and returns the event that says so (the caller publishes it)."""
        previous, self.status, self.status_at = self.status, status, occurred_at
        return ShipmentStatusChanged(
            shipment_id=self.id,
            order_id=self.order_id,
            seller_id=self.seller_id,
            carrier=self.carrier,  # type: ignore[arg-type]
            status=status,  # type: ignore[arg-type]
            previous_status=previous,  # type: ignore[arg-type]
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            shipping_fee_vnd=self.shipping_fee_vnd,
            cod_collected_vnd=self.cod_collected_vnd if status == "delivered" else None,
        )


class Courier(LogisticsTable, table=True):
    """A carrier's first-mile courier (or a commune collection point) and the communes it covers."""

    __tablename__ = "couriers"
    id: str = Field(primary_key=True, max_length=64)
    name: str
    carrier: str = Field(max_length=20, index=True)
    ward_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pickups_per_window: int
    available: bool = True
    unavailable_reason: str | None = None
    updated_at: datetime


class Pickup(LogisticsTable, table=True):
    """One trip: a seller's parcels for one carrier in one window, collected by one courier."""

    __tablename__ = "pickups"
    __table_args__ = (Index("ix_pickups_courier_window", "courier_id", "window_date", "window"),)
    id: str = Field(primary_key=True, max_length=64)
    seller_id: str = Field(max_length=64, index=True)
    carrier: str = Field(max_length=20)
    ward_code: str = Field(max_length=5)
    window_date: date
    window: str = Field(max_length=10)  # morning | afternoon
    courier_id: str | None = Field(default=None, max_length=64)
    parcels: int
    status: str = Field(max_length=20)  # open | cancelled
    created_at: datetime
    updated_at: datetime


class CourierIn(BaseModel):
    model_config = {"extra": "forbid"}
    id: str = PydanticField(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = PydanticField(min_length=1, max_length=200)
    carrier: Literal["ghn", "ghtk", "viettel_post", "vnpost"]
    ward_codes: list[str] = PydanticField(min_length=1, max_length=200)
    pickups_per_window: int = PydanticField(ge=1, le=500)


class AvailabilityIn(BaseModel):
    model_config = {"extra": "forbid"}
    available: bool
    reason: str | None = PydanticField(default=None, max_length=500)


class CourierOut(BaseModel):
    id: str
    name: str
    carrier: str
    ward_codes: list[str]
    pickups_per_window: int
    available: bool
    unavailable_reason: str | None


class PickupOut(BaseModel):
    id: str
    seller_id: str
    carrier: str
    ward_code: str
    window_date: date
    window: str
    courier_id: str | None
    parcels: int
    status: str


class AvailabilityOut(BaseModel):
    courier: CourierOut
    reassigned: dict[str, str | None]  # pickup id -> its new courier (None: nobody had room; it waits)


class SellerCarrierPreference(LogisticsTable, table=True):
    """The carrier a seller prefers: chosen whenever it can take the parcel."""

    __tablename__ = "seller_carrier_preferences"
    seller_id: str = Field(primary_key=True, max_length=64)
    carrier: str = Field(max_length=20)
    updated_at: datetime


class CarrierPreferenceIn(BaseModel):
    model_config = {"extra": "forbid"}
    carrier: Literal["ghn", "ghtk", "viettel_post", "vnpost"] | None  # None: no preference


class CarrierPreferenceOut(BaseModel):
    seller_id: str
    carrier: str | None


class CarrierCallbackRecord(LogisticsTable, table=True):
    """Every callback a carrier posted, as it came, with what became of it: kept for inspection
    (refused ones too) and as the dedupe memory (one applied row per carrier report)."""

    __tablename__ = "carrier_callbacks"
    __table_args__ = (UniqueConstraint("carrier", "dedupe_key", name="uq_carrier_callbacks_dedupe"),)
    id: int | None = Field(default=None, primary_key=True)
    carrier: str = Field(max_length=20, index=True)
    received_at: datetime = Field(index=True)
    outcome: str = Field(
        max_length=20
    )  # applied | duplicate | stale | recorded | refused_auth | malformed | unknown_shipment
    detail: str | None = None  # why, for anything but applied
    # Set for every callback that was read; NULL for refused and malformed ones (never deduplicated).
    dedupe_key: str | None = Field(default=None, max_length=200)
    shipment_id: str | None = Field(default=None, max_length=64, index=True)
    raw_status: str | None = Field(default=None, max_length=40)
    status: str | None = Field(default=None, max_length=20)
    occurred_at: datetime | None = None
    content_type: str | None = Field(default=None, max_length=100)
    query: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    body: str  # the raw body (UTF-8, or its repr when it is not), at most the body cap of the route


class CodRemittance(LogisticsTable, table=True):
    """Cash a carrier paid over to a seller for delivered COD shipments (recorded by the operator from
    the carrier's statement, or by GHTK's "reconciled" callback)."""

    __tablename__ = "cod_remittances"
    id: str = Field(primary_key=True, max_length=64)
    carrier: str = Field(max_length=20)
    seller_id: str = Field(max_length=64, index=True)
    amount_vnd: int = Field(sa_type=BigInt)
    shipment_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    remitted_at: datetime
    recorded_at: datetime


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
    reference: str | None
    tracking_code: str | None
    status_at: datetime | None
    shipping_fee_vnd: int | None
    cod_collected_vnd: int
    cod_remitted_vnd: int
    quoted_fee_vnd: int | None
    pickup_id: str | None
    choice: dict[str, Any] | None  # every candidate carrier, its fee or why it could not, and why the winner won
    # Masked unless the caller is the operator, the selling seller or the carrier delivering it.
    recipient: BuyerOut


class CodLine(BaseModel):
    """One seller's cash on delivery with one carrier over a period."""

    seller_id: str
    carrier: str
    shipments: int
    delivered: int
    cod_to_collect_vnd: int  # COD of the period's shipments (cancelled ones left out)
    cod_collected_vnd: int  # what the carrier says it collected
    cod_remitted_vnd: int  # what it paid over
    owed_to_seller_vnd: int  # collected and not yet paid over: what the carrier owes the seller
    shipping_fees_vnd: int  # the carriers' fees, as they reported them


class CodReport(BaseModel):
    from_: date = PydanticField(alias="from")
    to: date
    lines: list[CodLine]
    totals: CodLine | None  # the lines summed (seller_id and carrier "*"); None without lines

    model_config = {"populate_by_name": True}


class RemittanceIn(BaseModel):
    model_config = {"extra": "forbid"}
    carrier: Literal["ghn", "ghtk", "viettel_post", "vnpost"]
    seller_id: str = PydanticField(min_length=1, max_length=64)
    amount_vnd: int = PydanticField(gt=0, le=10**12)
    shipment_ids: list[str] = PydanticField(min_length=1, max_length=5000)
    remitted_at: UtcDatetime


class RemittanceOut(BaseModel):
    id: str
    carrier: str
    seller_id: str
    amount_vnd: int
    shipment_ids: list[str]
    remitted_at: datetime
    recorded_at: datetime


class CallbackOut(BaseModel):
    id: int
    carrier: str
    received_at: datetime
    outcome: str
    detail: str | None
    shipment_id: str | None
    raw_status: str | None
    status: str | None
    occurred_at: datetime | None
    content_type: str | None
    query: dict[str, Any]
    body: str


class PartnerEndpoint(LogisticsTable, table=True):
    """A carrier partner without Kafka: its dispatch requests are POSTed to `url`, signed."""

    __tablename__ = "partner_endpoints"
    id: str = Field(primary_key=True, max_length=64)
    carrier: str = Field(max_length=20, index=True)
    url: str = Field(max_length=500)
    secret_encrypted: str  # the whsec_ signing secret, encrypted with VUONMINH_SECRETS_KEY
    active: bool = True
    created_at: datetime


class PartnerDelivery(LogisticsTable, table=True):
    """One dispatch request to one endpoint, and its delivery so far (the delivery log)."""

    __tablename__ = "partner_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_partner_deliveries_event"),
        Index("ix_partner_deliveries_due", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: str = Field(max_length=64)
    carrier: str = Field(max_length=20)
    event_id: str = Field(max_length=64)  # the webhook-id: a partner drops a delivery it has seen
    shipment_id: str = Field(max_length=64, index=True)
    body: str  # the event as JSON, the bytes that are signed
    status: str = Field(max_length=20)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None


class PartnerEndpointIn(BaseModel):
    model_config = {"extra": "forbid"}
    id: str = PydanticField(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    carrier: Literal["ghn", "ghtk", "viettel_post", "vnpost"]
    url: str = PydanticField(min_length=8, max_length=500, pattern=r"^https?://\S+$")


class PartnerEndpointOut(BaseModel):
    id: str
    carrier: str
    url: str
    active: bool
    created_at: datetime
    signing_secret: str | None = None  # shown once, when the endpoint is made


class PartnerDeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    carrier: str
    event_id: str
    shipment_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class HandOverIn(BaseModel):
    model_config = {"extra": "forbid"}
    carrier: Literal["ghn", "ghtk", "viettel_post", "vnpost"]
    note: str = PydanticField(min_length=1, max_length=500, description="what was arranged, kept on the shipment")
