"""The direct channel: a shop posts its whole order to us, signed per Standard Webhooks.

Standard Webhooks (standardwebhooks.com; the `standardwebhooks` package computes the signature):
`webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`, keyed with the base64-decoded part of the shop's `whsec_...` secret; several
space-separated signatures may be sent while a secret rotates. The `webhook-id` is the dedupe key: a
retried delivery carries the same id and is dropped. Any language's Standard Webhooks library signs it.

Deprecated: `X-VuonMinh-Signature: t=<unix s>,v1=<hex>` (webhooks.py), still accepted for existing
senders when the Standard Webhooks headers are absent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from standardwebhooks.webhooks import Webhook

from vuonminh.orders.webhooks import SignatureError

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class Direct:
    name: ClassVar[str] = "direct"
    slug: ClassVar[str] = "direct"
    # Standard Webhooks senders usually wait 15 to 30 s; we answer once the order is durable.
    deadline_s: ClassVar[float] = 15.0


def uses_standard_webhooks(headers: Mapping[str, str]) -> bool:
    return any(name in headers for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))


def sign(body: bytes, *, secret: str, msg_id: str, timestamp: int) -> dict[str, str]:
    """The headers a sender puts on `body` (for our tools and tests; any Standard Webhooks library does it)."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature}


def verify(headers: Mapping[str, str], body: bytes, *, secrets: Sequence[str], now: int, tolerance_s: int) -> str:
    """Returns the `webhook-id` when one signature matches `body` under one of `secrets`; else SignatureError."""
    msg_id = headers.get(ID_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    header = headers.get(SIGNATURE_HEADER)
    missing = [
        name
        for name, value in ((ID_HEADER, msg_id), (TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, header))
        if not value
    ]
    if missing:
        raise SignatureError(f"missing Standard Webhooks header(s): {', '.join(missing)}")
    assert msg_id and timestamp and header
    if not timestamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureError(f"{TIMESTAMP_HEADER} is more than {tolerance_s} s from now: refused as a replay")
    if len(msg_id) > 200:
        raise SignatureError(f"{ID_HEADER} is longer than 200 characters")
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        raise SignatureError("the body is not UTF-8") from error
    candidates: list[bytes] = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version == "v1" and value:
            try:
                candidates.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
    if not candidates:
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: expected v1,<base64 signature>")
    moment = datetime.fromtimestamp(int(timestamp), tz=UTC)
    for secret in secrets:
        try:
            expected = base64.b64decode(Webhook(secret).sign(msg_id, moment, text).split(",", 1)[1])
        except (binascii.Error, ValueError, Exception):  # a secret that is not whsec_/base64: never matches
            continue
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return msg_id
    raise SignatureError("webhook-signature does not match the body under the shop's secret")
