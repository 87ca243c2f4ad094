"""Field types shared by event payloads and APIs: money, weights, codes, UTC times, and the limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from vuonminh.shared.timeutil import as_utc

# The limits every service agrees on. Webhook intake refuses an order beyond them (422), and the
# weights below are derived from them, so whatever intake acknowledges fits every later event
# and every column (money and weight columns are BIGINT: 2**63 - 1 is far above each bound).
MAX_VND = 10_000_000_000  # any one amount: a unit price, a line total, an order total
MAX_QUANTITY = 10_000  # units of one order item
MAX_ORDER_ITEMS = 200  # items of one order
MAX_UNIT_WEIGHT_G = 10_000_000  # one unit of a product (catalog): 10 t
MAX_LINE_WEIGHT_G = MAX_QUANTITY * MAX_UNIT_WEIGHT_G  # 10^11 g
MAX_ORDER_WEIGHT_G = MAX_ORDER_ITEMS * MAX_LINE_WEIGHT_G  # 2 x 10^13 g, also bounds a shipment


def _require_aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset, e.g. 2026-11-23T09:15:00+07:00 or ...Z")
    return as_utc(moment)


UtcDatetime = Annotated[datetime, AfterValidator(_require_aware_utc)]
# Money is whole đồng: VND has no minor unit in practice.
Vnd = Annotated[int, Field(ge=0, le=MAX_VND)]
# The weight of one unit of a product.
Grams = Annotated[int, Field(ge=0, le=MAX_UNIT_WEIGHT_G)]
# quantity x unit weight, and the sum of an order's (or a shipment's) lines.
LineGrams = Annotated[int, Field(ge=0, le=MAX_LINE_WEIGHT_G)]
OrderGrams = Annotated[int, Field(ge=0, le=MAX_ORDER_WEIGHT_G)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
ProvinceCode = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
WardCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
