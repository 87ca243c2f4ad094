"""Lots' QR codes (segno) and the public trace page (Jinja2)."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import segno
from jinja2 import Environment, PackageLoader, select_autoescape

KIND_NAMES = {
    "household": "Hộ sản xuất",
    "trader": "Hộ kinh doanh",
    "cooperative": "Hợp tác xã",
    "enterprise": "Doanh nghiệp",
}


def qr_png(uri: str, *, scale: int = 8) -> bytes:
    """A QR code of the URI; error correction M, the level GS1 recommends for printed Digital Links."""
    buffer = io.BytesIO()
    segno.make_qr(uri, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(uri: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(uri, error="m").save(buffer, kind="svg", scale=scale, border=4, xmldecl=True)
    return buffer.getvalue()


@lru_cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("vuonminh.catalog", "templates"), autoescape=select_autoescape())


def _vn_date(value: str | None) -> str:
    if not value:
        return "—"
    year, month, day = value.split("-")
    return f"{day}/{month}/{year}"


def _vn_kg(kilograms: float) -> str:
    """Vietnamese writes a decimal comma: 149,5."""
    return f"{kilograms:g}".replace(".", ",")


def trace_page(trace: dict[str, Any]) -> str:
    return (
        _templates().get_template("trace.html").render(t=trace, kind_names=KIND_NAMES, vn_date=_vn_date, vn_kg=_vn_kg)
    )


def not_found_page(gtin: str, lot_code: str) -> str:
    return _templates().get_template("trace_not_found.html").render(gtin=gtin, lot=lot_code)
