"""Vietnam's administrative units since 1 July 2025: province + commune/ward, no district."""

from __future__ import annotations

from functools import lru_cache

from vietnam_provinces import Province, ProvinceCode, Ward, WardCode


@lru_cache(maxsize=4096)
def find_ward(ward_code: str) -> Ward | None:
    """The 2025 ward/commune with this five-digit code, or None."""
    if not (len(ward_code) == 5 and ward_code.isdigit()):
        return None
    try:
        return Ward.from_code(WardCode(int(ward_code)))
    except ValueError:
        return None


@lru_cache(maxsize=64)
def find_province(province_code: str) -> Province | None:
    """The 2025 province with this two-digit code, or None."""
    if not (len(province_code) == 2 and province_code.isdigit()):
        return None
    try:
        return Province.from_code(ProvinceCode(int(province_code)))
    except ValueError:
        return None


def province_code_of(ward: Ward) -> str:
    return f"{int(ward.province_code):02d}"


def check_address_codes(province_code: str, ward_code: str) -> str | None:
    """Why this province/ward pair is not a valid 2025 address, or None when it is."""
    province = find_province(province_code)
    if province is None:
        return f"unknown province_code {province_code!r} (2025 two-digit code expected)"
    ward = find_ward(ward_code)
    if ward is None:
        return f"unknown ward_code {ward_code!r} (2025 five-digit commune/ward code expected)"
    if province_code_of(ward) != province_code:
        return f"ward_code {ward_code} ({ward.name}) is not in province {province_code} ({province.name})"
    return None
