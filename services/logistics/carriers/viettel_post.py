"""Viettel Post: JSON callbacks `{"DATA": {...}, "TOKEN": "..."}` carrying our shared token in the body,
numeric ORDER_STATUS codes, times as `dd/MM/yyyy HH:mm:ss` in Vietnam time, and `/v2/order/createOrder`."""

from __future__ import annotations

import json
import re
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
from vuonminh.shared.timeutil import VIETNAM_TZ

TOKEN_FIELD = re.compile(r'("TOKEN"\s*:\s*)"(?:[^"\\]|\\.)*"')
STATUSES: dict[int, ShipmentStatus | None] = {
    -100: "created",  # new order, not yet received
    -108: "picked_up",  # dropped at the post office
    104: "pickup_assigned",
    107: "cancelled",  # cancelled through the API
    200: "picked_up",  # received at the post office
    300: "in_transit",
    400: "in_transit",
    500: "out_for_delivery",
    508: "out_for_delivery",
    501: "delivered",
    502: "returning",
    503: "cancelled",
    504: "returned",
    505: "returning",  # awaiting approval to return
    506: "delivery_failed",  # customer absent
    507: "delivery_failed",
    515: "returning",  # return approved
}


class ViettelPost:
    name = "viettel_post"
    display_name = "Viettel Post"
    secret_env = "VIETTELPOST_CALLBACK_TOKEN"

    def authenticate(self, request: CallbackRequest, secret: str) -> bool:
        try:
            token = json.loads(request.body).get("TOKEN")
        except (ValueError, AttributeError):
            return False
        return isinstance(token, str) and same_secret(token, secret)

    def redact(self, body: bytes) -> str:
        # The shared token travels in the body: kept as "***".
        return TOKEN_FIELD.sub(r'\1"***"', plain_body(body))

    def parse_callback(self, request: CallbackRequest) -> CarrierCallback:
        data = request.json_object().get("DATA")
        if not isinstance(data, dict):
            raise CallbackMalformed("DATA: expected an object")
        code = as_code(required(data, "ORDER_STATUS"), "ORDER_STATUS")
        stamp = str(required(data, "ORDER_STATUSDATE"))
        try:
            local = datetime.strptime(stamp, "%d/%m/%Y %H:%M:%S")
        except ValueError as error:
            raise CallbackMalformed(f"ORDER_STATUSDATE: {stamp!r} is not dd/MM/yyyy HH:mm:ss") from error
        tracking = str(required(data, "ORDER_NUMBER"))
        # A code our map does not name is kept and moves nothing (Viettel Post has codes we do not know).
        status = STATUSES.get(code)
        return CarrierCallback(
            dedupe_key=f"{tracking}:{code}:{stamp}",
            raw_status=str(code),
            status=status,
            occurred_at=local.replace(tzinfo=VIETNAM_TZ).astimezone(UTC),
            tracking_code=tracking,
            reference=data.get("ORDER_REFERENCE") or None,
            reason=data.get("NOTE") or data.get("STATUS_NAME") or None,
            weight_g=as_int(data.get("PRODUCT_WEIGHT"), "PRODUCT_WEIGHT"),
            fee_vnd=as_int(data.get("MONEY_TOTAL"), "MONEY_TOTAL"),
            cod_collected_vnd=as_int(data.get("MONEY_COLLECTION"), "MONEY_COLLECTION")
            if status == "delivered"
            else None,
        )

    def create_order(self, parcel: Parcel) -> dict[str, Any]:
        return {
            "ORDER_NUMBER": parcel.reference,
            "SENDER_FULLNAME": parcel.sender_name,
            "SENDER_ADDRESS": f"{parcel.sender_ward}, {parcel.sender_province}",
            "SENDER_PHONE": parcel.sender_phone,
            # Viettel Post's numeric ids come from its own master data (listProvince/listWards): the
            # partner fills them from the names; we send the 2025 codes alongside.
            "SENDER_PROVINCE": None,
            "SENDER_WARD": None,
            "SENDER_PROVINCE_CODE_2025": parcel.sender_province_code,
            "SENDER_WARD_CODE_2025": parcel.sender_ward_code,
            "RECEIVER_FULLNAME": parcel.recipient_name,
            "RECEIVER_ADDRESS": ", ".join(
                part
                for part in (
                    parcel.recipient_line,
                    parcel.recipient_ward,
                    parcel.recipient_legacy_district,
                    parcel.recipient_province,
                )
                if part
            ),
            "RECEIVER_PHONE": parcel.recipient_phone,
            "RECEIVER_PROVINCE": None,
            "RECEIVER_WARD": None,
            "RECEIVER_PROVINCE_CODE_2025": parcel.recipient_province_code,
            "RECEIVER_WARD_CODE_2025": parcel.recipient_ward_code,
            "PRODUCT_NAME": ", ".join(name for _sku, name, _q, _w in parcel.items)[:200],
            "PRODUCT_QUANTITY": sum(quantity for _sku, _n, quantity, _w in parcel.items),
            "PRODUCT_PRICE": parcel.order_value_vnd,
            "PRODUCT_WEIGHT": parcel.weight_g,
            "PRODUCT_TYPE": "HH",  # goods
            "ORDER_PAYMENT": 3 if parcel.cod_amount_vnd else 1,  # 3: collect the goods' money; 1: nothing
            "ORDER_SERVICE": "VCN",
            "MONEY_COLLECTION": parcel.cod_amount_vnd,
            "LIST_ITEM": [
                {
                    "PRODUCT_NAME": name,
                    "PRODUCT_QUANTITY": quantity,
                    "PRODUCT_WEIGHT": unit_weight_g * quantity,
                }
                for _sku, name, quantity, unit_weight_g in parcel.items
            ],
        }


CARRIER = ViettelPost()
