"""catalog's rules, free of I/O."""

from __future__ import annotations

from vuonminh.shared.addresses import check_address_codes
from vuonminh.shared.events import ProductListed, SellerRegistered


class CatalogError(Exception):
    """A command that breaks a catalog rule; `status` is the HTTP status that reports it."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def register_seller(*, seller_id: str, name: str, kind: str, province_code: str, ward_code: str) -> SellerRegistered:
    problem = check_address_codes(province_code, ward_code)
    if problem:
        raise CatalogError(problem, status=422)
    return SellerRegistered(seller_id=seller_id, name=name, kind=kind, province_code=province_code, ward_code=ward_code)


def list_product(
    *, sku: str, seller_id: str, name: str, unit_weight_g: int, ocop_stars: int | None, seller_exists: bool
) -> ProductListed:
    if not seller_exists:
        raise CatalogError(f"seller {seller_id!r} is not registered", status=422)
    if unit_weight_g <= 0:
        raise CatalogError("unit_weight_g must be a positive number of grams", status=422)
    return ProductListed(sku=sku, seller_id=seller_id, name=name, unit_weight_g=unit_weight_g, ocop_stars=ocop_stars)


def is_identical_retry(existing: dict | None, requested: dict, *, what: str) -> bool:
    """True when `requested` repeats what exists (a client retry); a different one conflicts."""
    if existing is None:
        return False
    if all(existing.get(field) == value for field, value in requested.items()):
        return True
    raise CatalogError(f"{what} exists with other details", status=409)
