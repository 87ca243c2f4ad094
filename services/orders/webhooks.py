"""Signed webhooks of the direct channel: `X-VuonMinh-Signature: t=<unix s>,v1=<hex>`.

The scheme is Stripe's: v1 is the hex HMAC-SHA256, keyed with the endpoint secret, of
"<t>.<raw body>"; several v1 values may be sent while a secret is rotated; a timestamp outside
the tolerance (5 minutes by default) is refused, which bounds replays of a captured request.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-VuonMinh-Signature"


class SignatureError(Exception):
    """The request is not proven to come from the shop: answer 401 with this message."""


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The header value a sender puts on `body` (used by our tools and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(header: str | None, body: bytes, *, secret: str, now: int, tolerance_s: int) -> None:
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
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match the body")
