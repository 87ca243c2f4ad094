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


# -- names to codes (platforms send names, not codes) ---------------------------------------------------
_UNIT_PREFIXES = ("thành phố ", "tỉnh ", "phường ", "xã ", "đặc khu ", "thị trấn ", "tp. ", "tp ")


def _plain(name: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFC", name).strip().casefold()
    for prefix in _UNIT_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    return text


@lru_cache(maxsize=1)
def _name_index() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    provinces = {_plain(p.name): f"{int(p.code):02d}" for p in Province.iter_all()}
    wards: dict[tuple[str, str], str] = {}
    for ward in Ward.iter_all():
        wards[(province_code_of(ward), _plain(ward.name))] = f"{int(ward.code):05d}"
    return provinces, wards


def resolve_names(province_name: str | None, ward_name: str | None) -> tuple[str | None, str | None]:
    """2025 (province code, ward code) for a province and ward given by name (with or without their
    "Tỉnh"/"Phường"/"Xã" prefix); None for what does not resolve."""
    provinces, wards = _name_index()
    province_code = provinces.get(_plain(province_name)) if province_name else None
    ward_code = wards.get((province_code, _plain(ward_name))) if province_code and ward_name else None
    return province_code, ward_code
