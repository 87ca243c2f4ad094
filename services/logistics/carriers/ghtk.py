"""GHTK (Giao Hàng Tiết Kiệm): form-encoded callbacks carrying our shared secret as `?hash=`, numeric
status ids, weights in kg, and `/services/shipment/order?ver=1.5`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from vuonminh.logistics.carriers.base import (
    CallbackMalformed,
    CallbackRequest,
    CarrierCallback,
    Parcel,
    as_code,
    as_int,
    plain_body,
    required,
    same_secret,
)
from vuonminh.shared.events.logistics import ShipmentStatus

STATUSES: dict[int, ShipmentStatus | None] = {
    -1: "cancelled",
    1: "created",  # not yet received by GHTK
    2: "created",  # received
    12: "pickup_assigned",  # picking up
    3: "picked_up",  # picked, in the warehouse
    4: "out_for_delivery",
    5: "delivered",
    9: "delivery_failed",
    20: "returning",
    21: "returned",
    # Reported, kept, moving nothing: reconciliation (6, 11), delays and failed pickups (7, 8, 10),
    # compensation (13), and the shipper's own reports.
    6: None,
    7: None,
    8: None,
    10: None,
    11: None,
    13: None,
    45: None,
    49: None,
    123: None,
    127: None,
    128: None,
    410: None,
}
RECONCILED = 6  # GHTK paid the collected COD over to the shop


class Ghtk:
    name = "ghtk"
    display_name = "GHTK"
    secret_env = "GHTK_CALLBACK_HASH"

    def authenticate(self, request: CallbackRequest, secret: str) -> bool:
        return same_secret(request.query.get("hash"), secret)

    def redact(self, body: bytes) -> str:
        return plain_body(body)  # the secret travels in the URL or a header, never in the body

    def parse_callback(self, request: CallbackRequest) -> CarrierCallback:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            raise CallbackMalformed("GHTK posts application/x-www-form-urlencoded")
        form = {name: values[-1] for name, values in parse_qs(request.text(), keep_blank_values=True).items()}
        status_id = as_code(required(form, "status_id"), "status_id")
        if status_id not in STATUSES:
            raise CallbackMalformed(f"status_id: unknown GHTK status {status_id}")
        label_id = str(required(form, "label_id"))
        action_time = str(required(form, "action_time"))
        try:
            occurred_at = datetime.fromisoformat(action_time)
        except ValueError as error:
            raise CallbackMalformed(f"action_time: {action_time!r} is not an ISO 8601 time") from error
        if occurred_at.tzinfo is None:
            raise CallbackMalformed(f"action_time: {action_time!r} has no offset")
        weight_kg = form.get("weight")
        try:
            weight_g = round(float(weight_kg) * 1000) if weight_kg not in (None, "") else None
        except ValueError as error:
            raise CallbackMalformed(f"weight: {weight_kg!r} is not a number of kg") from error
        status = STATUSES[status_id]
        return CarrierCallback(
            dedupe_key=f"{label_id}:{status_id}:{action_time}",
            raw_status=str(status_id),
            status=status,
            occurred_at=occurred_at.astimezone(UTC),
            tracking_code=label_id,
            reference=form.get("partner_id") or None,
            reason=form.get("reason") or None,
            weight_g=weight_g,
            fee_vnd=as_int(form.get("fee"), "fee"),
            cod_collected_vnd=as_int(form.get("pick_money"), "pick_money") if status == "delivered" else None,
            remitted=status_id == RECONCILED,
        )

    def create_order(self, parcel: Parcel) -> dict[str, Any]:
        return {
            "products": [
                {"name": name, "weight": unit_weight_g / 1000, "quantity": quantity, "product_code": sku}
                for sku, name, quantity, unit_weight_g in parcel.items
            ],
            "order": {
                "id": parcel.reference,
                "pick_name": parcel.sender_name,
                "pick_address": parcel.sender_ward,
                "pick_province": parcel.sender_province,
                "pick_district": "",  # the 2025 units have none; GHTK resolves the ward
                "pick_ward": parcel.sender_ward,
                "pick_tel": parcel.sender_phone,
                "name": parcel.recipient_name,
                "tel": parcel.recipient_phone,
                "address": parcel.recipient_line,
                "province": parcel.recipient_province,
                "district": parcel.recipient_legacy_district or "",
                "ward": parcel.recipient_ward,
                "hamlet": "Khác",
                "is_freeship": "1",
                "pick_money": parcel.cod_amount_vnd,
                "value": parcel.order_value_vnd,
                "transport": "road",
                "total_weight": parcel.weight_g / 1000,
                "tags": [7],  # farm produce, dry food
            },
        }


CARRIER = Ghtk()
