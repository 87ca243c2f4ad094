"""GHN (Giao Hàng Nhanh): JSON callbacks without a signature (the URL registered with GHN carries our
token as `?token=`), string status codes, and `/v2/shipping-order/create`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vuonminh.logistics.carriers.base import (
    CallbackMalformed,
    CallbackRequest,
    CarrierCallback,
    Parcel,
    as_int,
    plain_body,
    required,
    same_secret,
)
from vuonminh.shared.events.logistics import ShipmentStatus

STATUSES: dict[str, ShipmentStatus | None] = {
    "ready_to_pick": "created",
    "picking": "pickup_assigned",
    "money_collect_picking": "pickup_assigned",
    "picked": "picked_up",
    "storing": "in_transit",
    "transporting": "in_transit",
    "sorting": "in_transit",
    "delivering": "out_for_delivery",
    "money_collect_delivering": "out_for_delivery",
    "delivered": "delivered",
    "delivery_fail": "delivery_failed",
    "waiting_to_return": "delivery_failed",
    "return": "returning",
    "return_transporting": "returning",
    "return_sorting": "returning",
    "returning": "returning",
    "return_fail": "returning",
    "returned": "returned",
    "cancel": "cancelled",
    "lost": "lost",
    # Reported, kept, moving nothing: a person looks at them.
    "exception": None,
    "damage": None,
}
# GHN's insurance_value is capped at 5,000,000 VND.
MAX_INSURANCE_VND = 5_000_000


class Ghn:
    name = "ghn"
    display_name = "GHN"
    secret_env = "GHN_CALLBACK_TOKEN"

    def authenticate(self, request: CallbackRequest, secret: str) -> bool:
        return same_secret(request.query.get("token"), secret)

    def redact(self, body: bytes) -> str:
        return plain_body(body)  # the secret travels in the URL or a header, never in the body

    def parse_callback(self, request: CallbackRequest) -> CarrierCallback:
        data = request.json_object()
        raw_status = str(required(data, "Status")).lower()
        if raw_status not in STATUSES:
            raise CallbackMalformed(f"Status: unknown GHN status {raw_status!r}")
        occurred_at = _ghn_time(required(data, "Time"))
        order_code = str(required(data, "OrderCode"))
        kind = str(data.get("Type") or "switch_status").lower()
        # Only a status report moves the state; update_weight/update_cod/update_fee carry figures only.
        status = STATUSES[raw_status] if kind in ("create", "switch_status") else None
        delivered = STATUSES[raw_status] == "delivered"
        return CarrierCallback(
            dedupe_key=f"{order_code}:{kind}:{raw_status}:{data['Time']}",
            raw_status=raw_status,
            status=status,
            occurred_at=occurred_at,
            tracking_code=order_code,
            reference=data.get("ClientOrderCode") or None,
            reason=data.get("Reason") or None,
            weight_g=as_int(data.get("Weight"), "Weight"),
            fee_vnd=as_int(data.get("TotalFee"), "TotalFee"),
            cod_collected_vnd=as_int(data.get("CODAmount"), "CODAmount") if delivered else None,
        )

    def create_order(self, parcel: Parcel) -> dict[str, Any]:
        return {
            "payment_type_id": 1,  # the shop pays the fee
            "required_note": "CHOXEMHANGKHONGTHU",
            "service_type_id": 2,  # e-commerce delivery
            "client_order_code": parcel.reference,
            "from_name": parcel.sender_name,
            "from_phone": parcel.sender_phone,
            "from_address": f"{parcel.sender_ward}, {parcel.sender_province}",
            "from_ward_name": parcel.sender_ward,
            "from_province_name": parcel.sender_province,
            "to_name": parcel.recipient_name,
            "to_phone": parcel.recipient_phone,
            "to_address": parcel.recipient_line,
            "to_ward_name": parcel.recipient_ward,
            # GHN's master data still has districts: the legacy one when the platform gave it.
            "to_district_name": parcel.recipient_legacy_district or "",
            "to_province_name": parcel.recipient_province,
            "cod_amount": parcel.cod_amount_vnd,
            "insurance_value": min(parcel.order_value_vnd, MAX_INSURANCE_VND),
            "weight": parcel.weight_g,
            "length": 20,
            "width": 15,
            "height": 10,
            "items": [
                {"name": name, "code": sku, "quantity": quantity, "weight": unit_weight_g}
                for sku, name, quantity, unit_weight_g in parcel.items
            ],
        }


def _ghn_time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as error:
        raise CallbackMalformed(f"Time: {value!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise CallbackMalformed(f"Time: {value!r} has no offset")
    return moment.astimezone(UTC)


CARRIER = Ghn()
