"""What every sales channel provides: one module per channel, one entry in the registry (`__init__.py`).

A channel knows how to verify its webhook over the raw bytes, read the notification it carries, fetch
the order from its platform's Open API (marketplaces only), normalise that answer to one canonical
order, and how fast it must be answered. Nothing here does I/O but `fetch_orders`, through the
`PlatformClient` it is given (rate limit, retries and circuit breaker live there: platform_api.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from vuonminh.shared.events import OrderReceivedV2

if TYPE_CHECKING:
    from vuonminh.orders.platform_api import PlatformClient, ShopConnection, TokenGrant
    from vuonminh.orders.settings import PlatformSettings


class WebhookRejected(Exception):
    """The webhook is refused: reply `status` (what the platform expects) and count it by `reason`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason  # metric label: signature | not_json | schema | unknown_shop ...


class ShapeError(ValueError):
    """A platform's answer is not what its documentation says: dead-lettered with this message, never
    half-applied."""


class PlatformError(Exception):
    """The platform answered with an error code in its body (HTTP status alone says little)."""

    def __init__(self, code: str, message: str, *, retryable: bool, auth: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retryable = retryable
        self.auth = auth  # the access token is refused: refresh it, then retry


@dataclass(frozen=True, slots=True)
class Notification:
    """What a platform webhook says: this order of this shop changed (status as spelled by it)."""

    shop_id: str
    order_id: str
    platform_status: str | None
    status_at: datetime
    identity: str  # what a replayed delivery has in common with the first one


class Marketplace(Protocol):
    """A marketplace channel (TikTok Shop, Shopee, Lazada)."""

    name: ClassVar[str]  # the channel's name in events: tiktok_shop
    slug: ClassVar[str]  # its webhook route: /v1/webhooks/<slug>
    deadline_s: ClassVar[float]  # the platform gives up on our reply after this long
    bad_signature_status: ClassVar[int]
    bad_body_status: ClassVar[int]
    batch_size: ClassVar[int]  # order ids one detail request may carry
    requests_per_s: ClassVar[float]  # the platform's limit per app and shop
    status_map: ClassVar[Mapping[str, str]]  # platform status -> PlatformOrderStatus

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: PlatformSettings) -> None: ...

    def read_notification(self, raw: bytes) -> Notification | None:
        """The order notification the body carries; None for other kinds (acknowledged, ignored)."""

    async def fetch_orders(
        self, client: PlatformClient, shop: ShopConnection, order_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The platform's order details for these ids (raises PlatformError, ShapeError, httpx errors)."""

    async def refresh(self, client: PlatformClient, shop_id: str, refresh_token: str) -> TokenGrant:
        """New tokens for a shop from its refresh token."""

    def order_id_of(self, detail: Mapping[str, Any]) -> str: ...

    def normalise(self, detail: Mapping[str, Any], *, shop_id: str, received_at: datetime) -> OrderReceivedV2: ...


# -- helpers the channel modules share ---------------------------------------------------------------------
def hex_hmac_sha256(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def check_hex_signature(header: str | None, expected: str, *, status: int, header_name: str) -> None:
    """Constant-time comparison of a hex signature header (case-insensitive hex)."""
    if not header:
        raise WebhookRejected(status, "signature", f"missing {header_name} header")
    if not hmac.compare_digest(header.strip().lower().encode(), expected.lower().encode()):
        raise WebhookRejected(status, "signature", f"{header_name} does not match the body's signature")


def vnd(value: Any, *, field: str) -> int:
    """Whole đồng from a platform amount: "290000.00", "290000", 290000 or 290000.0."""
    if isinstance(value, bool) or value is None:
        raise ShapeError(f"{field}: expected an amount, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise ShapeError(f"{field}: {value!r} is not an amount") from error
    if amount != amount.to_integral_value() or amount < 0:
        raise ShapeError(f"{field}: {value!r} is not a whole, non-negative VND amount")
    return int(amount)


def utc_from_unix(value: Any, *, field: str, millis: bool = False) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float | str) or not str(value).isdigit():
        raise ShapeError(f"{field}: expected a unix time, got {value!r}")
    seconds = int(value) / 1000 if millis else int(value)
    return datetime.fromtimestamp(seconds, tz=UTC)


def require(mapping: Any, name: str, kind: type | tuple[type, ...], *, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise ShapeError(f"{where}: expected an object")
    value = mapping.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ShapeError(f"{where}.{name}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def fold_units(units: Sequence[tuple[str, dict[str, Any], int]]) -> list[dict[str, Any]]:
    """Per-unit lines (key, line fields, unit price) folded into lines with a quantity, first seen first."""
    folded: dict[tuple[str, int], dict[str, Any]] = {}
    for key, fields, price in units:
        line = folded.get((key, price))
        if line is None:
            folded[(key, price)] = {**fields, "unit_price_vnd": price, "quantity": 1}
        else:
            line["quantity"] += 1
    return list(folded.values())
