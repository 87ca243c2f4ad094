"""VNPost: its callback format is not public, so this is our documented JSON shape (docs/logistics.md):
`Authorization: Bearer <VNPOST_CALLBACK_TOKEN>`, `{OrderCode, ItemCode, StatusCode, StatusName, StatusTime,
Note, CodAmount, Fee, Weight}`. Codes 20, 60-62, 100, 161 and 170 are VNPost's as Haravan documents them;
30, 40, 50, 110 and 190 are ours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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

STATUSES: dict[int, ShipmentStatus] = {
    20: "pickup_assigned",
    30: "picked_up",
    40: "in_transit",
    50: "out_for_delivery",
    100: "delivered",
    110: "delivery_failed",
    161: "returning",
    170: "returned",
    60: "cancelled",
    61: "cancelled",
    62: "cancelled",
    190: "lost",
}


class Vnpost:
    name = "vnpost"
    display_name = "VNPost"
    secret_env = "VNPOST_CALLBACK_TOKEN"

    def authenticate(self, request: CallbackRequest, secret: str) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same_secret(token.strip(), secret)

    def redact(self, body: bytes) -> str:
        return plain_body(body)  # the secret travels in the URL or a header, never in the body

    def parse_callback(self, request: CallbackRequest) -> CarrierCallback:
        data = request.json_object()
        code = as_code(required(data, "StatusCode"), "StatusCode")
        if code not in STATUSES:
            raise CallbackMalformed(f"StatusCode: unknown VNPost status {code}")
        stamp = str(required(data, "StatusTime"))
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError as error:
            raise CallbackMalformed(f"StatusTime: {stamp!r} is not an ISO 8601 time") from error
        if moment.tzinfo is None:
            raise CallbackMalformed(f"StatusTime: {stamp!r} has no offset")
        item_code = data.get("ItemCode") or None
        reference = data.get("OrderCode") or None
        if item_code is None and reference is None:
            raise CallbackMalformed("ItemCode or OrderCode is needed")
        status = STATUSES[code]
        return CarrierCallback(
            dedupe_key=f"{item_code or reference}:{code}:{stamp}",
            raw_status=str(code),
            status=status,
            occurred_at=moment.astimezone(UTC),
            tracking_code=item_code,
            reference=reference,
            reason=data.get("Note") or data.get("StatusName") or None,
            weight_g=as_int(data.get("Weight"), "Weight"),
            fee_vnd=as_int(data.get("Fee"), "Fee"),
            cod_collected_vnd=as_int(data.get("CodAmount"), "CodAmount") if status == "delivered" else None,
        )

    def create_order(self, parcel: Parcel) -> dict[str, Any]:
        return {
            "OrderCode": parcel.reference,
            "SenderName": parcel.sender_name,
            "SenderPhone": parcel.sender_phone,
            "SenderAddress": f"{parcel.sender_ward}, {parcel.sender_province}",
            "SenderProvinceCode": parcel.sender_province_code,
            "SenderWardCode": parcel.sender_ward_code,
            "ReceiverName": parcel.recipient_name,
            "ReceiverPhone": parcel.recipient_phone,
            "ReceiverAddress": parcel.recipient_line,
            "ReceiverProvinceCode": parcel.recipient_province_code,
            "ReceiverWardCode": parcel.recipient_ward_code,
            "ReceiverDistrictName": parcel.recipient_legacy_district or "",
            "Weight": parcel.weight_g,
            "CodAmount": parcel.cod_amount_vnd,
            "OrderValue": parcel.order_value_vnd,
            "Items": [
                {"Name": name, "Quantity": quantity, "Weight": unit_weight_g * quantity}
                for _sku, name, quantity, unit_weight_g in parcel.items
            ],
        }


CARRIER = Vnpost()
