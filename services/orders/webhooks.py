"""Signed webhooks of the direct channel: `X-VuonMinh-Signature: t=<unix s>,v1=<hex>`.

The scheme is Stripe's: v1 is the hex HMAC-SHA256, keyed with the shop's secret, of
"<t>.<raw body>"; several v1 values may be sent while a secret is rotated, and a shop may have
two active secrets (see shops.py): any match passes. A timestamp outside the tolerance (5 minutes
by default) is refused, which bounds replays of a captured request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "X-VuonMinh-Signature"


class SignatureError(Exception):
    """The request is not proven to come from the shop: answer 401 with this message."""


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The header value a sender puts on `body` (used by our tools and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(header: str | None, body: bytes, *, secrets: Sequence[str], now: int, tolerance_s: int) -> None:
    """Passes when one v1 value is the signature of `body` under one of `secrets`."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected t=<unix seconds>,v1=<hex>")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is more than {tolerance_s} s from now: refused as a replay")
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    if not any(hmac.compare_digest(e, candidate) for e in expected for candidate in candidates):
        raise SignatureError("signature does not match the body under the shop's secret")
