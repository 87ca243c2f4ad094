"""What every carrier module provides, and the shapes its callbacks are read into.

A carrier is one module (ghn.py, ghtk.py, viettel_post.py, vnpost.py) holding one `CarrierAdapter`:
its status codes mapped onto our shipment states, how its callbacks authenticate and read, and the
body of its create-order request. Formats follow each carrier's own documents.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vuonminh.shared.events.logistics import ShipmentStatus


class CallbackMalformed(ValueError):
    """The callback is not in the carrier's documented shape (422)."""


@dataclass(frozen=True)
class CallbackRequest:
    """A carrier's callback as it arrived: raw bytes and what travelled beside them."""

    body: bytes
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CallbackMalformed("the body is not UTF-8") from error

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, else CallbackMalformed saying why."""
        try:
            data = json.loads(self.text())
        except json.JSONDecodeError as error:
            raise CallbackMalformed(f"the body is not JSON: {error.msg}") from error
        if not isinstance(data, dict):
            raise CallbackMalformed("the body is not a JSON object")
        return data


@dataclass(frozen=True)
class CarrierCallback:
    """One status report of a carrier, read into our terms."""

    dedupe_key: str  # the carrier's identity of this report (integrations.md "Dedupe keys")
    raw_status: str  # the carrier's own code, as sent
    status: ShipmentStatus | None  # None: a report that moves no state (e.g. a weight or fee update)
    occurred_at: datetime  # UTC
    tracking_code: str | None = None
    reference: str | None = None  # ours, echoed back (GHN ClientOrderCode, GHTK partner_id, VTP ORDER_REFERENCE)
    reason: str | None = None
    weight_g: int | None = None
    fee_vnd: int | None = None
    cod_collected_vnd: int | None = None
    remitted: bool = False  # the carrier says it paid the COD over (GHTK "reconciled")


@dataclass(frozen=True)
class Parcel:
    """What a create-order request needs to know about one shipment."""

    reference: str
    weight_g: int
    cod_amount_vnd: int
    order_value_vnd: int
    sender_name: str
    sender_phone: str
    sender_province: str
    sender_ward: str
    sender_province_code: str
    sender_ward_code: str
    recipient_name: str
    recipient_phone: str
    recipient_line: str
    recipient_province: str
    recipient_ward: str
    recipient_province_code: str
    recipient_ward_code: str
    recipient_legacy_district: str | None
    items: tuple[tuple[str, str, int, int], ...] = field(default=())  # (sku, name, quantity, unit weight g)


class CarrierAdapter(Protocol):
    name: str
    display_name: str
    # The environment variable holding the shared secret its callbacks carry.
    secret_env: str

    def authenticate(self, request: CallbackRequest, secret: str) -> bool: ...

    def parse_callback(self, request: CallbackRequest) -> CarrierCallback: ...

    def create_order(self, parcel: Parcel) -> dict[str, Any]: ...

    def redact(self, body: bytes) -> str:
        """The body as kept for inspection: without the shared secret, when the body carries it."""
        ...


def plain_body(body: bytes) -> str:
    return body.decode("utf-8", errors="backslashreplace")


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected secret matches nothing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def as_code(value: Any, name: str) -> int:
    """A carrier's numeric status code (negative ones too: GHTK -1, Viettel Post -100)."""
    try:
        return int(str(value).strip())
    except ValueError as error:
        raise CallbackMalformed(f"{name}: {value!r} is not a status code") from error


def as_int(value: Any, name: str) -> int | None:
    """A carrier's amount (sometimes a string, sometimes "290000.00") as an int; None when absent."""
    if value is None or value == "":
        return None
    try:
        number = float(str(value).replace(",", ""))
    except ValueError as error:
        raise CallbackMalformed(f"{name}: {value!r} is not a number") from error
    if number < 0 or number > 10**12:
        raise CallbackMalformed(f"{name}: {value!r} is out of range")
    return round(number)


def required(data: Mapping[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise CallbackMalformed(f"{name} is missing")
    return value
