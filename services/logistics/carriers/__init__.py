"""The carriers logistics ships with: one module each, one entry here each."""

from __future__ import annotations

from vuonminh.logistics.carriers import ghn, ghtk, viettel_post, vnpost
from vuonminh.logistics.carriers.base import CarrierAdapter

CARRIERS: dict[str, CarrierAdapter] = {
    module.CARRIER.name: module.CARRIER for module in (ghn, ghtk, viettel_post, vnpost)
}
