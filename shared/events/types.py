"""Field types shared by event payloads and APIs: money, weights, codes, UTC times, and the limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from vuonminh.shared.timeutil import as_utc

# The limits every service agrees on. Webhook intake refuses an order whose amounts exceed them
# (422), and orders rejects one whose weight does (the weights come from the catalog, after
# intake), so whatever is placed fits every later event and every column.
MAX_VND = 10_000_000_000  # any one amount: a unit price, a line total, an order total
MAX_GRAMS = 10_000_000  # any one weight: a unit, a line, an order, a shipment (10 t)
MAX_QUANTITY = 10_000  # units of one order item
MAX_ORDER_ITEMS = 200  # items of one order


def _require_aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset, e.g. 2026-11-23T09:15:00+07:00 or ...Z")
    return as_utc(moment)


UtcDatetime = Annotated[datetime, AfterValidator(_require_aware_utc)]
# Money is whole đồng: VND has no minor unit in practice.
Vnd = Annotated[int, Field(ge=0, le=MAX_VND)]
Grams = Annotated[int, Field(ge=0, le=MAX_GRAMS)]
ProvinceCode = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
WardCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]

# The marketplaces orders takes webhooks from; `direct` is a shop posting to us in our own format.
Marketplace = Literal["tiktok_shop", "shopee", "lazada"]
