"""catalog's rules, free of I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from urllib.parse import quote

from vuonminh.shared.addresses import check_address_codes, find_ward
from vuonminh.shared.events import ProductListed, ReservationProblem, ReservedLine, SellerRegisteredV2

VIETNAM_OFFSET = timedelta(hours=7)


class CatalogError(Exception):
    """A command that breaks a catalog rule; `status` is the HTTP status that reports it."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def vietnam_day(moment: datetime) -> date:
    """The calendar day in Vietnam (UTC+7) of a UTC moment: seasons and certificates run on those days."""
    return (moment + VIETNAM_OFFSET).date() if moment.utcoffset() is not None else moment.date()


# --- GTIN and GS1 Digital Link ---------------------------------------------------------------------


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10 check digit of the digits before it (weights 3, 1, 3, ... from the right)."""
    total = sum(int(digit) * (3 if position % 2 == 0 else 1) for position, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalise_gtin(value: str) -> str:
    """A GTIN-8, -12, -13 or -14 as the 14 digits GS1 Digital Link uses; ValueError when it is not one."""
    value = value.strip()
    if not value.isdigit() or len(value) not in (8, 12, 13, 14):
        raise ValueError("a GTIN is 8, 12, 13 or 14 digits")
    if gtin_check_digit(value[:-1]) != int(value[-1]):
        raise ValueError(f"check digit of GTIN {value} should be {gtin_check_digit(value[:-1])}")
    return value.zfill(14)


def digital_link(domain: str, gtin: str, lot_code: str) -> str:
    """The GS1 Digital Link URI of a lot: https://<domain>/01/<GTIN-14>/10/<lot>."""
    return f"https://{domain}/01/{gtin}/10/{quote(lot_code, safe='')}"


# --- sellers -----------------------------------------------------------------------------------------


def seller_kind(kind: str, aggregates_others: bool) -> tuple[str, bool]:
    """v1's `aggregator` kind is a trader who aggregates other households' output."""
    return ("trader", True) if kind == "aggregator" else (kind, aggregates_others)


def register_seller(
    *,
    seller_id: str,
    name: str,
    kind: str,
    aggregates_others: bool,
    province_code: str,
    ward_code: str,
    provincial_shop_id: str | None,
    shop_exists: bool,
) -> SellerRegisteredV2:
    problem = check_address_codes(province_code, ward_code)
    if problem:
        raise CatalogError(problem, status=422)
    if provincial_shop_id is not None and not shop_exists:
        raise CatalogError(f"provincial_shop_id: shop {provincial_shop_id!r} is not registered", status=422)
    return SellerRegisteredV2(
        seller_id=seller_id,
        name=name,
        kind=kind,
        aggregates_others=aggregates_others,
        province_code=province_code,
        ward_code=ward_code,
        provincial_shop_id=provincial_shop_id,
    )


# --- products --------------------------------------------------------------------------------------


class ProductFacts(Protocol):
    sku: str
    seller_id: str
    name: str
    unit_weight_g: int
    ocop_stars: int | None
    ocop_certificate_expires_on: date | None
    season_starts_on: date | None
    season_ends_on: date | None
    active: bool


def check_product(*, season_starts_on: date | None, season_ends_on: date | None, seller_exists: bool, seller_id: str):
    """The rules across fields of a product (each field alone is checked by its shape)."""
    if not seller_exists:
        raise CatalogError(f"seller_id: seller {seller_id!r} is not registered", status=422)
    if (season_starts_on is None) != (season_ends_on is None):
        raise CatalogError("season_ends_on: a season needs both season_starts_on and season_ends_on", status=422)
    if season_starts_on and season_ends_on and season_ends_on < season_starts_on:
        raise CatalogError(
            f"season_ends_on: the season ends ({season_ends_on}) before it starts ({season_starts_on})", status=422
        )


def ocop_is_valid(product: ProductFacts, on_day: date) -> bool:
    """Rated, and the certificate has not expired (a product without a known expiry keeps its stars)."""
    if product.ocop_stars is None:
        return False
    expires = product.ocop_certificate_expires_on
    return expires is None or expires >= on_day


def shown_ocop_stars(product: ProductFacts, on_day: date) -> int | None:
    return product.ocop_stars if ocop_is_valid(product, on_day) else None


def in_season(product: ProductFacts, on_day: date) -> bool:
    if product.season_starts_on is None or product.season_ends_on is None:
        return True
    return product.season_starts_on <= on_day <= product.season_ends_on


def not_orderable_reason(product: ProductFacts | None, on_day: date) -> str | None:
    """Why an order cannot have this product on that day (in Vietnamese, for sellers), or None."""
    if product is None:
        return "Sản phẩm không có trong danh mục"
    if not product.active:
        return f"Sản phẩm {product.name} đã ngừng bán"
    if not in_season(product, on_day):
        return (
            f"Sản phẩm {product.name} ngoài mùa vụ: chỉ bán từ {product.season_starts_on:%d/%m/%Y} "
            f"đến {product.season_ends_on:%d/%m/%Y}"
        )
    return None


def product_listed(product: ProductFacts, on_day: date) -> ProductListed:
    """What orders keeps of a product; the stars are the ones shown (none once the certificate expired)."""
    return ProductListed(
        sku=product.sku,
        seller_id=product.seller_id,
        name=product.name,
        unit_weight_g=product.unit_weight_g,
        ocop_stars=shown_ocop_stars(product, on_day),
    )


def check_version(*, current: int, expected: int, sku: str) -> None:
    if current != expected:
        raise CatalogError(
            f"product {sku!r} was changed meanwhile (version {current}, your edit is based on {expected}): "
            "read it again and redo the edit",
            status=409,
        )


# --- stock -----------------------------------------------------------------------------------------


def adjusted_available(*, available: int, change: int, unit: str) -> int:
    """Units free after a seller's adjustment; never below zero (held units cannot be written off)."""
    after = available + change
    if after < 0:
        raise CatalogError(
            f"change: {change} {unit} would leave {after} available; only {available} {unit} are free "
            "(units held for orders are released by cancelling them)",
            status=422,
        )
    return after


@dataclass(frozen=True)
class Reservation:
    """Every line can be held: quantities per SKU, summed over the order's lines."""

    lines: tuple[ReservedLine, ...]


@dataclass(frozen=True)
class Refusal:
    problems: tuple[ReservationProblem, ...]


def quantities_by_sku(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for sku, quantity in lines:
        totals[sku] = totals.get(sku, 0) + quantity
    return totals


def decide_reservation(
    wanted: Mapping[str, int],
    *,
    products: Mapping[str, ProductFacts],
    available: Mapping[str, int],
    on_day: date,
) -> Reservation | Refusal:
    """All or nothing: every SKU orderable with enough units free, or the problems of each that is not."""
    problems = []
    for sku, quantity in sorted(wanted.items()):
        free = available.get(sku, 0)
        reason = not_orderable_reason(products.get(sku), on_day)
        if reason is not None:
            problems.append(
                ReservationProblem(code="not_orderable", message=reason, sku=sku, requested=quantity, available=free)
            )
        elif free < quantity:
            name = products[sku].name
            message = (
                f"Hết hàng: {name} đã bán hết"
                if free == 0
                else f"Không đủ hàng: {name} chỉ còn {free}, đơn đặt {quantity}"
            )
            problems.append(
                ReservationProblem(code="out_of_stock", message=message, sku=sku, requested=quantity, available=free)
            )
    if problems:
        return Refusal(tuple(problems))
    return Reservation(tuple(ReservedLine(sku=sku, quantity=q) for sku, q in sorted(wanted.items())))


def check_ward(ward_code: str) -> str | None:
    """Why a five-digit code is not a 2025 ward/commune, or None."""
    return None if find_ward(ward_code) else f"unknown 2025 ward/commune code {ward_code!r}"


def is_identical_retry(existing: dict | None, requested: dict, *, what: str) -> bool:
    """True when `requested` repeats what exists (a client retry); a different one conflicts."""
    if existing is None:
        return False
    if all(existing.get(field) == value for field, value in requested.items()):
        return True
    raise CatalogError(f"{what} exists with other details", status=409)
