"""Masking buyers' personal data for callers that must not see it (docs/architecture.md "Access").

The selling seller, its carrier (to deliver) and the operator see a buyer's name, phone and address
line; every other caller (officials, platform integrations, other sellers' views) sees them masked.
Province and ward codes stay: they are what officials count by, and they name no one.
"""

from __future__ import annotations

from pydantic import BaseModel


def mask_phone(phone: str) -> str:
    """`0912345678` -> `09******78`: enough to tell two buyers apart on a call list, not to call."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "".join(digits[:2]) + "*" * (len(digits) - 4) + "".join(digits[-2:])


def mask_name(name: str) -> str:
    """`Nguyễn Thu Hà` -> `N*** T*** H***`."""
    return " ".join(word[0] + "***" for word in name.split() if word)


def mask_line(line: str) -> str:
    """A street address line gives way to a fixed mask (its length would say too much)."""
    return "***" if line else ""


class BuyerAddressOut(BaseModel):
    province_code: str
    ward_code: str
    line: str


class BuyerOut(BaseModel):
    """A buyer as an API caller sees it: `masked` says whether name, phone and line are masked."""

    name: str
    phone: str
    address: BuyerAddressOut
    masked: bool


def buyer_out(*, name: str, phone: str, province_code: str, ward_code: str, line: str, reveal: bool) -> BuyerOut:
    if reveal:
        return BuyerOut(
            name=name,
            phone=phone,
            address=BuyerAddressOut(province_code=province_code, ward_code=ward_code, line=line),
            masked=False,
        )
    return BuyerOut(
        name=mask_name(name),
        phone=mask_phone(phone),
        address=BuyerAddressOut(province_code=province_code, ward_code=ward_code, line=mask_line(line)),
        masked=True,
    )
